"""A user's own model (SPEC 12): ``package.module:function``, safetensors weights, and a
features / head wrapper for models without them."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cpoison.errors import ConfigError
from cpoison.models.user import HookedClassifier, load_user_model

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # user_model_fns is importable by its module name
SPEC = "user_model_fns:{}"


def test_plain_model_is_wrapped_with_features_and_head() -> None:
    model = load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, seed=0)
    assert isinstance(model, HookedClassifier)
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    feats = model.features(x)
    assert feats.shape == (5, 16) and model.feature_dim == 16
    torch.testing.assert_close(model.head(feats), model(x))
    assert model.head.out_features == 3
    # gradients flow through the captured features; the state dict has no duplicates
    model.features(x).sum().backward()
    assert model.net[1].weight.grad is not None
    assert sorted(model.state_dict()) == ["net.1.bias", "net.1.weight", "net.3.bias",
                                          "net.3.weight"]
    twin = copy.deepcopy(model)
    assert twin.head is twin.net[3] and twin.head is not model.head
    again = load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, seed=0)
    assert torch.equal(again(x), model(x))  # the seed fixes the initial weights


def test_model_with_features_is_returned_as_is_and_file_spec() -> None:
    model = load_user_model(SPEC.format("tiny"), 1, 3, 4)
    assert not isinstance(model, HookedClassifier) and hasattr(model, "features")
    by_file = load_user_model(f"{HERE / 'user_model_fns.py'}:tiny", 1, 3, 4)
    assert type(by_file).__name__ == "Tiny"


def test_safetensors_weights_are_loaded_and_checked(tmp_path: Path) -> None:
    source = load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, seed=1).net
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    model = load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, tmp_path / "w.safetensors",
                            seed=2)
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), source(x))
    with pytest.raises(ConfigError, match=r"tensor '3.weight' has shape \(3, 16\) but the "
                                          r"model's has \(4, 16\)"):
        load_user_model(SPEC.format("plain_mlp"), 1, 4, 4, tmp_path / "w.safetensors")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ConfigError, match=r"\.safetensors only, never pickle.*save_file"):
        load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="missing 1.weight"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_user_model(SPEC.format("plain_mlp"), 1, 3, 4, tmp_path / "other.safetensors")


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon", "must be 'package.module:function'"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    (SPEC.format("nope"), "has no function 'nope'; it defines: .*plain_mlp"),
    (SPEC.format("NOT_CALLABLE"), "is not callable"),
    (SPEC.format("not_a_module"), "returned a str, not a torch.nn.Module"),
    (SPEC.format("wrong_classes"), r"logits of shape \(2, 3\), got \(2, 4\)"),
    (SPEC.format("no_linear"), "has no nn.Linear layer"),
    (SPEC.format("softmax_after"), "not the output of its last nn.Linear"),
])
def test_user_model_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_user_model(spec, 1, 3, 4)


def test_forward_failure_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"forward failed on a \[2, 3, 4, 4\] batch"):
        load_user_model(SPEC.format("fixed_input"), 3, 3, 4)
