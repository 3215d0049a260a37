"""Pretraining the frozen feature extractor on the public part of the train pool (SPEC 2).

A thin wrapper over :func:`cpoison.training.trainer.train_model`: the engine caches the
result by its key; tests and benchmarks call it directly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cpoison.training import TrainSet
from cpoison.training.recipe import Recipe
from cpoison.training.trainer import build_seeded_model, train_model
from cpoison.transfer.model import check_extractor

__all__ = ["pretrain_extractor"]


def pretrain_extractor(
    images: torch.Tensor,
    labels: torch.Tensor,
    public_ids: torch.Tensor,
    arch: str,
    num_classes: int,
    recipe: Recipe,
    seed: int,
    device: torch.device | str = "cpu",
    **model_kwargs: object,
) -> nn.Module:
    """Train ``arch`` on ``images[public_ids]`` with ``recipe`` and ``seed``; return it in
    eval mode with gradients off (checked to have a feature layer)."""
    c, h = int(images.shape[1]), int(images.shape[2])
    model = build_seeded_model(arch, c, num_classes, h, seed, **model_kwargs)
    check_extractor(model)
    train_model(model, TrainSet(images, labels, public_ids), recipe, seed, device=device,
                progress=False, desc="pretrain extractor")
    return model.requires_grad_(False).eval()
