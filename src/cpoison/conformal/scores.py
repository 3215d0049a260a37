"""Nonconformity scores on logits (SPEC 3.1).

Scores are plain callables on logits, kept apart from the predictors (TorchCP style): a score
maps logits ``[N, K]`` to the nonconformity of every label, ``[N, K]``; larger means less
conforming. ``p = softmax(logits / T)`` throughout.

- :class:`HPS` (also LAC / THR; Sadinle et al. 2019): ``S(x, y) = 1 - p_y``.
- :class:`APS` (Romano et al. 2020): ``S(x, y) = sum_{j ranked before y} p_j + u * p_y``.
- :class:`RAPS` (Angelopoulos et al. 2021): ``S_APS(x, y) + lam * max(0, rank(y) - k_reg)``.
- :class:`NLL`: ``S(x, y) = -log p_y``, an increasing function of HPS's score, so its sets
  are HPS's sets. It exists for the attack losses (SPEC 4.2): its gradient does not vanish
  on confidently classified inputs, where ``1 - p_y`` is flat.

Conventions (SPEC 3.1, and the choices this module makes where the SPEC is silent):

- *Ranking and ties.* Labels are ranked by decreasing probability with ties broken by index
  (a stable descending sort: among equal probabilities the smaller index ranks first).
  "``j : p_j > p_y``" in SPEC 3.1 therefore means "``j`` ranked before ``y``"; the ranks are
  1-based for RAPS.
- *Randomization.* ``u ~ U(0, 1)`` is one number per input, shared across all labels of that
  input. Non-randomized means ``u = 1`` (the inclusive cumulative sum), never ``u = 0``
  (SPEC 10 lists that discrepancy between libraries as a known bug). A randomized score takes
  ``u`` explicitly or draws it from the ``torch.Generator`` passed in; with neither it raises
  :class:`~cpoison.errors.CpoisonError` instead of falling back to the global RNG or to a
  hidden fixed seed. ``u`` is drawn as ``torch.rand(N, dtype=float64)`` on the generator's
  device, then cast to the logits' dtype and device, so the same generator state gives the
  same ``u`` for every logits dtype and for all labels. Non-randomized scores ignore both
  ``generator`` and ``u`` (so generic code may pass them to any score).
- *Differentiability.* :meth:`ConformalScore.score` is a differentiable torch function of the
  logits (the attack losses of SPEC 4 back-propagate through it): APS is computed as sort,
  exclusive cumsum, scatter back, so gradients reach every ``p_j`` that precedes ``y``.
- *Fast path.* :meth:`ConformalScore.score_no_grad` and :meth:`ConformalScore.iter_chunks`
  run under ``torch.no_grad`` in row chunks, so memory stays bounded for ``10^6 x K`` inputs.
  They use the same arithmetic as :meth:`ConformalScore.score` and return the same values.
- Scores are computed in the logits' dtype and on their device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from cpoison.conformal.inputs import ArrayLike, as_tensor, warn_if_probabilities
from cpoison.errors import ConfigError, CpoisonError

__all__ = [
    "APS",
    "HPS",
    "NLL",
    "RAPS",
    "SCORE_NAMES",
    "ConformalScore",
    "build_score",
    "register_score",
    "score_names",
    "check_labels",
    "check_logits",
    "draw_uniform",
]

#: Default number of logits entries processed at once by the no-grad chunked path.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def check_logits(
    logits: ArrayLike, what: str = "logits", warn_probabilities: bool = False
) -> Tensor:
    """``logits`` as a finite floating ``[N, K]`` tensor, or :class:`CpoisonError`.

    Lists and NumPy arrays are converted (:func:`~cpoison.conformal.inputs.as_tensor`).
    With ``warn_probabilities``, rows that look like probabilities (non-negative, summing to
    1) give a :class:`~cpoison.errors.ProbabilitiesAsLogitsWarning`.
    """
    logits = as_tensor(logits, what, "float")
    if logits.dim() != 2:
        raise CpoisonError(f"{what} must have shape [N, K], got shape {tuple(logits.shape)}")
    if logits.shape[1] < 1:
        raise CpoisonError(f"{what} must have at least one class column, got shape [N, 0]")
    if logits.numel() == 0:
        return logits
    lo, hi = torch.aminmax(logits.detach())  # one fast pass; NaN propagates, inf shows up
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        n_bad = int((~torch.isfinite(logits)).sum().item())
        if n_bad:
            raise CpoisonError(
                f"{what} contain {n_bad} non-finite value(s) (NaN or inf) out of "
                f"{logits.numel()}; check the model's outputs"
            )
    if warn_probabilities and bool(lo >= 0) and bool(hi <= 1):  # rare for logits: then sum
        warn_if_probabilities(logits, what, stacklevel=4)
    return logits


def draw_uniform(
    n: int,
    generator: torch.Generator | None,
    like: Tensor,
    what: str = "a randomized score",
) -> Tensor:
    """Draw ``u ~ U(0, 1)^n`` from ``generator`` (float64 on its device), cast like ``like``.

    Raises :class:`CpoisonError` when ``generator`` is ``None``: cpoison never uses the global
    RNG (SPEC 3.1, SPEC 10).
    """
    if generator is None:
        raise CpoisonError(
            f"{what} needs randomness: pass generator=torch.Generator().manual_seed(seed) "
            "or explicit u (cpoison never uses the global RNG)"
        )
    if not isinstance(generator, torch.Generator):
        raise CpoisonError(f"{what}: generator must be a torch.Generator, got "
                           f"{type(generator).__name__} (torch.Generator().manual_seed(seed))")
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
    return u.to(device=like.device, dtype=like.dtype)


def check_labels(labels: ArrayLike, n: int, k: int) -> Tensor:
    """Validate integer ``labels [n]`` in ``[0, k)`` (tensor, array or list); return int64."""
    labels = as_tensor(labels, "labels", "int")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise CpoisonError(
            f"labels must have shape [{n}] to match the logits, got shape {tuple(labels.shape)}"
        )
    if n:
        lo, hi = int(labels.min().item()), int(labels.max().item())
        if lo < 0 or hi >= k:
            raise CpoisonError(
                f"labels must lie in [0, {k - 1}] for {k} classes, got values in [{lo}, {hi}]"
            )
    return labels.long()


def _check_positive_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


class ConformalScore:
    """Base class of the nonconformity scores of SPEC 3.1.

    Subclasses implement :meth:`_scores_from_probs`, mapping probabilities ``[N, K]`` and the
    per-input uniforms ``u`` (``[N]`` or ``None`` for non-randomized scores) to scores
    ``[N, K]``, or override :meth:`_scores_from_logits` when the scores are better computed
    from the logits directly (as NLL's log-softmax).
    """

    #: canonical lowercase name, as accepted by :func:`build_score`
    name: str = "score"
    #: whether the score uses a per-input uniform ``u``
    randomized: bool = False

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = _check_positive_finite("temperature", temperature)

    # -- building blocks -------------------------------------------------------------------

    def probabilities(self, logits: Tensor) -> Tensor:
        """``softmax(logits / T)`` along the class dimension (differentiable).

        Written out as ``exp(z - max z) / sum exp(z - max z)``: the same values as
        ``torch.softmax`` up to rounding, several times faster than it on CPU for few
        classes; under ``torch.no_grad`` the intermediate buffers are reused in place.
        """
        z = logits if self.temperature == 1.0 else logits / self.temperature
        if torch.is_grad_enabled() and z.requires_grad:
            e = torch.exp(z - z.amax(dim=1, keepdim=True))
            return e / e.sum(dim=1, keepdim=True)
        e = torch.sub(z, z.amax(dim=1, keepdim=True)).exp_()
        return e.div_(e.sum(dim=1, keepdim=True))

    def _scores_from_probs(self, probs: Tensor, u: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _scores_from_logits(self, logits: Tensor, u: Tensor | None) -> Tensor:
        """Scores from logits; by default through :meth:`probabilities`."""
        return self._scores_from_probs(self.probabilities(logits), u)

    def _resolve_u(
        self, logits: Tensor, generator: torch.Generator | None, u: ArrayLike | None
    ) -> Tensor | None:
        """The per-input uniforms: ``None`` when not randomized, else ``u`` or a fresh draw."""
        if not self.randomized:
            return None
        n = logits.shape[0]
        if u is None:
            return draw_uniform(n, generator, logits, what=f"randomized {self.name.upper()}")
        u = as_tensor(u, "u", "float")
        if u.dim() != 1 or u.shape[0] != n:
            raise CpoisonError(
                f"u must have shape [{n}] (one uniform per input), got shape {tuple(u.shape)}"
            )
        u = u.to(device=logits.device, dtype=logits.dtype)
        if n and not bool(((u >= 0) & (u <= 1)).all()):
            raise CpoisonError("u must lie in [0, 1]")
        return u

    # -- public API ------------------------------------------------------------------------
    # Logits, labels and u may be tensors, NumPy arrays or lists (cpoison.conformal.inputs).
    # score / score_labels (and SplitConformal) warn once per call about logits that look like
    # probabilities; the bulk no-grad paths do not, since the RPS defense scores its vote
    # shares pi = counts / k_t (rows summing to 1) through them on purpose.

    def score(
        self,
        logits: ArrayLike,
        generator: torch.Generator | None = None,
        u: ArrayLike | None = None,
    ) -> Tensor:
        """Scores of every label, ``[N, K]``; differentiable with respect to ``logits``.

        ``u`` (``[N]``, in ``[0, 1]``) overrides the draw from ``generator`` for randomized
        scores; both are ignored by non-randomized scores.
        """
        logits = check_logits(logits, warn_probabilities=True)
        return self._scores_from_logits(logits, self._resolve_u(logits, generator, u))

    __call__ = score

    def score_labels(
        self,
        logits: ArrayLike,
        labels: ArrayLike,
        generator: torch.Generator | None = None,
        u: ArrayLike | None = None,
    ) -> Tensor:
        """Scores of the given labels, ``[N]``; differentiable with respect to ``logits``.

        Uses the same draw of ``u`` as :meth:`score` would for the same generator state.
        """
        logits = check_logits(logits, warn_probabilities=True)
        labels = check_labels(labels, logits.shape[0], logits.shape[1])
        full = self._scores_from_logits(logits, self._resolve_u(logits, generator, u))
        return full.gather(1, labels.to(full.device).unsqueeze(1)).squeeze(1)

    def iter_chunks(
        self,
        logits: ArrayLike,
        generator: torch.Generator | None = None,
        u: ArrayLike | None = None,
        chunk_size: int | None = None,
    ) -> Iterator[tuple[slice, Tensor]]:
        """Yield ``(rows, scores[rows])`` chunk by chunk under ``torch.no_grad``.

        ``u`` is drawn once for all ``N`` rows before chunking, so the values do not depend on
        ``chunk_size`` and equal those of :meth:`score`. Memory is bounded by the chunk.
        """
        logits = check_logits(logits)
        return self._iter_chunks(logits, generator, u, chunk_size)

    def _iter_chunks(
        self,
        logits: Tensor,
        generator: torch.Generator | None,
        u: ArrayLike | None,
        chunk_size: int | None,
    ) -> Iterator[tuple[slice, Tensor]]:
        """:meth:`iter_chunks` on logits already checked (the arguments are checked now)."""
        n, k = logits.shape
        if chunk_size is None:
            chunk_size = max(1, DEFAULT_CHUNK_ELEMENTS // k)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        with torch.no_grad():
            u_ = self._resolve_u(logits, generator, u)

        def chunks() -> Iterator[tuple[slice, Tensor]]:
            with torch.no_grad():
                for start in range(0, n, chunk_size):
                    rows = slice(start, min(n, start + chunk_size))
                    yield rows, self._scores_from_logits(
                        logits[rows], None if u_ is None else u_[rows]
                    )

        return chunks()

    def score_no_grad(
        self,
        logits: ArrayLike,
        generator: torch.Generator | None = None,
        u: ArrayLike | None = None,
        chunk_size: int | None = None,
    ) -> Tensor:
        """Fast no-grad :meth:`score` for large ``N``, computed in row chunks."""
        logits = check_logits(logits)
        out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        for rows, chunk in self._iter_chunks(logits, generator, u, chunk_size):
            out[rows] = chunk
        return out

    def score_labels_no_grad(
        self,
        logits: ArrayLike,
        labels: ArrayLike,
        generator: torch.Generator | None = None,
        u: ArrayLike | None = None,
        chunk_size: int | None = None,
    ) -> Tensor:
        """Fast no-grad :meth:`score_labels` for large ``N``, computed in row chunks."""
        logits = check_logits(logits)
        return self._score_labels_no_grad(logits, labels, generator, u, chunk_size)

    def _score_labels_no_grad(
        self,
        logits: Tensor,
        labels: ArrayLike,
        generator: torch.Generator | None,
        u: ArrayLike | None,
        chunk_size: int | None,
    ) -> Tensor:
        """:meth:`score_labels_no_grad` on logits already checked."""
        labels = check_labels(labels, logits.shape[0], logits.shape[1]).to(logits.device)
        out = torch.empty(logits.shape[0], dtype=logits.dtype, device=logits.device)
        for rows, chunk in self._iter_chunks(logits, generator, u, chunk_size):
            out[rows] = chunk.gather(1, labels[rows].unsqueeze(1)).squeeze(1)
        return out

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


class HPS(ConformalScore):
    """Homogeneous / LAC / THR score ``S(x, y) = 1 - p_y`` (SPEC 3.1; Sadinle et al. 2019)."""

    name = "hps"
    randomized = False

    def _scores_from_probs(self, probs: Tensor, u: Tensor | None) -> Tensor:
        return 1.0 - probs


class NLL(ConformalScore):
    """Negative log-likelihood score ``S(x, y) = -log p_y``.

    An increasing function of HPS's ``1 - p_y``; the conformal quantile commutes with it,
    so the prediction sets are HPS's sets (up to float rounding at the threshold). The
    attack losses use it because ``d(1 - p_y)/dz`` shrinks with ``p_y (1 - p_y)`` and so
    vanishes on confident inputs, while ``d(-log p_y)/dz = p - e_y`` does not: with it
    the underconfidence loss of Eq. 7 also pulls labels into the sets of confidently
    classified targets. Computed as ``-log_softmax(z / T)``, finite for every finite logit.
    """

    name = "nll"
    randomized = False

    def _scores_from_logits(self, logits: Tensor, u: Tensor | None) -> Tensor:
        z = logits if self.temperature == 1.0 else logits / self.temperature
        return -torch.log_softmax(z, dim=1)


def _exact_top(sorted_scores: Tensor, p_sorted: Tensor, u: Tensor | None) -> Tensor:
    """APS scores in rank order with their exact values at the top restored (see :class:`APS`).

    Sets to exactly 1 every entry whose exact value is 1 (no positive probability ranked
    after it, and ``u = 1`` or ``p_y = 0``) and every entry above 1 (rounding: the exact score
    is at most 1). Other entries are returned bitwise unchanged. With gradients enabled the
    correction ``1 - s`` is added detached, so the gradient is that of the uncorrected sum.
    """
    nothing_after = torch.ones_like(p_sorted, dtype=torch.bool)
    nothing_after[:, :-1] = p_sorted[:, 1:] == 0  # sorted descending: all later p are 0
    if u is not None:  # y's own mass counts whole when u = 1 or p_y = 0
        nothing_after &= (p_sorted == 0) | (u == 1).unsqueeze(1)
    exact_one = nothing_after | (sorted_scores > 1)
    if sorted_scores.requires_grad:
        one_minus = torch.where(exact_one, 1.0 - sorted_scores, 0.0).detach()
        return sorted_scores + one_minus
    return sorted_scores.masked_fill_(exact_one, 1.0)


class APS(ConformalScore):
    """Adaptive Prediction Sets score (SPEC 3.1; Romano et al. 2020).

    ``S(x, y) = sum_{j ranked before y} p_j + u * p_y``, labels ranked by decreasing ``p``
    with ties broken by index; ``u ~ U(0, 1)`` per input when ``randomized`` (default), else
    ``u = 1`` (the inclusive cumulative sum).

    *Exact values at the top (SPEC 3.1 / 3.2, ties at the threshold).* In exact arithmetic the
    score lies in ``[0, 1]``, and it equals 1 exactly when nothing of positive probability is
    ranked after ``y`` and ``y``'s own mass counts whole (``u = 1``, or ``p_y = 0``): the
    inclusive cumulative sum reaching the total. Summed in floating point that total comes
    out a few ulps off (``0.99999994`` or ``1.0000001`` in float32), so on weak models, where
    the threshold ``q`` sits at this point mass (``q = 1``; ``1 + lam * m`` for RAPS), labels
    whose score equals ``q`` in exact arithmetic fell out of sets that must be full. The score
    therefore returns these values exactly:

    - an entry with nothing of positive probability ranked after it and ``u = 1`` or
      ``p_y = 0`` is exactly ``1`` (the floating-point zero tail is read as the exact one; a
      tail that underflowed is below ``1e-38`` in float32);
    - an entry above 1 is exactly ``1`` (it can only be rounding: the exact score is <= 1).

    No other value changes, and the correction lives in the score itself, so calibration and
    test scores get it alike: ``q >= 1`` gives full APS sets, and a RAPS label of rank ``r``
    is in the set whenever ``1 + lam * max(0, r - k_reg) <= q`` (the penalty is added after,
    the same float on both sides). Gradients are unchanged: the correction is added as a
    detached ``1 - s`` (exact in floating point for ``s`` in ``[1/2, 2]``, Sterbenz), so the
    attack losses of SPEC 4.2 back-propagate through the same graph as before.
    """

    name = "aps"

    def __init__(self, randomized: bool = True, temperature: float = 1.0) -> None:
        super().__init__(temperature=temperature)
        self.randomized = _check_bool("randomized", randomized)

    def _sorted(self, probs: Tensor, u: Tensor | None) -> tuple[Tensor, Tensor]:
        """Scores in rank order ``[N, K]`` and the sort indices (rank -> label)."""
        p_sorted, order = torch.sort(probs, dim=1, descending=True, stable=True)
        cum = torch.cumsum(p_sorted, dim=1)
        exclusive = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=1)
        own = p_sorted if u is None else u.unsqueeze(1) * p_sorted
        return _exact_top(exclusive + own, p_sorted, u), order

    def _penalty(self, k: int, like: Tensor) -> Tensor | None:
        return None

    def _scores_from_probs(self, probs: Tensor, u: Tensor | None) -> Tensor:
        sorted_scores, order = self._sorted(probs, u)
        penalty = self._penalty(probs.shape[1], sorted_scores)
        if penalty is not None:
            sorted_scores = sorted_scores + penalty
        return torch.zeros_like(sorted_scores).scatter(1, order, sorted_scores)

    def _params(self) -> dict[str, Any]:
        return {"randomized": self.randomized, "temperature": self.temperature}


class RAPS(APS):
    """Regularized APS score (SPEC 3.1; Angelopoulos et al. 2021).

    ``S(x, y) = S_APS(x, y) + lam * max(0, rank(y) - k_reg)`` with 1-based ``rank``.
    ``k_reg=None`` means 1 for at most 20 classes and 5 otherwise, decided from
    ``logits.shape[1]`` at scoring time (see :meth:`resolved_k_reg`).
    """

    name = "raps"

    def __init__(
        self,
        lam: float = 0.01,
        k_reg: int | None = None,
        randomized: bool = True,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(randomized=randomized, temperature=temperature)
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise ConfigError(f"lam must be a non-negative number, got {lam!r}")
        if not math.isfinite(float(lam)) or lam < 0:
            raise ConfigError(f"lam must be a non-negative finite number, got {lam!r}")
        if k_reg is not None and (isinstance(k_reg, bool) or not isinstance(k_reg, int)):
            raise ConfigError(f"k_reg must be a non-negative integer or None, got {k_reg!r}")
        if k_reg is not None and k_reg < 0:
            raise ConfigError(f"k_reg must be a non-negative integer or None, got {k_reg!r}")
        self.lam = float(lam)
        self.k_reg = k_reg

    def resolved_k_reg(self, num_classes: int) -> int:
        """``k_reg``, or its default for ``num_classes`` (1 if <= 20 classes, else 5)."""
        if self.k_reg is not None:
            return self.k_reg
        return 1 if num_classes <= 20 else 5

    def _penalty(self, k: int, like: Tensor) -> Tensor | None:
        ranks = torch.arange(1, k + 1, device=like.device, dtype=like.dtype)
        return (self.lam * (ranks - self.resolved_k_reg(k)).clamp(min=0)).unsqueeze(0)

    def _params(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "k_reg": self.k_reg,
            "randomized": self.randomized,
            "temperature": self.temperature,
        }


_REGISTRY: dict[str, type[ConformalScore]] = {
    "hps": HPS,
    "lac": HPS,
    "thr": HPS,
    "aps": APS,
    "raps": RAPS,
    "nll": NLL,
}

#: names of the built-in scores (:func:`score_names` also lists registered ones)
SCORE_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def score_names() -> tuple[str, ...]:
    """Names accepted by :func:`build_score`: the built-in ones and those registered."""
    return tuple(_REGISTRY)


def register_score(name: str, score_class: type[ConformalScore]) -> None:
    """Make ``score_class`` (a :class:`ConformalScore` subclass) available under ``name``
    (case-insensitive) to :func:`build_score`, predictors and experiment configs."""
    if not (isinstance(score_class, type) and issubclass(score_class, ConformalScore)):
        raise TypeError(f"{score_class!r} is not a ConformalScore subclass")
    _REGISTRY[name.strip().lower()] = score_class


def build_score(name: str, **kwargs: Any) -> ConformalScore:
    """Build a score by name: ``"hps"`` (aliases ``"lac"``, ``"thr"``), ``"aps"``, ``"raps"``,
    ``"nll"``.

    Names are case-insensitive; ``kwargs`` go to the constructor. An unknown name or parameter
    raises :class:`ConfigError`.
    """
    if not isinstance(name, str) or name.strip().lower() not in _REGISTRY:
        raise ConfigError(
            f"unknown conformal score {name!r}; valid names: {', '.join(score_names())}"
        )
    cls = _REGISTRY[name.strip().lower()]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid parameters for score {name!r}: {exc}") from None
