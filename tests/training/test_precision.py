"""The recipe's ``precision: auto`` (cpoison.training.precision): bf16 only where the CPU
computes it natively, resolved before model keys, so a key names the precision a model was
really trained in."""

from __future__ import annotations

import pytest
import torch

from cpoison.experiments.presets import get_preset
from cpoison.experiments.workspace import Workspace
from cpoison.training import precision as precision_mod
from cpoison.training.precision import cpu_has_native_bf16, resolve_precision, resolve_recipe
from cpoison.training.recipe import Recipe

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16\n"


@pytest.mark.parametrize(("text", "native"), [(AVX2_ONLY, False), (ZEN4, True),
                                              ("flags : amx_bf16 amx_tile\n", True),
                                              ("no flags line here\n", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, text: str, native: bool) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(text)
    assert cpu_has_native_bf16(str(info)) is native
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False  # not Linux: fp32


def test_auto_resolves_per_cpu_and_explicit_choices_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # pinned: honoured even if slow
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    recipe = Recipe(precision="fp32")
    assert resolve_recipe(recipe, "cpu") is recipe


def test_the_workspace_keys_the_resolved_precision(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path) -> None:
    base = get_preset("digits", "cpu")
    auto = base.model_copy(update={"recipe": base.recipe.model_copy(
        update={"precision": "auto", "epochs": 1})})
    keys = {}
    for native in (False, True):
        monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda n=native: n)
        ws = Workspace.open(auto, seed=0, store=tmp_path / "store", device="cpu",
                            progress=False)
        data = ws.trainset(ws.split.victim_train[:64])
        keys[native] = ws.model_key(data, seed=1)
        pinned = ws.model_key(data, seed=1, recipe=auto.recipe.model_copy(
            update={"precision": "bf16" if native else "fp32"}))
        assert keys[native] == pinned  # auto's key is the key of what it resolved to
        model = ws.train(data, seed=1)  # stored under that key
        assert ws.store.load_model_meta(pinned, model) is not None
    assert keys[False] != keys[True]


@pytest.mark.parametrize("native", [False, True])
def test_auto_trains_as_the_precision_it_resolves_to(monkeypatch: pytest.MonkeyPatch,
                                                     native: bool) -> None:
    """The cpu-full preset (the demo) asks for auto: without native bf16 its victims train
    bit-identically to an explicit fp32 recipe, with it to an explicit bf16 one (and the
    two differ)."""
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: native)
    assert get_preset("fashion-mnist", "cpu-full").recipe.precision == "auto"
    from cpoison.training import train_model
    from cpoison.training.trainset import TrainSet

    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 3, (64,))
    data = TrainSet(images, labels, torch.arange(64))
    outs = []
    for precision in ("auto", "fp32", "bf16"):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        torch.nn.init.zeros_(model[1].weight)
        torch.nn.init.zeros_(model[1].bias)
        recipe = Recipe(epochs=2, batch_size=16, crop_padding=0, flip=False,
                        precision=precision)
        outs.append(train_model(model, data, recipe, seed=0, device="cpu", progress=False))
    auto, fp32, bf16 = (list(m.parameters()) for m in outs)
    same = bf16 if native else fp32
    assert all(torch.equal(a, b) for a, b in zip(auto, same))
    assert not all(torch.equal(a, b) for a, b in zip(fp32, bf16))
