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
        assert ws.preset.recipe.precision == ("bf16" if native else "fp32")
        data = ws.trainset(ws.split.victim_train[:64])
        keys[native] = ws.model_key(data, seed=1)
        pinned = ws.model_key(data, seed=1, recipe=ws.preset.recipe.model_copy(
            update={"precision": "bf16" if native else "fp32"}))
        assert keys[native] == pinned  # auto's key is the key of what it resolved to
    assert keys[False] != keys[True]


def test_the_demo_preset_trains_fp32_without_native_bf16(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path) -> None:
    """The cpu-full preset (the demo) asks for auto: on an AVX2-only CPU its victims train in
    fp32, the same numbers as an explicit fp32 recipe."""
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: False)
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
    for a, b in zip(outs[0].parameters(), outs[1].parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, c) for a, c in zip(outs[0].parameters(),
                                                     outs[2].parameters()))  # bf16 differs
