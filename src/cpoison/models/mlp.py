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
        image_size: input height/width (an int), or ``(height, width)``; the input layer
            has ``C * height * width`` units.
        hidden: units of each hidden layer (default 256).
        depth: number of hidden layers, each followed by ReLU (default 2).
        normalize: optional per-channel ``(mean, std)`` applied to the ``[0, 1]`` input.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
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
        height, width = self.image_hw
        fan_in = self.in_channels * height * width
        for _ in range(d):
            layers += [nn.Linear(fan_in, h), nn.ReLU()]
            fan_in = h
        self.body = nn.Sequential(*layers)
        self._set_head(h)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_hw:
            height, width = self.image_hw
            raise ConfigError(
                f"MLP was built for {height}x{width} images (height x width), "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        return self.body(x)


def mlp(
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    hidden: int = 256,
    depth: int = 2,
    normalize: Normalize | None = None,
) -> MLP:
    """Build an :class:`MLP`; see the class for the arguments."""
    return MLP(in_channels, num_classes, image_size, hidden, depth, normalize)


class FeatureMLP(nn.Module):
    """The default model for feature vectors ``[B, D]`` (tabular data): ``depth`` hidden
    layers of ``hidden`` units with ReLU, then the linear ``head``; ``features(x)`` is the
    last hidden layer. Its inputs are standardised features (cpoison standardises tabular
    data with the train split's mean and standard deviation)."""

    def __init__(self, num_features: int, num_classes: int, hidden: int = 256,
                 depth: int = 2) -> None:
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.num_classes = check_positive_int("num_classes", num_classes)
        h, d = check_positive_int("hidden", hidden), check_positive_int("depth", depth)
        layers: list[nn.Module] = []
        fan_in = self.num_features
        for _ in range(d):
            layers += [nn.Linear(fan_in, h), nn.ReLU()]
            fan_in = h
        self.body = nn.Sequential(*layers)
        self.feature_dim = h
        self.head = nn.Linear(h, self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, hidden]`` of feature vectors ``[B, num_features]``."""
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ConfigError(f"FeatureMLP expects feature vectors of shape "
                              f"[B, {self.num_features}], got {list(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` = ``head(features(x))``."""
        return self.head(self.features(x))


def feature_mlp(num_features: int, num_classes: int, hidden: int = 256,
                depth: int = 2) -> FeatureMLP:
    """Build a :class:`FeatureMLP` (the registry's ``mlp`` on feature vectors)."""
    return FeatureMLP(num_features, num_classes, hidden, depth)
