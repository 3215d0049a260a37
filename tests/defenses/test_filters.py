"""Filters (SPEC 7): each removes most of a planted, clearly mislabelled subset, and reports
the shares of poisons and of clean points it removed."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import accuracy, make_train_fn

from cpoison.data.base import ImageDataset
from cpoison.defenses import build_defense
from cpoison.training import TrainSet

N_PLANTED = 15


def planted(ds: ImageDataset) -> TrainSet:
    """All 1500 digits training images; 15 images of a 3 relabelled as 8 and marked as the
    poisons (zero perturbation), so the shares can be read from the record."""
    labels = ds.train_labels.clone()
    threes = torch.nonzero(labels == 3).flatten()[:N_PLANTED]
    labels[threes] = 8
    clean = TrainSet(ds.train_images, labels, torch.arange(ds.train_images.shape[0]))
    return clean.with_poisons(threes, torch.zeros(N_PLANTED, 1, 8, 8), inject=False)


TRAIN_FN = make_train_fn(cache=True)  # one feature model shared by the three filters

CONFIGS = [
    {"name": "deep_knn", "epsilon": N_PLANTED / 1500},
    {"name": "spectral_signatures", "epsilon": N_PLANTED / 1500},
    {"name": "activation_clustering"},
]


@pytest.mark.parametrize("config", CONFIGS, ids=[c["name"] for c in CONFIGS])
def test_filter_removes_most_planted_points(digits: ImageDataset, config: dict) -> None:
    data = planted(digits)
    prepared = build_defense(config).prepare(data, TRAIN_FN, seed=0)
    rec = prepared.record
    print(config["name"], {k: rec[k] for k in rec if k.startswith("filter_")})
    assert rec["filter_poisons_total"] == N_PLANTED
    assert rec["filter_poisons_removed_share"] >= 0.8
    assert rec["filter_clean_removed_share"] < 0.25
    assert rec["filter_poisons_removed_share"] > 3 * rec["filter_clean_removed_share"]
    assert len(prepared.data) == len(data) - prepared.removed.numel()
    assert not torch.isin(prepared.data.indices, prepared.removed).any()


def test_filter_fit_trains_the_victim_on_the_kept_points(digits: ImageDataset) -> None:
    data = planted(digits)
    defense = build_defense({"name": "deep_knn", "epsilon": N_PLANTED / 1500})
    outcome = defense.fit(data, TRAIN_FN, seed=0)
    assert outcome.record["filter"]["k"] == 30  # ceil(2 * 0.01 * 1500)
    assert outcome.record["poisons_removed_share"] == \
        outcome.record["filter_poisons_removed_share"]
    assert 0 <= outcome.record["clean_removed_share"] < 0.25
    assert accuracy(outcome.models[0], digits) > 0.85


def test_deep_knn_vote_on_a_toy_set() -> None:
    from cpoison.defenses.deep_knn import DeepKnn, DeepKnnConfig

    feats = torch.tensor([[0.0], [0.1], [0.2], [0.3], [5.0], [5.1], [5.2], [0.15]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])  # the last one sits among the zeros
    drop, facts = DeepKnn(DeepKnnConfig(k=3)).suspects(feats, labels, seed=0)
    assert drop.tolist() == [False] * 7 + [True] and facts == {"k": 3}


def test_spectral_scope_class_uses_the_class_fraction() -> None:
    from cpoison.defenses.spectral import SpectralSignatures, SpectralSignaturesConfig

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(100, 5, generator=gen)
    feats[:5] += torch.tensor([8.0, 0, 0, 0, 0])  # five outliers along one direction
    labels = torch.zeros(100, dtype=torch.long)
    cfg = SpectralSignaturesConfig(epsilon=0.05, scope="class")
    drop, facts = SpectralSignatures(cfg).suspects(feats, labels, seed=0)
    assert facts["dropped_per_class"] == {"0": 8}  # ceil(1.5 * 0.05 * 100)
    assert drop[:5].all() and int(drop.sum()) == 8
