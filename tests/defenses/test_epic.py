"""EPIC (SPEC 7): medoids by facility location, isolated points dropped, and kept dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from defense_helpers import make_train_fn

import cpoison.defenses.epic as epic
from cpoison.data.base import ImageDataset
from cpoison.defenses import build_defense
from cpoison.defenses.epic import (
    EpicHooks,
    facility_location_medoids,
    gradient_proxies,
    isolated_points,
    pairwise_distances,
)
from cpoison.training import Recipe, TrainSet


def _brute_force_greedy(dist: np.ndarray, budget: int) -> list[int]:
    sim = dist.max() - dist
    chosen: list[int] = []
    cur = np.zeros(dist.shape[0])
    for _ in range(budget):
        gains = [np.maximum(sim[:, j] - cur, 0).sum() if j not in chosen else -1.0
                 for j in range(dist.shape[0])]
        j = int(np.argmax(gains))
        chosen.append(j)
        cur = np.maximum(cur, sim[:, j])
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_greedy_equals_plain_greedy(seed: int) -> None:
    pts = np.random.default_rng(seed).normal(size=(40, 3))
    dist = pairwise_distances(pts)
    assert facility_location_medoids(dist, 8).tolist() == _brute_force_greedy(dist, 8)


def test_isolated_points_are_dropped_and_clusters_kept() -> None:
    rng = np.random.default_rng(0)
    blob = rng.normal(scale=0.01, size=(30, 2))
    outliers = np.array([[5.0, 5.0], [-5.0, 4.0]])
    proxies = torch.from_numpy(np.concatenate([blob, outliers]))
    labels = torch.zeros(32, dtype=torch.long)
    drop, facts = isolated_points(proxies, labels, 1, fraction=0.2, threshold=1.0)
    assert drop[30:].all() and not drop[:30].any()
    assert facts["medoids"] == 7 and facts["small_clusters"] == 2


def test_gradient_proxies() -> None:
    g = gradient_proxies(torch.zeros(2, 4), torch.tensor([1, 3]))
    torch.testing.assert_close(g[0], torch.tensor([0.25, -0.75, 0.25, 0.25],
                                                  dtype=torch.float64))


def test_epic_drops_during_training_and_dropped_points_stay_dropped(
    digits: ImageDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = Recipe(epochs=7, batch_size=64, lr=0.05, crop_padding=0, flip=False,
                    milestones=(0.9,))
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(400))
    calls: list[torch.Tensor] = []
    real = epic.isolated_points

    def spy(*args, **kwargs):  # the second selection alone would drop nothing
        drop, facts = real(*args, **kwargs)
        if calls:
            drop = torch.zeros_like(drop)
        calls.append(drop)
        return drop, facts

    monkeypatch.setattr(epic, "isolated_points", spy)
    defense = build_defense({"name": "epic", "every": 2, "fraction": 0.3})
    sizes: list[int] = []
    hooks_seen: list[EpicHooks] = []

    class Spy(EpicHooks):
        def after_epoch(self, e, model, d):  # type: ignore[no-untyped-def]
            sizes.append(len(d))
            hooks_seen.append(self)
            return super().after_epoch(e, model, d)

    defense.training_hooks = lambda: Spy(defense.config)  # type: ignore[method-assign]
    outcome = defense.fit(data, make_train_fn(recipe), seed=0)
    hooks = hooks_seen[0]
    assert hooks.selection_epochs() == [2, 4, 6]
    assert len(calls) == 3
    first = calls[0]
    assert 0 < int(first.sum()) < 400  # the first selection drops some, not all
    # sizes seen at the end of epochs 0..6: the set shrinks after epoch 1 and never grows
    assert sizes[:2] == [400, 400]
    assert sizes[2] == 400 - int(first.sum())
    assert sizes[2:] == [sizes[2]] * 5  # later selections resurrect nothing
    assert torch.equal(torch.sort(outcome.removed).values,
                       torch.sort(data.indices[first]).values)
    assert outcome.record["epic_dropped"] == int(first.sum())
    assert outcome.record["clean_removed"] == int(first.sum())


def test_epic_real_selection_is_monotone(digits: ImageDataset) -> None:
    recipe = Recipe(epochs=5, batch_size=64, lr=0.05, crop_padding=0, flip=False,
                    milestones=(0.9,))
    ids = torch.arange(300, 320)
    delta = (torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.5
    data = TrainSet(digits.train_images, digits.train_labels,
                    torch.arange(300)).with_poisons(ids, delta, inject=True)
    outcome = build_defense({"name": "epic", "every": 1, "fraction": 0.3}).fit(
        data, make_train_fn(recipe), seed=1)
    rec = outcome.record
    assert rec["epic_selections"] == [1, 2, 3, 4]
    assert rec["epic_dropped"] == outcome.removed.numel() > 0
    assert rec["poisons_removed_share"] is not None
