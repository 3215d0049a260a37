"""Split conformal classification (SPEC 3.2).

Calibrate on held-out ``(logits, labels)``: ``q`` = the ``k``-th smallest calibration score,
``k = ceil((n + 1)(1 - alpha))`` (:func:`~cpoison.conformal.quantile.conformal_quantile`).
Predict: ``C(x) = {y : S(x, y) <= q}``. Under exchangeability
``P(y in C(x)) >= 1 - alpha`` (Vovk et al. 2005; Angelopoulos and Bates 2021).

Calibration and prediction use the scores' chunked no-grad path, so ``10^6`` points fit in
bounded memory. The attack losses, which need gradients, call the score objects and
:func:`conformal_quantile` directly instead.

Comparisons are exact: when the threshold's dtype is wider than the test scores' (a float64
threshold against float32 scores), the scores are widened, never the threshold rounded.

Ties at the threshold (SPEC 3.1 / 3.2): a label whose score equals ``q`` in exact arithmetic
must be in the set. The comparison ``S <= q`` is exact, so this holds as long as equal exact
scores are equal floats on the calibration and the test side; the scores guarantee it where
ties have mass: APS's inclusive sum of all labels is exactly 1 and no APS score exceeds 1
(RAPS adds the same float penalty per rank), see :class:`~cpoison.conformal.scores.APS`.
So a threshold at APS's point mass (``q >= 1``) gives full sets, as exact arithmetic does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cpoison.conformal.inputs import ArrayLike, as_tensor
from cpoison.conformal.quantile import check_alpha, conformal_quantile
from cpoison.conformal.scores import ConformalScore, build_score, check_logits
from cpoison.errors import CpoisonError, NotCalibratedError

__all__ = ["SplitConformal", "sets_from_scores"]


def sets_from_scores(scores: ArrayLike, threshold: Tensor | float) -> Tensor:
    """``scores <= threshold`` without rounding the threshold to a narrower dtype."""
    scores = as_tensor(scores, "scores", "float")
    thr = torch.as_tensor(threshold, device=scores.device)
    if not thr.is_floating_point():
        thr = thr.to(torch.float64)
    wide = torch.promote_types(scores.dtype, thr.dtype)
    if wide != scores.dtype:
        scores = scores.to(wide)
    return scores <= thr.to(device=scores.device, dtype=wide)


class SplitConformal:
    """Split conformal predictor for any score of :mod:`cpoison.conformal.scores`.

    The attributes are set by :meth:`calibrate` (or :meth:`calibrate_from_scores`).

    Args:
        score: A :class:`ConformalScore` (``HPS()``, ``APS()``, ``RAPS()``) or a name
            accepted by :func:`build_score`.
        alpha: Miscoverage level in (0, 1).
        chunk_size: Rows per chunk of the no-grad scoring path (``None``: about 4M logits
            per chunk).
        generator: Default source of the uniforms of randomized scores, used by
            :meth:`calibrate` and :meth:`predict` when they are given none (so that the
            predictor satisfies the two-method
            :class:`~cpoison.conformal.adapters.ConformalPredictor` protocol).

    Attributes:
        threshold: The conformal quantile ``q`` as a 0-d tensor (``+inf`` if the
            calibration set is too small for ``alpha``).
        n_calibration: Number of calibration points ``n``.
        calibration_scores: The ``n`` calibration scores (detached), e.g. for the sorted
            ``S_(i)`` of the attack's relaxed loss (paper Eq. 7).
        num_classes: ``K`` seen at calibration (``None`` after
            :meth:`calibrate_from_scores` without it).
    """

    def __init__(
        self,
        score: ConformalScore | str,
        alpha: float = 0.1,
        chunk_size: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(score, str):
            score = build_score(score)
        if not isinstance(score, ConformalScore):
            raise CpoisonError(
                f"score must be a ConformalScore (HPS, APS, RAPS) or its name, "
                f"got {type(score).__name__}"
            )
        self.score = score
        self.alpha = check_alpha(alpha)
        self.chunk_size = chunk_size
        if generator is not None and not isinstance(generator, torch.Generator):
            raise CpoisonError(
                f"generator must be a torch.Generator, got {type(generator).__name__}"
            )
        self.generator = generator
        self.threshold: Tensor | None = None
        self.n_calibration: int | None = None
        self.calibration_scores: Tensor | None = None
        self.num_classes: int | None = None

    def _gen(self, generator: torch.Generator | None) -> torch.Generator | None:
        return self.generator if generator is None else generator

    @property
    def is_calibrated(self) -> bool:
        """Whether :meth:`calibrate` (or :meth:`calibrate_from_scores`) has run."""
        return self.threshold is not None

    def calibrate(
        self,
        logits: ArrayLike,
        labels: ArrayLike,
        generator: torch.Generator | None = None,
    ) -> SplitConformal:
        """Compute the threshold from calibration ``logits [n, K]`` and ``labels [n]``.

        Tensors, NumPy arrays or lists; logits that look like probabilities (rows
        non-negative, summing to 1) are warned about. ``generator`` supplies the uniforms of
        randomized scores (required for them).
        """
        logits = check_logits(logits, "calibration logits", warn_probabilities=True)
        scores = self.score._score_labels_no_grad(
            logits, labels, self._gen(generator), None, self.chunk_size
        )
        return self.calibrate_from_scores(scores, num_classes=logits.shape[1])

    def calibrate_from_scores(
        self, scores: ArrayLike, num_classes: int | None = None
    ) -> SplitConformal:
        """Compute the threshold from precomputed calibration scores ``[n]``.

        A tensor, NumPy array or list of floats (the score of each point's true label).
        """
        scores = as_tensor(scores, "calibration scores", "float").detach()
        self.threshold = conformal_quantile(scores, self.alpha)
        self.n_calibration = int(scores.shape[0])
        self.calibration_scores = scores
        self.num_classes = num_classes
        return self

    def _require_calibrated(self) -> Tensor:
        if self.threshold is None:
            raise NotCalibratedError(
                "this conformal predictor is not calibrated: call calibrate() before predict()"
            )
        return self.threshold

    def predict(self, logits: ArrayLike, generator: torch.Generator | None = None) -> Tensor:
        """Prediction sets ``C(x) = {y : S(x, y) <= q}`` as a bool tensor ``[N, K]``.

        ``logits [N, K]``: a tensor, NumPy array or list.
        """
        threshold = self._require_calibrated()
        logits = check_logits(logits, warn_probabilities=True)
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise CpoisonError(
                f"logits have {logits.shape[1]} classes but the predictor was calibrated "
                f"with {self.num_classes}"
            )
        out = torch.empty(logits.shape, dtype=torch.bool, device=logits.device)
        chunks = self.score._iter_chunks(logits, self._gen(generator), None,
                                         self.chunk_size)
        for rows, chunk in chunks:
            out[rows] = sets_from_scores(chunk, threshold)
        return out

    def predict_from_scores(self, scores: ArrayLike) -> Tensor:
        """Prediction sets from precomputed test scores ``[N, K]`` (tensor, array or list)."""
        threshold = self._require_calibrated()
        scores = as_tensor(scores, "test scores", "float")
        if scores.dim() != 2:
            raise CpoisonError(
                f"test scores must have shape [N, K], got shape {tuple(scores.shape)}"
            )
        if self.num_classes is not None and scores.shape[1] != self.num_classes:
            raise CpoisonError(
                f"scores have {scores.shape[1]} classes but the predictor was calibrated "
                f"with {self.num_classes}"
            )
        n_nan = int(torch.isnan(scores).sum().item())
        if n_nan:
            raise CpoisonError(f"test scores contain {n_nan} NaN value(s) out of {scores.numel()}")
        with torch.no_grad():
            return sets_from_scores(scores, threshold)

    def __repr__(self) -> str:
        state = f"threshold={float(self.threshold):.6g}" if self.is_calibrated else "uncalibrated"
        return f"SplitConformal(score={self.score!r}, alpha={self.alpha}, {state})"
