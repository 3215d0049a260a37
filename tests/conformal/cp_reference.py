"""Independent plain-numpy reference of SPEC 3.1 / 3.2 for the tests (and the package's
MAPIE helper, FixedProbaClassifier, re-exported).

Written from the SPEC definitions with explicit loops, sharing no code with cpoison.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from cpoison.conformal.adapters import FixedProbaClassifier

__all__ = ["FixedProbaClassifier", "make_data", "ref_quantile", "ref_rank", "ref_scores",
           "ref_softmax"]


def ref_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ref_scores(
    p: np.ndarray,
    kind: str,
    u: np.ndarray | None = None,
    lam: float = 0.0,
    k_reg: int = 0,
) -> np.ndarray:
    """All-label scores [N, K] straight from SPEC 3.1 (u=None means non-randomized: u = 1)."""
    n, k = p.shape
    out = np.empty((n, k), dtype=np.float64)
    for i in range(n):
        ui = 1.0 if u is None else float(u[i])
        for y in range(k):
            if kind == "hps":
                out[i, y] = 1.0 - p[i, y]
                continue
            # labels ranked before y: larger probability, ties broken by index
            before = [j for j in range(k) if p[i, j] > p[i, y] or (p[i, j] == p[i, y] and j < y)]
            rank = len(before) + 1
            s = 0.0
            for j in before:
                s += p[i, j]
            s += ui * p[i, y]
            if kind == "raps":
                s += lam * max(0, rank - k_reg)
            out[i, y] = s
    return out


def ref_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)) with alpha read as the decimal it was written as."""
    return math.ceil((n + 1) * (1 - Fraction(str(alpha))))


def ref_quantile(cal_scores: np.ndarray, alpha: float) -> float:
    n = len(cal_scores)
    k = ref_rank(n, alpha)
    if k > n:
        return math.inf
    return float(sorted(cal_scores.tolist())[k - 1])


def make_data(seed: int, n: int, k: int, scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable synthetic (logits, labels): a mis-calibrated model of a noisy truth."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    truth = ref_softmax(0.7 * logits + rng.normal(size=(n, k)))
    cum = truth.cumsum(axis=1)
    labels = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=k - 1)
    return logits, labels
