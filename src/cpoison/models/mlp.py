"""A small multi-layer perceptron: flatten -> hidden -> ReLU -> hidden -> ReLU -> head."""

from __future__ import annotations

import torch
from torch import nn

from cpoison.errors import ConfigError
from cpoison.models.base import ImageClassifier, Normalize, check_positive_int


class MLP(ImageClassifier):
    """Fully connected network on flattened ``C x image_size x image_size`` images.

    Unlike the convolutional models it only accepts the input size it was built for.
    ``feature_dim == hidden``.

    Args:
        in_channels: number of input channels.
        num_classes: number of output classes.
        image_size: input height/width; the input layer has ``C * image_size**2`` units.
        hidden: units of each hidden layer (default 256).
        depth: number of hidden layers, each followed by ReLU (default 2).
        normalize: optional per-channel ``(mean, std)`` applied to the ``[0, 1]`` input.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        hidden: int = 256,
        depth: int = 2,
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size, normalize)
        h = check_positive_int("hidden", hidden)
        d = check_positive_int("depth", depth)
        self.hidden = h
        self.depth = d
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = self.in_channels * self.image_size * self.image_size
        for _ in range(d):
            layers += [nn.Linear(fan_in, h), nn.ReLU()]
            fan_in = h
        self.body = nn.Sequential(*layers)
        self._set_head(h)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ConfigError(
                f"MLP was built for {self.image_size}x{self.image_size} images, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        return self.body(x)


def mlp(
    in_channels: int,
    num_classes: int,
    image_size: int,
    hidden: int = 256,
    depth: int = 2,
    normalize: Normalize | None = None,
) -> MLP:
    """Build an :class:`MLP`; see the class for the arguments."""
    return MLP(in_channels, num_classes, image_size, hidden, depth, normalize)
