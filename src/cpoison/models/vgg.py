"""VGG-16 with BatchNorm in its CIFAR form (Simonyan and Zisserman 2015; ``kuangliu`` CIFAR code).

Thirteen 3x3 conv-BN-ReLU layers in five blocks (``w, 2w, 4w, 8w, 8w`` channels, 64/128/256/
512/512 at the default ``width=64``), each block ending in a 2x2 max pool, then a global
adaptive average pool to 1x1 and a single linear classifier (``feature_dim == 8 * width``).

Small inputs: the max pools use ``ceil_mode=True``. For 32x32 (and 64x64) inputs this is the
same as the usual floor mode (32 -> 16 -> 8 -> 4 -> 2 -> 1), and for 28x28 it keeps every
pool meaningful instead of collapsing to 0x0 (28 -> 14 -> 7 -> 4 -> 2 -> 1). A 1x1 map passes
through a ceil-mode pool unchanged, so even tiny inputs (8x8 digits) work. On 64x64 input the
last map is 2x2 and the adaptive pool averages it.
"""

from __future__ import annotations

import torch
from torch import nn

from cpoison.models.base import ImageClassifier, Normalize, check_positive_int

# Channel multipliers of ``width`` (64 -> the standard 64, 128, 256, 512, 512); "M" = max pool.
VGG16_CFG: tuple[int | str, ...] = (
    1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M",
)  # fmt: skip


class VGG16(ImageClassifier):
    """VGG-16 with BatchNorm, CIFAR form; ``feature_dim == 8 * width``.

    Args:
        in_channels: number of input channels.
        num_classes: number of output classes.
        image_size: input height/width (any size works; see the module docstring).
        width: channels of the first block (default 64, the standard VGG-16).
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
        layers: list[nn.Module] = []
        cin = self.in_channels
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                cout = w * int(item)
                layers += [
                    nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(),
                ]
                cin = cout
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_head(cin)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)


def vgg16(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 64,
    normalize: Normalize | None = None,
) -> VGG16:
    """Build a CIFAR-form :class:`VGG16` (with BatchNorm); see the class for the arguments."""
    return VGG16(in_channels, num_classes, image_size, width, normalize)
