"""Deep k-NN filter (Peri et al., ECCV Workshops 2020, "Deep k-NN Defense against
Clean-label Data Poisoning Attacks"; SPEC 7).

On the penultimate features of a model trained on the (possibly poisoned) training set,
each training example is compared with its ``k`` nearest neighbours (Euclidean, itself
excluded); when the plurality label of the neighbours is not the example's own label, the
example is dropped. Ties: an example is kept when its own label is among the most frequent
neighbour labels (only a strict plurality against it drops it).

``k``: Peri et al. find the defense works best when ``k`` is about one to two times the
number of poisons ("normalised k" 1-2); Geiping et al.'s Witches' Brew code uses
``k = 2 * budget * n``. Default here: ``k = ceil(k_factor * epsilon * n)`` with
``k_factor = 2`` and ``epsilon`` the defender's assumed poison budget (fraction of the
training set; set it to the experiment's budget), or an explicit ``k``.
Neighbour search: scikit-learn ``NearestNeighbors`` (exact), queries in chunks so memory
stays at ``chunk * k``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.neighbors import NearestNeighbors

from cpoison.defenses.base import DefenseConfigBase, FeatureFilter, expected_count
from cpoison.errors import ConfigError


class DeepKnnConfig(DefenseConfigBase):
    """``defense: {name: deep_knn, epsilon: 0.02}`` or ``{name: deep_knn, k: 50}``."""

    name: Literal["deep_knn"] = "deep_knn"
    k: int | None = Field(None, ge=1, description="neighbours; None: ceil(k_factor*epsilon*n)")
    k_factor: float = Field(2.0, gt=0, description="k / expected number of poisons")
    epsilon: float = Field(0.02, gt=0, le=1,
                           description="assumed poisoned fraction of the training set")


class DeepKnn(FeatureFilter):
    """Drop examples whose k nearest neighbours' plurality label differs from theirs."""

    name = "deep_knn"

    def __init__(self, config: DeepKnnConfig) -> None:
        super().__init__(config)
        self.config: DeepKnnConfig = config

    def neighbours(self, n: int) -> int:
        """The ``k`` used for a training set of ``n`` examples."""
        if self.config.k is not None:
            return self.config.k
        return max(1, expected_count(self.config.k_factor * self.config.epsilon, n))

    def check_sizes(self, n_train: int, n_calibration: int) -> None:
        k = self.neighbours(n_train)
        if k >= n_train:
            raise ConfigError(
                f"defense deep_knn: k = {k} neighbours needs a training set of more than {k} "
                f"examples, got {n_train}; lower k (or epsilon / k_factor)")

    def suspects(
        self, features: torch.Tensor, labels: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        n = features.shape[0]
        self.check_sizes(n, 0)
        k = self.neighbours(n)
        feats = features.double().numpy()
        lab = labels.numpy()
        num_classes = int(lab.max()) + 1 if n else 0
        index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(feats)
        drop = np.zeros(n, dtype=bool)
        chunk = max(1, 2**22 // (k + 1))
        for start in range(0, n, chunk):
            rows = np.arange(start, min(n, start + chunk))
            _, nbr = index.kneighbors(feats[rows])
            # remove the query itself (normally the first hit; duplicates may reorder)
            not_self = nbr != rows[:, None]
            keep_cols = np.where(not_self.all(axis=1)[:, None],
                                 np.arange(k + 1)[None, :] < k, not_self)
            nbr = nbr[keep_cols].reshape(rows.size, k)
            votes = np.zeros((rows.size, num_classes), dtype=np.int64)
            np.add.at(votes, (np.repeat(np.arange(rows.size), k), lab[nbr].ravel()), 1)
            own = votes[np.arange(rows.size), lab[rows]]
            drop[rows] = own < votes.max(axis=1)
        return torch.from_numpy(drop), {"k": k}
