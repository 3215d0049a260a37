"""Model functions as a practitioner writes them (SPEC 12), for the audit tests: plain
``nn.Module`` builders called as ``function(in_channels, num_classes, image_size)``."""

from __future__ import annotations

from torch import nn


def small_mlp(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A plain nn.Sequential with no ``features`` method (cpoison hooks its last Linear)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 64), nn.ReLU(),
        nn.Linear(64, num_classes))


def broken(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Returns logits of the wrong width."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 3))
