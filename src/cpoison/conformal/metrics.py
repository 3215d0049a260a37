"""Metrics of prediction sets (SPEC 3.3).

Sets are bool tensors ``[N, K]`` (``sets[i, y]`` is True when label ``y`` is in ``C(x_i)``),
labels integer tensors ``[N]``.

- :func:`coverage` = mean ``1[y in C(x)]``; :func:`mean_size` = mean ``|C(x)|``;
- :func:`class_conditional_coverage` / :func:`class_conditional_size`: the same restricted to
  the points whose true label is ``k`` (NaN for a class absent from ``labels``);
- :func:`size_histogram`: counts of set sizes ``0..K``; :func:`empty_share`,
  :func:`full_share`;
- attack metrics (SPEC 3.3, SPEC 6): :func:`reduction_ratio`, :func:`expansion_ratio`,
  :func:`normalized_reduction_ratio`, :func:`prediction_consistency`;
- :func:`summarize`: all of the set metrics as a JSON-friendly dict (NaN becomes ``None``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from cpoison.conformal.inputs import ArrayLike, as_tensor
from cpoison.conformal.scores import check_labels
from cpoison.errors import CpoisonError

__all__ = [
    "class_conditional_coverage",
    "class_conditional_size",
    "coverage",
    "covered",
    "empty_share",
    "expansion_ratio",
    "full_share",
    "mean_size",
    "normalized_reduction_ratio",
    "prediction_consistency",
    "reduction_ratio",
    "set_sizes",
    "size_histogram",
    "summarize",
]


def _check_sets(sets: ArrayLike) -> Tensor:
    sets = as_tensor(sets, "prediction sets", "bool")
    if sets.dim() != 2:
        raise CpoisonError(
            f"prediction sets must be a bool tensor [N, K], got shape {tuple(sets.shape)}"
        )
    if sets.shape[0] == 0:
        raise CpoisonError("prediction sets are empty (N = 0): no metric can be computed")
    return sets


def _check_num_classes(sets: Tensor, num_classes: int | None) -> int:
    k = sets.shape[1]
    if num_classes is not None and num_classes != k:
        raise CpoisonError(f"num_classes={num_classes} but the sets have {k} columns")
    return k


def covered(sets: ArrayLike, labels: ArrayLike) -> Tensor:
    """Per-point indicator ``1[y_i in C(x_i)]`` as a bool tensor ``[N]``."""
    sets = _check_sets(sets)
    labels = check_labels(labels, sets.shape[0], sets.shape[1]).to(sets.device)
    return sets.gather(1, labels.unsqueeze(1)).squeeze(1)


def coverage(sets: ArrayLike, labels: ArrayLike) -> float:
    """Empirical coverage: the share of points whose true label is in their set."""
    return float(covered(sets, labels).double().mean())


def set_sizes(sets: ArrayLike) -> Tensor:
    """Set sizes ``|C(x_i)|`` as an int64 tensor ``[N]``."""
    return _check_sets(sets).sum(dim=1)


def mean_size(sets: ArrayLike) -> float:
    """Mean set size."""
    return float(set_sizes(sets).double().mean())


def _per_class_mean(values: Tensor, labels: Tensor, k: int) -> Tensor:
    counts = torch.bincount(labels, minlength=k).double()
    sums = torch.zeros(k, dtype=torch.float64, device=values.device)
    sums.index_add_(0, labels, values.double())
    out = sums / counts
    out[counts == 0] = math.nan
    return out


def class_conditional_coverage(
    sets: ArrayLike, labels: ArrayLike, num_classes: int | None = None
) -> Tensor:
    """Coverage among the points of each true class, float64 ``[K]`` (NaN if absent)."""
    sets = _check_sets(sets)
    k = _check_num_classes(sets, num_classes)
    labels = check_labels(labels, sets.shape[0], k).to(sets.device)
    hit = covered(sets, labels)
    return _per_class_mean(hit, labels, k)


def class_conditional_size(
    sets: ArrayLike, labels: ArrayLike, num_classes: int | None = None
) -> Tensor:
    """Mean set size among the points of each true class, float64 ``[K]`` (NaN if absent)."""
    sets = _check_sets(sets)
    k = _check_num_classes(sets, num_classes)
    labels = check_labels(labels, sets.shape[0], k).to(sets.device)
    return _per_class_mean(set_sizes(sets), labels, k)


def size_histogram(sets: ArrayLike) -> Tensor:
    """Counts of set sizes ``0, 1, ..., K`` as an int64 tensor ``[K + 1]``."""
    sets = _check_sets(sets)
    k = sets.shape[1]
    return torch.bincount(set_sizes(sets), minlength=k + 1)


def empty_share(sets: ArrayLike) -> float:
    """Share of empty sets."""
    return float((set_sizes(sets) == 0).double().mean())


def full_share(sets: ArrayLike) -> float:
    """Share of sets holding every label."""
    sets = _check_sets(sets)
    return float((set_sizes(sets) == sets.shape[1]).double().mean())


def _finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def summarize(
    sets: ArrayLike, labels: ArrayLike, num_classes: int | None = None
) -> dict[str, float | int | list[float | None] | list[int]]:
    """All the set metrics above as a JSON-friendly dict (NaN per class -> ``None``)."""
    sets = _check_sets(sets)
    k = _check_num_classes(sets, num_classes)
    labels = check_labels(labels, sets.shape[0], k)
    return {
        "n": int(sets.shape[0]),
        "num_classes": k,
        "coverage": coverage(sets, labels),
        "mean_size": mean_size(sets),
        "empty_share": empty_share(sets),
        "full_share": full_share(sets),
        "class_conditional_coverage": [
            _finite_or_none(v) for v in class_conditional_coverage(sets, labels, k).tolist()
        ],
        "class_conditional_size": [
            _finite_or_none(v) for v in class_conditional_size(sets, labels, k).tolist()
        ],
        "size_histogram": [int(v) for v in size_histogram(sets).tolist()],
    }


def _positive_size(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise CpoisonError(f"{name} must be a positive mean set size, got {value!r}")
    return value


def reduction_ratio(benign_size: float, victim_size: float) -> float:
    """Set size reduction ratio ``(benign - victim) / benign`` (SPEC 3.3)."""
    b = _positive_size("benign_size", benign_size)
    return (b - float(victim_size)) / b


def expansion_ratio(benign_size: float, victim_size: float) -> float:
    """Set size expansion ratio ``(victim - benign) / benign`` (SPEC 3.3)."""
    b = _positive_size("benign_size", benign_size)
    return (float(victim_size) - b) / b


def normalized_reduction_ratio(benign_size: float, victim_size: float) -> float:
    """Reduction ratio divided by its maximum ``1 - 1 / benign`` (SPEC 3.3).

    NaN when the benign sets are already singletons or smaller (``benign <= 1``): no reduction
    to a singleton is possible then.
    """
    b = _positive_size("benign_size", benign_size)
    if b <= 1.0:
        return math.nan
    return reduction_ratio(b, victim_size) / (1.0 - 1.0 / b)


def prediction_consistency(benign: ArrayLike, victim: ArrayLike) -> float:
    """Share of inputs with the same argmax label under the benign and the victim model.

    Takes logits ``[N, K]`` or predicted labels ``[N]`` for each (tensors, arrays or lists).
    """
    preds = []
    for name, t in (("benign", benign), ("victim", victim)):
        if not isinstance(t, Tensor):
            arr = np.asarray(t) if isinstance(t, (list, tuple, np.ndarray)) else None
            kind = "int" if arr is not None and arr.ndim == 1 else "float"
            t = as_tensor(t, name, kind)
        if t.dim() not in (1, 2) or t.shape[0] == 0:
            raise CpoisonError(f"{name} must be non-empty logits [N, K] or labels [N]")
        preds.append(t.argmax(dim=1) if t.dim() == 2 else t.long())
    if preds[0].shape != preds[1].shape:
        raise CpoisonError(
            f"benign and victim predictions differ in length: "
            f"{preds[0].shape[0]} vs {preds[1].shape[0]}"
        )
    return float((preds[0] == preds[1].to(preds[0].device)).double().mean())
