"""Registry: names, aliases and user errors."""

from __future__ import annotations

import pytest

from cpoison.errors import ConfigError
from cpoison.models import MODELS, available_models, build_model, model_kwargs


def test_registry_names() -> None:
    assert set(MODELS) == {"convnet", "resnet18", "vgg16", "mobilenetv2", "mlp"}
    assert available_models() == sorted(MODELS)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        build_model("resnet50", 3, 10, 32)
    message = str(info.value)
    assert "resnet50" in message
    for name in available_models():
        assert name in message


def test_non_string_name() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        build_model(None, 3, 10, 32)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alias", "cls_name"), [("ConvNet", "ConvNet"), ("MLP", "MLP"), ("mobilenet_v2", "MobileNetV2")]
)
def test_aliases(alias: str, cls_name: str) -> None:
    kwargs = {"width_mult": 0.25} if cls_name == "MobileNetV2" else {}
    assert type(build_model(alias, 1, 10, 28, **kwargs)).__name__ == cls_name


def test_unknown_kwarg_is_named() -> None:
    with pytest.raises(ConfigError, match="'depth'") as info:
        build_model("convnet", 1, 10, 28, depth=3)
    assert "width" in str(info.value)
    with pytest.raises(ConfigError, match="'width'"):
        build_model("mobilenetv2", 3, 10, 32, width=3)


def test_model_kwargs() -> None:
    assert model_kwargs("convnet") == ["width", "batch_norm", "normalize"]
    assert model_kwargs("mlp") == ["hidden", "depth", "normalize"]
    for name in available_models():
        assert "normalize" in model_kwargs(name)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0, 10, 28), {}, "in_channels"),
        ((1, 0, 28), {}, "num_classes"),
        ((1, 10, -1), {}, "image_size"),
        ((1, 10, 28.0), {}, "image_size"),
        ((1, 10, 28), {"width": 0}, "width"),
        ((1, 10, 28), {"width": True}, "width"),
        ((1, 10, 28), {"batch_norm": "yes"}, "batch_norm"),
    ],
)
def test_bad_values_name_the_field(args: tuple, kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build_model("convnet", *args, **kwargs)


def test_bad_values_other_models() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        build_model("mlp", 1, 10, 28, hidden=-5)
    with pytest.raises(ConfigError, match="width_mult"):
        build_model("mobilenetv2", 3, 10, 32, width_mult=0)
    with pytest.raises(ConfigError, match="seed"):
        build_model("mlp", 1, 10, 28, seed="x")  # type: ignore[arg-type]
