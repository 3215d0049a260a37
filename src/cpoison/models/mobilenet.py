"""MobileNet-V2 in its CIFAR form (Sandler et al. 2018; as in common CIFAR implementations).

Inverted residual blocks (1x1 expand -> 3x3 depthwise -> 1x1 linear projection, ReLU6) with
the standard settings ``(t, c, n, s)``::

    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)

CIFAR adaptation (as in ``kuangliu/pytorch-cifar``): the stem 3x3 convolution has stride 1
instead of 2 and the second stage (24 channels) stride 1 instead of 2, so the total stride is
8 instead of 32 (32x32 -> 4x4, 28x28 -> 4x4, 64x64 -> 8x8). A residual connection is used
when the block keeps stride 1 and the channel count (as in the paper and torchvision). The
last 1x1 convolution widens to 1280 channels, followed by a global adaptive average pool,
so ``feature_dim == 1280`` (scaled by ``width_mult`` when it is above 1).
"""

from __future__ import annotations

import torch
from torch import nn

from cpoison.models.base import ImageClassifier, Normalize, check_positive_float

# (expansion t, output channels c, repeats n, first stride s); CIFAR strides.
MOBILENETV2_CIFAR_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 -> 1 for CIFAR
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going more than 10% below it."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _conv_bn_relu6(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """MobileNet-V2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ residual)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = cin * expand_ratio
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(ImageClassifier):
    """MobileNet-V2, CIFAR form; ``feature_dim == 1280`` at ``width_mult <= 1``.

    Args:
        in_channels: number of input channels.
        num_classes: number of output classes.
        image_size: input height/width (any size works thanks to the adaptive pool).
        width_mult: channel multiplier (default 1.0); channels are rounded to multiples of 8.
        normalize: optional per-channel ``(mean, std)`` applied to the ``[0, 1]`` input.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width_mult: float = 1.0,
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size, normalize)
        mult = check_positive_float("width_mult", width_mult)
        self.width_mult = mult
        cin = make_divisible(32 * mult)
        last = make_divisible(1280 * max(1.0, mult))
        layers: list[nn.Module] = [_conv_bn_relu6(self.in_channels, cin, 3, stride=1)]
        for t, c, n, s in MOBILENETV2_CIFAR_CFG:
            cout = make_divisible(c * mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn_relu6(cin, last, 1))
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_head(last)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)


def mobilenetv2(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width_mult: float = 1.0,
    normalize: Normalize | None = None,
) -> MobileNetV2:
    """Build a CIFAR-form :class:`MobileNetV2`; see the class for the arguments."""
    return MobileNetV2(in_channels, num_classes, image_size, width_mult, normalize)
