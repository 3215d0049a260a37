"""Shared small transfer problem on scikit-learn's digits (fixed seeds): a public part
pretrains a small MLP extractor a few epochs; the rest is split into attacker / victim
training data; the test set provides targets and an evaluation set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cpoison.data.digits import load_digits
from cpoison.training.recipe import Recipe
from cpoison.transfer.model import extract_features
from cpoison.transfer.pretrain import pretrain_extractor

K = 10


@dataclass
class DigitsTransfer:
    extractor: torch.nn.Module
    images: torch.Tensor  # train pool, uint8 [N, 1, 8, 8]
    labels: torch.Tensor
    public_ids: torch.Tensor
    attacker_ids: torch.Tensor
    victim_ids: torch.Tensor
    features: torch.Tensor  # clean features of the whole pool (float32)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_features: torch.Tensor


def digits_transfer(
    seed: int = 0, n_train: int = 1500, public: int = 500, hidden: int = 32, epochs: int = 4
) -> DigitsTransfer:
    """Public part (``public`` images) pretrains an MLP extractor for ``epochs`` epochs; the
    remaining pool is halved into attacker and victim data (seeded)."""
    ds = load_digits(seed=seed, n_train=n_train)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(ds.train_labels.numel(), generator=gen)
    public_ids = perm[:public]
    rest = perm[public:]
    attacker_ids, victim_ids = rest[: rest.numel() // 2], rest[rest.numel() // 2 :]
    recipe = Recipe(epochs=epochs, batch_size=32, lr=0.05, crop_padding=0, flip=False,
                    channels_last=False)
    model = pretrain_extractor(ds.train_images, ds.train_labels, public_ids, "mlp", K, recipe,
                               seed, hidden=hidden)
    feats = extract_features(model, ds.train_images)
    test_feats = extract_features(model, ds.test_images)
    return DigitsTransfer(model, ds.train_images, ds.train_labels, public_ids, attacker_ids,
                          victim_ids, feats, ds.test_images, ds.test_labels, test_feats)
