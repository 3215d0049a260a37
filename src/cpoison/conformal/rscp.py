"""Randomly smoothed conformal prediction, RSCP (Gendler et al., ICLR 2022; SPEC 3.1).

Smoothed score: ``S~(x, y) = (1 / n_s) sum_i S_base(x + e_i, y)``, ``e_i ~ N(0, sigma^2 I)``,
base score HPS by default. The same noise draws and the same base-score uniforms ``u`` are
shared across the labels of one input (one noisy forward pass gives the logits of every
label). The threshold ``tau`` is the conformal quantile (SPEC 3.2) of the calibration
smoothed scores ``S~(x_i, y_i)``; the prediction set is

    C(x) = {y : Phi^-1(S~(x, y)) - delta / sigma <= Phi^-1(tau)},

with scores clipped into ``(clip_eps, 1 - clip_eps)`` before ``Phi^-1``
(``torch.special.ndtri``, evaluated in float64). Since the smoothed score is
``(1 / sigma)``-Lipschitz in Phi^-1 space, a perturbation ``||d||_2 <= delta`` can lower
``Phi^-1(S~)`` by at most ``delta / sigma``, so the sets keep coverage under such attacks;
for ``delta > 0`` they are larger than the smoothed sets without the margin. ``tau = +inf``
(too small a calibration set) gives full sets.

Choices where SPEC 3.1 is silent:

- Noisy inputs are not clipped to the data range (standard randomized smoothing).
- The model is put in eval mode for the forward passes (BatchNorm statistics frozen, SPEC
  4.3) and every submodule's previous mode is restored afterwards.
- Randomness comes only from the ``torch.Generator`` passed in; for each chunk of inputs the
  noise ``[c, n_s, *x.shape[1:]]`` is drawn first, then the base score's ``u`` (``[c * n_s]``,
  only if the base score is randomized). The chunk size ``c = max(1, batch_size // n_s)``
  is part of the draw order, so results are reproducible for a fixed ``(seed, batch_size)``.
- Base scores outside ``[0, 1]`` (RAPS with its penalty) are clipped like any other score.
- RSCP+ (the Monte-Carlo error correction of Yan et al. 2024) is not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from cpoison.conformal.inputs import ArrayLike, as_tensor
from cpoison.conformal.quantile import check_alpha, conformal_quantile
from cpoison.conformal.scores import HPS, ConformalScore, check_labels, draw_uniform
from cpoison.errors import ConfigError, CpoisonError, NotCalibratedError

__all__ = ["RSCP", "RSCPConformal", "eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, then restore each submodule's previous mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        kind = "positive" if positive else "non-negative"
        raise ConfigError(f"{name} must be a {kind} finite number, got {value!r}")
    return v


class RSCP:
    """The RSCP smoothed score (Gendler et al. 2022) over a base score.

    Args:
        base_score: Score applied to the logits of each noisy copy (default :class:`HPS`).
        sigma: Standard deviation of the Gaussian noise.
        delta: l2 radius of the adversarial perturbation the sets must withstand.
        n_samples: Number of noise draws ``n_s`` per input (CPU presets may lower it).
        batch_size: Noisy rows per model forward pass (bounds memory).
        clip_eps: Scores are clipped into ``(clip_eps, 1 - clip_eps)`` before ``Phi^-1``.
    """

    def __init__(
        self,
        base_score: ConformalScore | None = None,
        sigma: float = 0.25,
        delta: float = 0.125,
        n_samples: int = 256,
        batch_size: int = 1024,
        clip_eps: float = 1e-6,
    ) -> None:
        if base_score is None:
            base_score = HPS()
        if not isinstance(base_score, ConformalScore):
            raise ConfigError(
                f"base_score must be a ConformalScore (HPS, APS, RAPS), "
                f"got {type(base_score).__name__}"
            )
        self.base_score = base_score
        self.sigma = _number("sigma", sigma, positive=True)
        self.delta = _number("delta", delta, positive=False)
        self.n_samples = _positive_int("n_samples", n_samples)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.clip_eps = _number("clip_eps", clip_eps, positive=True)
        if self.clip_eps >= 0.5:
            raise ConfigError(f"clip_eps must be in (0, 0.5), got {clip_eps!r}")

    @property
    def margin(self) -> float:
        """``delta / sigma``: the shift in ``Phi^-1`` space the sets must absorb."""
        return self.delta / self.sigma

    def to_normal(self, scores: Tensor) -> Tensor:
        """``Phi^-1(clip(scores, eps, 1 - eps))`` in float64."""
        s = scores.to(torch.float64).clamp(self.clip_eps, 1.0 - self.clip_eps)
        return torch.special.ndtri(s)

    # -- smoothed scores --------------------------------------------------------------------

    def _smoothed(
        self,
        model: nn.Module,
        x: ArrayLike,
        generator: torch.Generator | None,
        n_samples: int | None,
    ) -> Tensor:
        if not isinstance(model, nn.Module):
            raise CpoisonError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(x, Tensor):  # a NumPy array or a list: onto the model's device
            param = next(iter(model.parameters()), None)
            x = as_tensor(x, "x", "float")
            x = x if param is None else x.to(param.device)
        x = as_tensor(x, "x", "float")
        if x.dim() < 1:
            raise CpoisonError("x must be a tensor with a leading batch dimension")
        if generator is None:
            raise CpoisonError(
                "RSCP needs randomness for its noise: pass "
                "generator=torch.Generator().manual_seed(seed) (cpoison never uses the "
                "global RNG)"
            )
        n_s = self.n_samples if n_samples is None else _positive_int("n_samples", n_samples)
        n = x.shape[0]
        chunk = max(1, self.batch_size // n_s)
        out: list[Tensor] = []
        with eval_mode(model):
            for start in range(0, n, chunk):
                xc = x[start : start + chunk]
                c = xc.shape[0]
                noise = torch.randn(
                    (c, n_s, *x.shape[1:]),
                    generator=generator,
                    dtype=x.dtype,
                    device=generator.device,
                ).to(x.device)
                rows = (xc.unsqueeze(1) + self.sigma * noise).reshape(c * n_s, *x.shape[1:])
                logits = torch.cat(
                    [
                        model(rows[i : i + self.batch_size])
                        for i in range(0, rows.shape[0], self.batch_size)
                    ]
                )
                if logits.dim() != 2 or logits.shape[0] != c * n_s:
                    raise CpoisonError(
                        f"the model must map a batch of B inputs to logits [B, K], got shape "
                        f"{tuple(logits.shape)} for B={c * n_s}"
                    )
                u = None
                if self.base_score.randomized:
                    u = draw_uniform(c * n_s, generator, logits, what="RSCP's randomized score")
                scores = self.base_score.score(logits, u=u)
                out.append(scores.view(c, n_s, -1).mean(dim=1))
        if not out:
            raise CpoisonError("x is empty: RSCP needs at least one input")
        return torch.cat(out)

    def smoothed_scores(
        self,
        model: nn.Module,
        x: ArrayLike,
        generator: torch.Generator | None,
        n_samples: int | None = None,
    ) -> Tensor:
        """Smoothed scores ``S~(x, y)`` of every label, ``[N, K]`` (no grad, chunked)."""
        with torch.no_grad():
            return self._smoothed(model, x, generator, n_samples)

    def smoothed_scores_grad(
        self,
        model: nn.Module,
        x: ArrayLike,
        generator: torch.Generator | None,
        n_samples: int | None = None,
    ) -> Tensor:
        """Differentiable smoothed scores ``[N, K]`` (w.r.t. model parameters and ``x``).

        Same values as :meth:`smoothed_scores` for the same generator state; the graph of all
        ``N * n_s`` forward passes is kept, so pass a smaller ``n_samples`` for attack losses.
        """
        return self._smoothed(model, x, generator, n_samples)

    def smoothed_score_labels(
        self,
        model: nn.Module,
        x: ArrayLike,
        labels: ArrayLike,
        generator: torch.Generator | None,
        n_samples: int | None = None,
    ) -> Tensor:
        """Smoothed scores of the given labels, ``[N]`` (no grad)."""
        scores = self.smoothed_scores(model, x, generator, n_samples)
        labels = check_labels(labels, scores.shape[0], scores.shape[1]).to(scores.device)
        return scores.gather(1, labels.unsqueeze(1)).squeeze(1)

    def __repr__(self) -> str:
        return (
            f"RSCP(base_score={self.base_score!r}, sigma={self.sigma}, delta={self.delta}, "
            f"n_samples={self.n_samples}, batch_size={self.batch_size})"
        )


class RSCPConformal:
    """RSCP prediction sets (SPEC 3.1): threshold ``tau`` on smoothed calibration scores,
    set ``{y : Phi^-1(S~(x, y)) - delta / sigma <= Phi^-1(tau)}``.

    Attributes after calibration: ``threshold`` (``tau``, 0-d tensor), ``n_calibration``,
    ``calibration_scores``.
    """

    def __init__(self, rscp: RSCP | None = None, alpha: float = 0.1) -> None:
        if rscp is None:
            rscp = RSCP()
        if not isinstance(rscp, RSCP):
            raise ConfigError(f"rscp must be an RSCP instance, got {type(rscp).__name__}")
        self.rscp = rscp
        self.alpha = check_alpha(alpha)
        self.threshold: Tensor | None = None
        self.n_calibration: int | None = None
        self.calibration_scores: Tensor | None = None

    @property
    def is_calibrated(self) -> bool:
        """Whether the threshold has been computed."""
        return self.threshold is not None

    def calibrate(
        self,
        model: nn.Module,
        x: ArrayLike,
        labels: ArrayLike,
        generator: torch.Generator | None,
    ) -> RSCPConformal:
        """Compute ``tau`` from calibration inputs ``x`` and ``labels``."""
        scores = self.rscp.smoothed_score_labels(model, x, labels, generator)
        return self.calibrate_from_scores(scores)

    def calibrate_from_scores(self, smoothed_scores: ArrayLike) -> RSCPConformal:
        """Compute ``tau`` from precomputed calibration smoothed scores ``[n]``.

        A tensor, NumPy array or list of floats.
        """
        smoothed_scores = as_tensor(smoothed_scores, "smoothed scores", "float").detach()
        self.threshold = conformal_quantile(smoothed_scores, self.alpha)
        self.n_calibration = int(smoothed_scores.shape[0])
        self.calibration_scores = smoothed_scores
        return self

    @property
    def adjusted_threshold(self) -> float:
        """``Phi(Phi^-1(tau) + delta / sigma)``: the threshold in score units (clipping aside)."""
        tau = self._require_calibrated()
        if math.isinf(float(tau)):
            return math.inf
        z = self.rscp.to_normal(tau) + self.rscp.margin
        return float(torch.special.ndtr(z))

    def _require_calibrated(self) -> Tensor:
        if self.threshold is None:
            raise NotCalibratedError(
                "this RSCP predictor is not calibrated: call calibrate() before predict()"
            )
        return self.threshold

    def predict(self, model: nn.Module, x: ArrayLike, generator: torch.Generator | None) -> Tensor:
        """Prediction sets for inputs ``x`` as a bool tensor ``[N, K]``."""
        self._require_calibrated()
        return self.predict_from_scores(self.rscp.smoothed_scores(model, x, generator))

    def predict_from_scores(self, smoothed_scores: ArrayLike) -> Tensor:
        """Prediction sets from precomputed smoothed test scores ``[N, K]`` (tensor, array or
        list)."""
        tau = self._require_calibrated()
        smoothed_scores = as_tensor(smoothed_scores, "smoothed test scores", "float")
        if smoothed_scores.dim() != 2:
            raise CpoisonError("smoothed test scores must be a tensor of shape [N, K]")
        n_nan = int(torch.isnan(smoothed_scores).sum().item())
        if n_nan:
            raise CpoisonError(f"smoothed scores contain {n_nan} NaN value(s)")
        with torch.no_grad():
            if math.isinf(float(tau)) and float(tau) > 0:
                return torch.ones(
                    smoothed_scores.shape, dtype=torch.bool, device=smoothed_scores.device
                )
            lhs = self.rscp.to_normal(smoothed_scores) - self.rscp.margin
            rhs = self.rscp.to_normal(tau.to(smoothed_scores.device))
            return lhs <= rhs

    def __repr__(self) -> str:
        state = f"threshold={float(self.threshold):.6g}" if self.is_calibrated else "uncalibrated"
        return f"RSCPConformal(rscp={self.rscp!r}, alpha={self.alpha}, {state})"
