"""Model functions for the bring-your-own-model tests (SPEC 12), imported by spec."""

from __future__ import annotations

import torch
from torch import nn


def plain_mlp(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A plain nn.Sequential without features/head: cpoison wraps it."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 16), nn.ReLU(),
                         nn.Linear(16, num_classes))


class Tiny(nn.Module):
    """A model with its own features() and head."""

    def __init__(self, c: int, k: int, s: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, 8), nn.Tanh())
        self.head = nn.Linear(8, k)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return Tiny(in_channels, num_classes, image_size)


def no_linear(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, num_classes, image_size), nn.Flatten())


def softmax_after(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return nn.Sequential(plain_mlp(in_channels, num_classes, image_size), nn.Softmax(dim=1))


def wrong_classes(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return plain_mlp(in_channels, num_classes + 1, image_size)


def not_a_module(in_channels: int, num_classes: int, image_size: int) -> object:
    return "a string"


NOT_CALLABLE = 3


def fixed_input(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Ignores the asked size: built for 3x8x8 images, so a 3x4x4 forward fails."""
    return plain_mlp(3, num_classes, 8)
