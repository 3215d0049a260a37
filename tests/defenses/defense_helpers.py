"""Helpers of the defense tests: tiny digits MLPs and a caching ``train_fn``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from cpoison.data.base import ImageDataset
from cpoison.defenses.base import TrainingHooks
from cpoison.training import Recipe, TrainSet, build_seeded_model, predict_logits, train_model

RECIPE = Recipe(epochs=8, batch_size=64, lr=0.05, crop_padding=0, flip=False,
                milestones=(0.75,))


def make_train_fn(
    recipe: Recipe = RECIPE, hidden: int = 64, cache: bool = False
) -> Callable[[TrainSet, int, TrainingHooks | None], nn.Module]:
    """``train_fn(data, seed, hooks)`` as the engine would supply it (digits MLP). With
    ``cache`` the hook-less models are memoised by (seed, training indices)."""
    memo: dict[tuple[int, bytes], nn.Module] = {}

    def train_fn(data: TrainSet, seed: int, hooks: TrainingHooks | None) -> nn.Module:
        key = (seed, data.indices.numpy().tobytes())
        if cache and hooks is None and key in memo:
            return memo[key]
        model = build_seeded_model("mlp", 1, 10, 8, seed, hidden=hidden)
        model = train_model(model, data, recipe, seed, progress=False, hooks=hooks)
        if cache and hooks is None:
            memo[key] = model
        return model

    return train_fn


def accuracy(model: nn.Module, ds: ImageDataset) -> float:
    pred = predict_logits(model, ds.test_images).argmax(1)
    return float((pred == ds.test_labels).float().mean())


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
