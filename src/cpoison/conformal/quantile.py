"""The split-conformal threshold (SPEC 3.2).

``q`` is the ``k``-th smallest of the ``n`` calibration scores with
``k = ceil((n + 1)(1 - alpha))``; if ``k > n``, ``q = +inf`` and a warning says the
calibration set is too small for ``alpha``. The order statistic is exact: it is selected with
``torch.kthvalue`` (no interpolation, no float index arithmetic), so it stays correct for
``n`` above ``2^24`` and for any score dtype. Gradients flow to the selected score, which the
attack losses of SPEC 4.2 rely on.
"""

from __future__ import annotations

import math
import numbers
import warnings
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from cpoison.conformal.inputs import ArrayLike, as_tensor
from cpoison.errors import ConfigError, CpoisonError

__all__ = ["check_alpha", "conformal_quantile", "conformal_rank", "min_calibration_size"]


def check_alpha(alpha: object) -> float:
    """Return ``alpha`` as a float, or raise :class:`ConfigError` unless it lies in (0, 1).

    Accepts Python, numpy and 1-element torch reals; a float32 or float16 scalar is read as
    the shortest decimal it prints as (``np.float32(0.7) -> 0.7``), so that
    :func:`conformal_rank` gets the level the user wrote.
    """
    if isinstance(alpha, Tensor) and alpha.numel() == 1:
        try:  # keep the dtype, so that a float32 0.7 is read back as 0.7 below
            alpha = alpha.detach().cpu().reshape(()).numpy()[()]
        except TypeError:  # bfloat16 has no numpy dtype
            alpha = alpha.item()
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(alpha, np.floating):
        # numpy prints the shortest decimal that round-trips in the scalar's own precision:
        # np.float32(0.7) is 0.699999988 as a double but prints as 0.7
        alpha = float(str(alpha))
    value = float(alpha)
    if not (0.0 < value < 1.0):  # also rejects NaN
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    return value


def conformal_rank(n: int, alpha: float) -> int:
    """``k = ceil((n + 1)(1 - alpha))``, computed without floating-point error.

    The product is evaluated exactly with :class:`fractions.Fraction` on the binary value of
    ``alpha``. A float ``alpha`` such as ``0.1`` or ``0.3`` is only an approximation of the
    decimal the user meant, off by at most ``alpha * 2^-53``, so ``(n + 1)(1 - alpha)`` may
    land a hair above an integer (``n = 9, alpha = 0.3`` gives ``7.000...01``). When the exact
    product lies within ``(n + 1) * 1e-15`` of an integer, that integer is taken as ``k``
    (bigger than any representation error, far smaller than any meaningful difference);
    otherwise ``k`` is the ceiling. Examples: ``n = 9, alpha = 0.1 -> 9``;
    ``n = 9, alpha = 0.3 -> 7``; ``n = 2, alpha = 1/3 -> 2``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CpoisonError(f"n must be a non-negative integer, got {n!r}")
    a = Fraction(check_alpha(alpha))
    x = (n + 1) * (1 - a)
    nearest = round(x)
    if abs(x - nearest) <= Fraction(n + 1) * Fraction(1, 10**15):
        return int(nearest)
    return math.ceil(x)


def min_calibration_size(alpha: float) -> int:
    """Smallest ``n`` with ``conformal_rank(n, alpha) <= n``, i.e. a finite threshold.

    This is ``ceil(1 / alpha) - 1`` for decimal alphas (``alpha = 0.1 -> 9``).
    """
    alpha = check_alpha(alpha)
    n = max(0, math.ceil(1.0 / alpha) - 3)
    while conformal_rank(n, alpha) > n:
        n += 1
    return n


def conformal_quantile(scores: ArrayLike, alpha: float) -> Tensor:
    """The conformal threshold ``q`` of 1-D calibration ``scores`` at level ``alpha``.

    Returns a 0-d tensor of the scores' dtype and device: the ``k``-th smallest score,
    ``k = conformal_rank(n, alpha)`` (SPEC 3.2), selected exactly with ``torch.kthvalue``;
    ``+inf`` with a :class:`UserWarning` when ``k > n``. Differentiable with respect to the
    selected score.

    ``scores`` may be a tensor, a NumPy array or a list of floats. Raises
    :class:`ConfigError` for ``alpha`` outside (0, 1) and :class:`CpoisonError` for empty,
    non-1-D, non-floating or NaN scores.
    """
    alpha = check_alpha(alpha)
    scores = as_tensor(scores, "calibration scores", "float")
    if scores.dim() != 1:
        raise CpoisonError(
            f"calibration scores must be 1-D (one per calibration point), "
            f"got shape {tuple(scores.shape)}"
        )
    n = scores.shape[0]
    if n == 0:
        raise CpoisonError("the calibration set is empty: conformal calibration needs scores")
    n_nan = int(torch.isnan(scores).sum().item())
    if n_nan:
        raise CpoisonError(f"calibration scores contain {n_nan} NaN value(s) out of {n}")
    k = conformal_rank(n, alpha)
    if k > n:
        warnings.warn(
            f"the calibration set (n={n}) is too small for alpha={alpha}: "
            f"k = ceil((n+1)(1-alpha)) = {k} > n, so the threshold is +inf and every set is "
            f"the full label set; use n >= {min_calibration_size(alpha)}",
            UserWarning,
            stacklevel=2,
        )
        return torch.full((), math.inf, dtype=scores.dtype, device=scores.device)
    return torch.kthvalue(scores, k).values
