"""Shape, gradient and API checks for every model in ``cpoison.models`` (batch 2, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpoison.errors import ConfigError
from cpoison.models import (
    MLP,
    VGG16,
    ConvNet,
    ImageClassifier,
    MobileNetV2,
    ResNet18,
    available_models,
    build_model,
)

BIG = ("resnet18", "vgg16", "mobilenetv2")
SMALL = ("convnet", "mlp")
SHAPES = ((1, 28), (3, 32), (3, 64))
CLASSES = (10, 100, 200)

# Big nets: input shapes paired with class counts (each shape and each count covered once).
# Small nets: the full cross product.
CASES = [(name, c, s, k) for name in BIG for (c, s), k in zip(SHAPES, CLASSES)] + [
    (name, c, s, k) for name in SMALL for (c, s) in SHAPES for k in CLASSES
]


def _check_forward_backward(model: nn.Module, c: int, s: int, k: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, c, s, s)
    y = torch.tensor([0, k - 1])
    model.train()
    logits = model(x)
    assert logits.shape == (2, k)
    assert torch.isfinite(logits).all()
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {pname}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES)
def test_forward_backward(name: str, c: int, s: int, k: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, c, k, s)
    assert isinstance(model, ImageClassifier)
    _check_forward_backward(model, c, s, k)


@pytest.mark.parametrize("name", BIG + SMALL)
def test_forward_equals_head_of_features(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, 10, 32).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, model.feature_dim)
        assert isinstance(model.head, nn.Linear)
        assert model.head.in_features == model.feature_dim
        assert model.head.out_features == 10
        torch.testing.assert_close(model(x), model.head(feats), rtol=0, atol=0)


@pytest.mark.parametrize("name", BIG + SMALL)
def test_same_seed_same_weights(name: str) -> None:
    torch.manual_seed(123)
    a = build_model(name, 3, 10, 32)
    torch.manual_seed(123)
    b = build_model(name, 3, 10, 32)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_seed_argument_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    a = build_model("convnet", 1, 10, 28, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_model("convnet", 1, 10, 28, seed=7)
    c = build_model("convnet", 1, 10, 28, seed=8)
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), key
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_builder_types() -> None:
    assert isinstance(build_model("convnet", 1, 10, 28), ConvNet)
    assert isinstance(build_model("resnet18", 3, 10, 32, width=8), ResNet18)
    assert isinstance(build_model("vgg16", 3, 10, 32, width=8), VGG16)
    assert isinstance(build_model("mobilenetv2", 3, 10, 32, width_mult=0.25), MobileNetV2)
    assert isinstance(build_model("mlp", 1, 10, 28, hidden=32), MLP)
    assert available_models() == ["convnet", "mlp", "mobilenetv2", "resnet18", "vgg16"]


@pytest.mark.parametrize("width", [16, 32, 64])
def test_convnet_width_and_feature_dim(width: int) -> None:
    model = build_model("convnet", 1, 10, 28, width=width)
    assert model.feature_dim == 36 * width
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [width, 2 * width, 2 * width, 4 * width]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4


def test_convnet_without_batchnorm_and_small_input() -> None:
    model = build_model("convnet", 1, 10, 8, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    _check_forward_backward(model, 1, 8, 10)  # 8x8 digits: pool windows shrink to fit


def test_convnet_second_order_gradients() -> None:
    """Gradient-matching / second-order attacks differentiate through input gradients."""
    torch.manual_seed(0)
    model = build_model("convnet", 1, 10, 28)
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    sum(g.pow(2).sum() for g in grads).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("resnet18", {"width": 8}), ("vgg16", {"width": 8}), ("mobilenetv2", {"width_mult": 0.25})],
)
def test_big_nets_width_options_and_tiny_input(name: str, kwargs: dict[str, object]) -> None:
    model = build_model(name, 1, 10, 8, **kwargs)
    _check_forward_backward(model, 1, 8, 10)


def test_vgg16_structure() -> None:
    model = build_model("vgg16", 3, 10, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert [m.out_channels for m in convs][-1] == 512
    assert model.feature_dim == 512


def test_resnet18_cifar_stem() -> None:
    model = build_model("resnet18", 3, 10, 32)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.feature_dim == 512
    assert 11_000_000 < sum(p.numel() for p in model.parameters()) < 11_400_000


def test_mobilenetv2_cifar_strides() -> None:
    model = build_model("mobilenetv2", 3, 10, 32)
    assert model.feature_dim == 1280
    strided = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert len(strided) == 3  # total stride 8 in the CIFAR form


def test_normalize_equals_prenormalised_input() -> None:
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.manual_seed(0)
    plain = build_model("convnet", 3, 10, 32).eval()
    normed = build_model("convnet", 3, 10, 32, normalize=(mean, std)).eval()
    missing, unexpected = normed.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"mean", "std"} and not unexpected
    assert "mean" in normed.state_dict() and "std" in normed.state_dict()
    x = torch.rand(2, 3, 32, 32)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain((x - m) / s))
        torch.testing.assert_close(normed.features(x), plain.features((x - m) / s))


def test_normalize_scalar_broadcasts() -> None:
    model = build_model("mlp", 1, 10, 28, normalize=(0.5, 0.25))
    assert model.mean is not None and model.std is not None
    assert model.mean.shape == (1, 1, 1, 1)
    assert float(model.std) == 0.25


@pytest.mark.parametrize(
    "normalize",
    [
        ((0.5, 0.5), (0.2, 0.2)),  # wrong channel count
        ((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)),  # zero std
        (0.5,),  # not a pair
        (("a", "b", "c"), (1, 1, 1)),  # not numbers
    ],
)
def test_bad_normalize(normalize: object) -> None:
    with pytest.raises(ConfigError, match="normalize"):
        build_model("convnet", 3, 10, 32, normalize=normalize)


def test_wrong_input_shape_is_config_error() -> None:
    model = build_model("mlp", 1, 10, 28)
    with pytest.raises(ConfigError, match="28x28"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ConfigError, match="1, H, W"):
        build_model("convnet", 1, 10, 28)(torch.rand(2, 3, 28, 28))
