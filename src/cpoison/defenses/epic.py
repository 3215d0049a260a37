"""EPIC (Yang, Liu and Mirzasoleiman, ICML 2022, "Not All Poisons are Created Equal: Robust
Training against Data Poisoning"; SPEC 7).

Effective poisons end up isolated in gradient space. Every ``every`` epochs (default 5,
the authors' setting for eps = 16 from-scratch training) EPIC

1. computes for every training example (poisons applied, no augmentation, eval mode) the
   last-layer gradient proxy ``softmax(z) - onehot(y)``;
2. per class, selects ``ceil(fraction * n_c)`` medoids by greedy maximisation of the
   facility-location function ``F(S) = sum_i max_{j in S} s_ij`` with the similarity
   ``s_ij = d_max - ||g_i - g_j||`` (CRAIG's convention; d_max the largest distance in the
   class), lazy greedy, ties broken by index;
3. assigns every example to its most similar medoid; a medoid's weight is the size of its
   cluster; examples in clusters of weight <= ``cluster_threshold`` (default 1: isolated
   medoids) are dropped;
4. dropped examples stay dropped: an example trains on in the following epochs only if it
   has survived every selection so far (the authors' ``times_selected == epoch`` rule).

Selections run at the start of epochs ``e`` with ``e % every == 0``, ``e >= drop_after``
(default 1) and ``e <= `` the last learning-rate milestone (the authors' code stops
selecting after ``args.steps[-1]``). Selection always scores the *whole* original training
set, as in the authors' code.

Default ``fraction = 0.2``: the authors evaluate 0.1 / 0.2 / 0.3 from scratch
(``examples.sh``) and use 0.2 for Tiny-ImageNet and transfer learning; 0.2 is the middle of
SPEC 7's range.
"""

from __future__ import annotations

import heapq
import math
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import Field
from sklearn.metrics.pairwise import euclidean_distances

from cpoison.defenses.base import (
    Defense,
    DefenseConfigBase,
    TrainingHooks,
    subset,
    train_logits,
)
from cpoison.training.recipe import Recipe
from cpoison.training.trainset import TrainSet


class EpicConfig(DefenseConfigBase):
    """``defense: {name: epic, every: 5, fraction: 0.2}``."""

    name: Literal["epic"] = "epic"
    every: int = Field(5, ge=1, description="epochs between medoid selections (k)")
    fraction: float = Field(0.2, gt=0, le=1, description="medoids per class / class size")
    drop_after: int = Field(1, ge=0, description="first epoch at which points may be dropped")
    cluster_threshold: float = Field(
        1.0, ge=0, description="drop examples whose medoid cluster weight is <= this")


def gradient_proxies(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Last-layer gradient proxies ``softmax(z) - onehot(y)``, ``[n, K]``."""
    probs = torch.softmax(logits.double(), dim=1)
    return probs - torch.nn.functional.one_hot(labels, logits.shape[1]).double()


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix [n, n] (float64, memory n^2, no [n, n, d] intermediate)."""
    return euclidean_distances(points.astype(np.float64))


def facility_location_medoids(dist: np.ndarray, budget: int) -> np.ndarray:
    """Indices of ``budget`` medoids (in selection order) by lazy greedy maximisation of
    ``F(S) = sum_i max_{j in S} s_ij`` with ``s_ij = d_max - dist_ij`` for a distance
    matrix ``dist`` [n, n]. Lazy evaluation is exact for submodular F (Minoux 1978)."""
    n = dist.shape[0]
    budget = min(budget, n)
    sim = dist.max() - dist  # >= 0, diagonal maximal
    cur = np.zeros(n)  # current max similarity of each point to the selection
    heap = [(-float(sim[:, j].sum()), j) for j in range(n)]  # (-gain bound, index)
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < budget and heap:
        _, j = heapq.heappop(heap)
        gain = float(np.maximum(sim[:, j] - cur, 0.0).sum())
        if not heap or gain >= -heap[0][0] - 1e-12:
            chosen.append(j)
            np.maximum(cur, sim[:, j], out=cur)
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(chosen, dtype=np.int64)


def isolated_points(
    proxies: torch.Tensor, labels: torch.Tensor, num_classes: int, fraction: float,
    threshold: float,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Bool [n]: examples whose medoid cluster (within their class) has weight <=
    ``threshold``; and the numbers of medoids and of small clusters."""
    drop = torch.zeros(labels.shape[0], dtype=torch.bool)
    n_medoids = n_small = 0
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() == 0:
            continue
        dist = pairwise_distances(proxies[idx].numpy())
        budget = max(1, math.ceil(fraction * idx.numel() - 1e-9))
        medoids = facility_location_medoids(dist, budget)
        assign = dist[:, medoids].argmin(axis=1)  # most similar medoid = nearest
        weights = np.bincount(assign, minlength=medoids.size)
        small = weights <= threshold
        drop[idx[torch.from_numpy(small[assign])]] = True
        n_medoids += int(medoids.size)
        n_small += int(small.sum())
    return drop, {"medoids": n_medoids, "small_clusters": n_small}


class EpicHooks(TrainingHooks):
    """Per-run hooks: plain loss; after an epoch, possibly a new selection (see module)."""

    def __init__(self, config: EpicConfig) -> None:
        super().__init__()
        self.config = config
        self.full: TrainSet | None = None
        self.alive: torch.Tensor | None = None
        self.selections: list[int] = []

    def begin(
        self, model: nn.Module, data: TrainSet, recipe: Recipe, seed: int,
        device: torch.device, memory_format: torch.memory_format,
    ) -> None:
        super().begin(model, data, recipe, seed, device, memory_format)
        self.full = data
        self.alive = torch.ones(len(data), dtype=torch.bool)

    def selection_epochs(self) -> list[int]:
        """Epochs (0-based) at whose start a selection runs."""
        assert self.recipe is not None
        milestones = self.recipe.milestone_epochs()
        last = max(milestones) if milestones else self.recipe.epochs - 1
        return [e for e in range(1, self.recipe.epochs)
                if e % self.config.every == 0 and e >= self.config.drop_after and e <= last]

    def after_epoch(self, epoch: int, model: nn.Module, data: TrainSet) -> TrainSet:
        assert self.full is not None and self.alive is not None
        upcoming = epoch + 1
        if upcoming not in self.selection_epochs():
            return data
        full = self.full
        labels = full.labels[full.indices]
        proxies = gradient_proxies(train_logits(model, full), labels)
        drop, facts = isolated_points(proxies, labels, proxies.shape[1], self.config.fraction,
                                      self.config.cluster_threshold)
        self.alive &= ~drop
        self.selections.append(upcoming)
        self.removed = full.indices[~self.alive]
        self.record = {"epic_selections": list(self.selections),
                       "epic_dropped": int((~self.alive).sum()), **{
                           f"epic_last_{k}": v for k, v in facts.items()}}
        return subset(full, self.alive)


class Epic(Defense):
    """EPIC: an epoch hook that drops isolated points during training (SPEC 7)."""

    name = "epic"
    frozen_features = True

    def __init__(self, config: EpicConfig) -> None:
        super().__init__(config)
        self.config: EpicConfig = config

    def training_hooks(self) -> EpicHooks:
        return EpicHooks(self.config)
