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


def adam_training(model: nn.Module, train_set, generator) -> nn.Module:
    """A practitioner's own training function: two epochs of Adam on shuffled batches."""
    import torch

    loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True,
                                         generator=generator)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model
