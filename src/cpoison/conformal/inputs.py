"""Conversion of user inputs to tensors for the public conformal API.

Every function of :mod:`cpoison.conformal` that takes logits, labels, scores or prediction
sets also accepts Python lists (and tuples) and NumPy arrays, as TorchCP and MAPIE users
hold them. They are converted here, with their dtype checked:

- logits and scores: floating-point arrays keep their dtype (float16 / float32 / float64);
  lists of numbers become float64 (the precision of a Python float); an integer or bool
  *array* is refused, as an integer tensor is (logits are never integers by accident
  of the model, only by a mix-up of arguments);
- labels: integer arrays and lists of ints become int64; float, bool and complex are refused;
- prediction sets: bool arrays and lists of bools become bool tensors; 0/1 integers are
  refused (``sets.astype(bool)`` says what was meant).

Tensors are returned as they are (no copy, gradients kept). Anything else (a string, a
dict, a ragged list, an object array) raises :class:`~cpoison.errors.CpoisonError` with one
sentence naming the argument, what it got and what it takes. NumPy arrays become CPU tensors
that share memory with the array when it is writable.

Probabilities passed where logits belong (every row non-negative and summing to 1) are
accepted but warned about by the predictors (``calibrate``, ``predict``) and the scores'
``score`` / ``score_labels``, with :class:`~cpoison.errors.ProbabilitiesAsLogitsWarning`: the
scores apply a softmax, so probabilities would be squashed a second time and give different
sets. Pass ``log(p)`` instead (the softmax of ``log p`` is ``p``; clip ``p`` away from 0,
since logits must be finite).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from cpoison.errors import CpoisonError, ProbabilitiesAsLogitsWarning

__all__ = ["ArrayLike", "as_tensor", "looks_like_probabilities", "warn_if_probabilities"]

#: What the conformal API accepts where it takes an array: a tensor, a NumPy array or a
#: (nested) list or tuple of numbers.
ArrayLike = Any

Kind = Literal["float", "int", "bool"]

_KIND_WORDS = {
    "float": "floating-point numbers",
    "int": "integers",
    "bool": "booleans (True / False)",
}


def _type_name(x: object) -> str:
    return type(x).__name__


def _check_tensor_dtype(t: Tensor, what: str, kind: Kind) -> Tensor:
    ok = {
        "float": t.is_floating_point(),
        "int": not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool),
        "bool": t.dtype == torch.bool,
    }[kind]
    if not ok:
        article = "an" if kind == "int" else "a"
        noun = {"float": "floating-point", "int": "integer", "bool": "bool"}[kind]
        raise CpoisonError(f"{what} must be {article} {noun} tensor or array, got dtype {t.dtype}")
    return t


def as_tensor(x: ArrayLike, what: str, kind: Kind = "float") -> Tensor:
    """``x`` as a tensor of the given ``kind``, or :class:`CpoisonError` naming ``what``.

    Args:
        x: A :class:`torch.Tensor` (returned as it is), a NumPy array, a NumPy scalar, or a
            (nested) list or tuple of numbers.
        what: The argument's name for error messages (``"calibration logits"``).
        kind: ``"float"`` (logits, scores), ``"int"`` (labels) or ``"bool"`` (prediction
            sets).

    Returns:
        A tensor, on the CPU for NumPy and list inputs; int64 for ``kind="int"`` unless
        ``x`` was already an integer tensor.
    """
    if isinstance(x, Tensor):
        return _check_tensor_dtype(x, what, kind)
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError:  # ragged nesting
            raise CpoisonError(
                f"{what} must be a rectangular array of {_KIND_WORDS[kind]}; got a ragged "
                f"{_type_name(x)} (rows of different lengths)"
            ) from None
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise CpoisonError(
                f"{what} must hold {_KIND_WORDS[kind]}, got a {_type_name(x)} of "
                f"{_type_name(np.ravel(arr)[0]) if arr.size else 'nothing'}"
            )
        if kind == "float" and arr.dtype.kind in "iub":
            if arr.dtype.kind == "b":
                raise CpoisonError(f"{what} must hold {_KIND_WORDS[kind]}, got booleans")
            arr = arr.astype(np.float64)  # a list of Python numbers has no dtype to keep
        return _from_numpy(arr, what, kind)
    if isinstance(x, (np.ndarray, np.generic)):
        return _from_numpy(np.asarray(x), what, kind)
    if hasattr(x, "__array__") and not isinstance(x, (str, bytes)):  # pandas, xarray, ...
        try:
            arr = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - any failure is the user's type
            raise CpoisonError(f"{what} could not be read as an array: {exc}") from None
        return _from_numpy(arr, what, kind)
    raise CpoisonError(
        f"{what} must be a torch.Tensor, a NumPy array or a list of {_KIND_WORDS[kind]}, "
        f"got {_type_name(x)}"
    )


def _from_numpy(arr: np.ndarray, what: str, kind: Kind) -> Tensor:
    dk = arr.dtype.kind
    ok = {"float": dk == "f", "int": dk in "iu", "bool": dk == "b"}[kind]
    if not ok:
        hint = ""
        if kind == "bool" and dk in "iu":
            hint = " (use sets.astype(bool) for a 0/1 mask)"
        elif kind == "int" and dk == "f":
            hint = " (use labels.astype(int) for whole-number floats)"
        raise CpoisonError(
            f"{what} must hold {_KIND_WORDS[kind]}, got a NumPy array of dtype {arr.dtype}{hint}"
        )
    if dk == "f" and arr.dtype.itemsize > 8:
        arr = arr.astype(np.float64)  # long double has no torch dtype
    if dk == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)  # uint16/32/64 tensors support few operations
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = np.array(arr)  # torch.from_numpy warns on read-only, refuses reversed arrays
    t = torch.from_numpy(arr)
    if kind == "int":
        t = t.long()
    return t


def looks_like_probabilities(logits: Tensor, atol: float | None = None) -> bool:
    """Whether every row of ``logits [N, K]`` is non-negative and sums to 1.

    ``atol`` is the tolerance on the row sums (default ``1e-3`` for float16 and bfloat16,
    ``1e-5`` for float32, ``1e-9`` for float64). Needs ``K >= 2`` and ``N >= 1``: a single
    column of ones is as likely logits as probabilities.
    """
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        return False
    with torch.no_grad():
        lo, hi = torch.aminmax(logits.detach())
        if not (bool(lo >= 0) and bool(hi <= 1)):
            return False  # the common case: one pass, no row sums
        if atol is None:
            atol = {torch.float64: 1e-9, torch.float32: 1e-5}.get(logits.dtype, 1e-3)
        sums = logits.detach().sum(dim=1, dtype=torch.float64)
        return bool(((sums - 1.0).abs() <= atol * logits.shape[1]).all())


def warn_if_probabilities(logits: Tensor, what: str = "logits", stacklevel: int = 3) -> None:
    """Warn with :class:`ProbabilitiesAsLogitsWarning` if ``logits`` look like probabilities."""
    if looks_like_probabilities(logits):
        warnings.warn(
            f"{what} look like probabilities (every row is non-negative and sums to 1), but "
            "cpoison's scores take logits and apply a softmax themselves, so the sets would "
            "come from softmax(p), not p; pass log(p) instead (clipped away from 0: "
            "torch.log(p.clamp_min(1e-12)))",
            ProbabilitiesAsLogitsWarning,
            stacklevel=stacklevel,
        )
