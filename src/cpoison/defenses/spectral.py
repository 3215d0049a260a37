"""Spectral signatures filter (Tran, Li and Madry, NeurIPS 2018, "Spectral Signatures in
Backdoor Attacks"; SPEC 7).

Per class ``c``: centre the penultimate features of the class's training examples
(features of a model trained on the possibly poisoned set), take the top right singular
vector ``v`` of the centred matrix, score every example by ``<x_i - mean, v>^2`` and drop
the ``ceil(1.5 * P)`` highest scores (at most ``n_c - 1``); 1.5 is the overestimation
factor of Tran et al.

``P``, the expected number of poisons, depends on ``scope``:

* ``"dataset"`` (default): ``epsilon`` is the assumed poison budget as a fraction of the
  whole training set, and any one class may hold all of them, so ``P = epsilon * n`` in
  every class (Geiping et al.'s Witches' Brew convention, and Tran et al.'s rule when the
  target class is unknown);
* ``"class"``: ``epsilon`` is the poisoned fraction within each class, ``P = epsilon *
  n_c`` (Tran et al.'s epsilon).

SVD: ``torch.linalg.svd`` of the centred class matrix in float64 (deterministic).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from cpoison.defenses.base import DefenseConfigBase, FeatureFilter, expected_count


class SpectralSignaturesConfig(DefenseConfigBase):
    """``defense: {name: spectral_signatures, epsilon: 0.02}``."""

    name: Literal["spectral_signatures"] = "spectral_signatures"
    epsilon: float = Field(0.02, gt=0, le=1, description="assumed poisoned fraction")
    scope: Literal["dataset", "class"] = Field(
        "dataset", description="epsilon is a fraction of the training set or of each class")
    overestimate: float = Field(1.5, gt=0, description="drop overestimate * P per class")


def outlier_scores(features: torch.Tensor) -> torch.Tensor:
    """``<x_i - mean, v>^2`` with ``v`` the top right singular vector of the centred rows."""
    x = features.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return (x @ vh[0]).pow(2)


class SpectralSignatures(FeatureFilter):
    """Drop, per class, the examples with the largest projections on the top direction."""

    name = "spectral_signatures"

    def __init__(self, config: SpectralSignaturesConfig) -> None:
        super().__init__(config)
        self.config: SpectralSignaturesConfig = config

    def suspects(
        self, features: torch.Tensor, labels: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        n = features.shape[0]
        drop = torch.zeros(n, dtype=torch.bool)
        per_class: dict[str, int] = {}
        for c in torch.unique(labels).tolist():
            idx = torch.nonzero(labels == c).flatten()
            if idx.numel() < 2:
                continue
            base = n if self.config.scope == "dataset" else idx.numel()
            expected = self.config.epsilon * base
            count = min(expected_count(self.config.overestimate * expected, 1), idx.numel() - 1)
            scores = outlier_scores(features[idx])
            top = torch.topk(scores, count).indices if count > 0 else idx[:0]
            drop[idx[top]] = True
            per_class[str(c)] = count
        return drop, {"dropped_per_class": per_class}
