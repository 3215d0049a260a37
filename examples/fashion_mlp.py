"""A practitioner's model function for ``cpoison audit`` (SPEC 12): the demo's victim (a
2x512 MLP, ``configs/demo.yaml`` with preset cpu-full) written as plain PyTorch.

    cpoison audit --data fmnist-folder --model examples/fashion_mlp.py:mlp --out runs/a

It builds its layers in the order cpoison's registry ``mlp`` does (flatten, Linear, ReLU,
Linear, ReLU, head), so under the same seed it starts from the same weights.
"""

from __future__ import annotations

from torch import nn


def mlp(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """flatten -> 512 -> ReLU -> 512 -> ReLU -> num_classes logits (no ``features``
    method: cpoison hooks the input of the last Linear for the penultimate features)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, 512), nn.ReLU(),
        nn.Linear(512, 512), nn.ReLU(),
        nn.Linear(512, num_classes),
    )
