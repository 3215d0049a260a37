"""ResNet-18 in its CIFAR form (He et al. 2016, as in the common ``kuangliu`` CIFAR code).

Differences from the ImageNet ResNet-18: the stem is a single 3x3 convolution with stride 1
and no max pool, so 32x32 inputs keep full resolution in the first stage. Four stages of two
basic blocks with ``w, 2w, 4w, 8w`` channels (strides 1, 2, 2, 2), then a global adaptive
average pool, so any input size works (28x28 -> 4x4, 32x32 -> 4x4, 64x64 -> 8x8 before the
pool). ``feature_dim == 8 * width`` (512 at the default ``width=64``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cpoison.models.base import ImageClassifier, Normalize, check_positive_int


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(ImageClassifier):
    """ResNet-18, CIFAR form; ``feature_dim == 8 * width``.

    Args:
        in_channels: number of input channels.
        num_classes: number of output classes.
        image_size: input height/width (any size works thanks to the adaptive pool).
        width: channels of the first stage (default 64, the standard ResNet-18).
        normalize: optional per-channel ``(mean, std)`` applied to the ``[0, 1]`` input.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int = 64,
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size, normalize)
        w = check_positive_int("width", width)
        self.width = w
        self.conv1 = nn.Conv2d(self.in_channels, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages: list[nn.Module] = []
        in_planes = w
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = w * 2**i
            stages.append(
                nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes))
            )
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_head(in_planes)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(self.pool(out), 1)


def resnet18(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 64,
    normalize: Normalize | None = None,
) -> ResNet18:
    """Build a CIFAR-form :class:`ResNet18`; see the class for the arguments."""
    return ResNet18(in_channels, num_classes, image_size, width, normalize)
