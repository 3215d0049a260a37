"""ConvNet-5, the small convolutional network of the data-poisoning literature.

Follows the ``convnet`` of Geiping et al., "Witches' Brew" (ICLR 2021) and Huang et al.,
"MetaPoison" (NeurIPS 2020)::

    conv(C, w)   -> BN -> ReLU
    conv(w, 2w)  -> BN -> ReLU
    conv(2w, 2w) -> BN -> ReLU -> maxpool 3
    conv(2w, 4w) -> BN -> ReLU -> maxpool 3
    adaptive avg pool to 3x3 -> flatten (36w features) -> linear

(4 convolutions + 1 linear layer; all convolutions 3x3 with padding 1.) On 32x32 input the
two max pools give a 3x3 map exactly as in the reference (``Linear(36 * width, classes)``),
and on 28x28 input they give 3x3 as well, so the adaptive pool is the identity there. On
64x64 input (7x7 after pooling) it averages down to 3x3. For inputs smaller than the pool
window (e.g. 8x8 digits reach 2x2 before the second pool) the window shrinks to the map size.

BatchNorm is on by default (``batch_norm=False`` gives the plain reference net, convolutions
then with bias). ``width`` defaults to 16 for CPU presets; the paper scale is 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cpoison.errors import ConfigError
from cpoison.models.base import ImageClassifier, Normalize, check_positive_int


class FittingMaxPool2d(nn.Module):
    """``MaxPool2d(k)`` (stride ``k``, floor mode) whose window shrinks to fit small maps."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh = min(self.kernel_size, x.shape[-2])
        kw = min(self.kernel_size, x.shape[-1])
        return F.max_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


def _conv_block(cin: int, cout: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return layers


class ConvNet(ImageClassifier):
    """ConvNet-5 with a ``width`` parameter; ``feature_dim == 36 * width``.

    Args:
        in_channels: number of input channels.
        num_classes: number of output classes.
        image_size: input height/width (any size works thanks to the adaptive pool).
        width: base channel count ``w`` (layers have w, 2w, 2w, 4w channels); default 16.
        batch_norm: add BatchNorm after every convolution (default True).
        normalize: optional per-channel ``(mean, std)`` applied to the ``[0, 1]`` input.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int = 16,
        batch_norm: bool = True,
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size, normalize)
        w = check_positive_int("width", width)
        self.width = w
        if not isinstance(batch_norm, bool):
            raise ConfigError(
                f"model argument 'batch_norm' must be true or false, got {batch_norm!r}"
            )
        bn = batch_norm
        self.body = nn.Sequential(
            *_conv_block(self.in_channels, w, bn),
            *_conv_block(w, 2 * w, bn),
            *_conv_block(2 * w, 2 * w, bn),
            FittingMaxPool2d(3),
            *_conv_block(2 * w, 4 * w, bn),
            FittingMaxPool2d(3),
            nn.AdaptiveAvgPool2d((3, 3)),
            nn.Flatten(),
        )
        self._set_head(36 * w)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def convnet(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 16,
    batch_norm: bool = True,
    normalize: Normalize | None = None,
) -> ConvNet:
    """Build a :class:`ConvNet` (ConvNet-5); see the class for the arguments."""
    return ConvNet(in_channels, num_classes, image_size, width, batch_norm, normalize)
