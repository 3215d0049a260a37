"""Shared set-up of the transfer benchmarks: digits, a small MLP extractor pretrained a few
epochs on a public part of the train pool, clean features of everything (fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cpoison.data.digits import load_digits
from cpoison.training.recipe import Recipe
from cpoison.transfer.model import extract_features
from cpoison.transfer.pretrain import pretrain_extractor


@dataclass
class Setup:
    train_features: torch.Tensor
    train_labels: torch.Tensor
    test_features: torch.Tensor
    test_labels: torch.Tensor
    extractor: torch.nn.Module


def digits_features(seed: int = 0, n_test: int = 500, public: int = 497, hidden: int = 32,
                    epochs: int = 4) -> Setup:
    """Digits with ``n_test`` test images; ``public`` train images pretrain the extractor,
    the other train images are the full-CP / head training data."""
    ds = load_digits(seed=seed, n_train=1797 - n_test)
    perm = torch.randperm(ds.train_labels.numel(), generator=torch.Generator().manual_seed(seed))
    public_ids, rest = perm[:public], perm[public:].sort().values
    recipe = Recipe(epochs=epochs, batch_size=32, lr=0.05, crop_padding=0, flip=False,
                    channels_last=False)
    model = pretrain_extractor(ds.train_images, ds.train_labels, public_ids, "mlp", 10, recipe,
                               seed, hidden=hidden)
    feats = extract_features(model, ds.train_images[rest])
    return Setup(feats, ds.train_labels[rest], extract_features(model, ds.test_images),
                 ds.test_labels, model)
