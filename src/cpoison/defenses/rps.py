"""Reliable Prediction Sets, RPS (Scholten and Guennemann, ICLR 2025, "Provably Reliable
Conformal Prediction Sets in the Presence of Data Poisoning"; SPEC 7).

What is implemented (following the paper and the authors' reference code,
``yascho/reliable_conformal_prediction``):

**Training (k_t).** The training set is split into ``k_t`` disjoint partitions by a hash
of each example's content (:func:`~cpoison.defenses.base.content_hash_partition` of the
image as loaded, poisons applied, and its label), and one model is trained per partition
(seed ``derive_seed(seed, "rps-partition", i)``; the victim seed itself when ``k_t = 1``).
An inserted or deleted training point therefore changes exactly one model.

**Smoothed score.** For ``k_t > 1`` the "logits" of the ensemble are the vote shares
``pi_y(x) = (1 / k_t) * #{i : argmax f_i(x) = y}`` and any SPEC 3.1 score is applied to
them; with HPS this is the paper's smoothed score ``1 - softmax(pi)_y`` (the reference
code's default ``with_softmax=True``). For ``k_t = 1`` the logits are the single model's
logits, so RPS with ``k_t = k_c = 1`` is standard split CP on that model.

**Calibration (k_c).** The calibration set is split into ``k_c`` disjoint partitions by a
hash of each image; the split-CP threshold (SPEC 3.2) of every partition gives a set
``C_i(x)``; the RPS set is the majority vote

    C(x) = {y : #{i : y in C_i(x)} > tau},
    tau = max{t in 0..k_c : BinomCDF(t; k_c, 1 - alpha) <= alpha}

(the reference code's threshold, ``vote_rule: binomial``, the default; computed exactly
with rational arithmetic). With ``k_c = 1``, ``tau = 0`` and ``C = C_1``.

*Measured caveat.* The binomial rule treats the ``k_c`` coverage events as independent,
but they are only independent *given* the test point, so marginal coverage can fall below
``1 - alpha``: on exchangeable synthetic data (``tests/defenses/test_rps.py``, 150 seeds,
500 calibration points) coverage was 0.900 / 0.904 / 0.890 / 0.884 for k_c = 1 / 3 / 5 /
10 at alpha = 0.1 (standard error 0.002); the authors' own demo notebook reports 0.896 for
k_c = 22. ``vote_rule: majority`` is a variant valid under any dependence (Gasparin and
Ramdas 2024, "Merging uncertainty sets via majority vote"): every ``C_i`` is calibrated at
``alpha / 2`` and ``C(x) = {y : votes > floor(k_c / 2)}``, so
``P(y not in C) <= P(#misses >= k_c / 2) <= 2 * E[#misses] / k_c <= alpha`` (Markov). It
gives larger sets; the certificate applies unchanged (it only uses ``tau`` and the
thresholds).

**Certificate.** :meth:`ReliableConformal.certify` reports, for each test point, the
number of poisoned points its set provably tolerates:

* calibration poisoning: each inserted or deleted calibration point changes at most one
  partition, hence one vote per label; the set is certified for ``r_c`` such points when
  every label in the set keeps ``votes - r_c > tau``, every label outside keeps
  ``votes + r_c <= tau``, and every partition keeps at least the smallest size with a
  finite threshold after ``r_c`` deletions (the reference's ``n_min - r_c >= 1/alpha - 1``);
* training poisoning (smoothed HPS only, ``k_t > 1``): ``r_t`` inserted or deleted
  training points change at most ``r_t`` models' votes, for test *and* calibration points.
  The worst-case smoothed probabilities are computed exactly by the greedy vote moves of
  the reference's ``worst_case_smx`` (raise ``softmax(pi)_y``: move votes from the largest
  other class to ``y``; lower it: move votes from ``y`` (else from the smallest non-empty
  other class) to the largest other class); thresholds are bounded by the conformal
  quantiles of the worst-case calibration scores; a label is surely in ``C_i`` when its
  largest possible score is <= the smallest possible threshold, surely out when its
  smallest possible score is > the largest possible threshold;
* both at once: the training bounds give lower / upper vote counts per label, then the
  calibration rule above is applied to them.

A modified point (same id, new content) may change its partition: it counts as one
deletion plus one insertion, i.e. two. RPS replaces the conformal predictor, so RSCP is
not available on RPS victims (``supports_rscp = False``).

Defaults ``k_t = 5``, ``k_c = 5``: the paper sweeps both (no single published default);
these fit CPU presets. Accuracy drops with ``k_t`` since each model sees ``n / k_t``
examples.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import torch
import torch.nn as nn
from pydantic import Field
from torch import Tensor

from cpoison.conformal.predictor import sets_from_scores
from cpoison.conformal.quantile import check_alpha, conformal_quantile, min_calibration_size
from cpoison.conformal.scores import HPS, ConformalScore, build_score, check_labels, check_logits
from cpoison.defenses.base import (
    Defense,
    DefenseConfigBase,
    DefenseOutcome,
    TrainFn,
    TrainingHooks,
    content_hash_partition,
    subset,
)
from cpoison.errors import ConfigError, CpoisonError, NotCalibratedError
from cpoison.seeding import derive_seed
from cpoison.training.trainer import predict_logits
from cpoison.training.trainset import TrainSet

__all__ = [
    "RPS",
    "RPSCertificate",
    "RPSConfig",
    "ReliableConformal",
    "majority_threshold",
    "vote_logits",
]


class RPSConfig(DefenseConfigBase):
    """``defense: {name: rps, k_t: 5, k_c: 5}``."""

    name: Literal["rps"] = "rps"
    k_t: int = Field(5, ge=1, description="models, each on one hash partition of the training set")
    k_c: int = Field(5, ge=1, description="hash partitions of the calibration set (majority vote)")
    vote_rule: Literal["binomial", "majority"] = Field(
        "binomial", description="binomial: the paper's tau at level alpha; majority: sets at "
        "alpha / 2 and a strict majority (valid under any dependence)")


def majority_threshold(k_c: int, alpha: float) -> int:
    """``tau = max{t in 0..k_c : P(Bin(k_c, 1 - alpha) <= t) <= alpha}``, exactly."""
    a = Fraction(check_alpha(alpha))
    p = 1 - a
    cdf, tau = Fraction(0), 0
    for t in range(k_c + 1):
        cdf += math.comb(k_c, t) * p**t * a ** (k_c - t)
        if cdf <= a:
            tau = t
        else:
            break
    return tau


def vote_counts(logits_per_model: list[Tensor]) -> Tensor:
    """Votes ``[N, K]`` (int64): how many models predict each label (argmax, ties to the
    smaller index)."""
    counts = torch.zeros(logits_per_model[0].shape, dtype=torch.int64)
    for z in logits_per_model:
        counts.scatter_add_(1, z.argmax(dim=1, keepdim=True).cpu(),
                            torch.ones(z.shape[0], 1, dtype=torch.int64))
    return counts


def vote_logits(counts: Tensor, k_t: int) -> Tensor:
    """The smoothed "logits" ``pi = counts / k_t`` (float32), RPS's score input."""
    return counts.to(torch.float32) / k_t


def _worst_case_counts(counts: Tensor, cls: Tensor, radius: int, raise_: bool) -> list[Tensor]:
    """Vote counts after ``r = 0..radius`` adversarial vote changes that raise (or lower)
    ``softmax(counts / k_t)[cls]`` the most; greedy, exact (see module doc)."""
    n = counts.shape[0]
    rows = torch.arange(n)
    c = counts.clone()
    out = [c.clone()]
    for _ in range(radius):
        others = c.clone()
        others[rows, cls] = -1
        j = others.argmax(dim=1)  # largest other class
        if raise_:
            ok = others[rows, j] > 0
            c[rows[ok], j[ok]] -= 1
            c[rows[ok], cls[ok]] += 1
        else:
            from_y = c[rows, cls] > 0
            c[rows[from_y], cls[from_y]] -= 1
            c[rows[from_y], j[from_y]] += 1
            pos = c.to(torch.float64)
            pos[pos <= 0] = math.inf
            pos[rows, cls] = math.inf
            pos[rows, j] = math.inf
            i = pos.argmin(dim=1)
            other = (~from_y) & torch.isfinite(pos[rows, i])
            c[rows[other], i[other]] -= 1
            c[rows[other], j[other]] += 1
        out.append(c.clone())
    return out


def _hps_score_bounds(
    counts: Tensor, cls: Tensor, k_t: int, radius: int
) -> tuple[Tensor, Tensor]:
    """Smallest and largest smoothed-HPS scores of labels ``cls`` under ``r = 0..radius``
    changed models: two tensors ``[radius + 1, n]``."""
    hps = HPS()
    rows = torch.arange(counts.shape[0])

    def scores(cs: list[Tensor]) -> Tensor:
        return torch.stack([hps.score_no_grad(vote_logits(c, k_t))[rows, cls] for c in cs])

    return (scores(_worst_case_counts(counts, cls, radius, True)),
            scores(_worst_case_counts(counts, cls, radius, False)))


@dataclass
class RPSCertificate:
    """Per test point, how many poisoned points its RPS set provably tolerates.

    ``table[j, r]``: the largest number of poisoned *calibration* points (insertions or
    deletions) for which the set of test point ``j`` is certified unchanged when ``r``
    *training* points are poisoned as well (``-1``: not certified at ``r``);
    ``coverage_table``: the same for "no label of the set can be removed" (coverage
    reliability). ``train_radius[j]``: the largest ``r_t`` with the set certified unchanged
    for every ``r <= r_t`` (no calibration poisoning); ``calib_radius[j] = table[j, 0]``.
    Training radii are only derived for smoothed HPS with ``k_t > 1`` (else the table has
    one column, ``r = 0``)."""

    table: Tensor
    coverage_table: Tensor
    train_radius: Tensor
    calib_radius: Tensor

    def summary(self) -> dict[str, Any]:
        """JSON-able medians and the share certified at each training radius."""
        return {
            "median_train_radius": float(self.train_radius.double().median()),
            "median_calib_radius": float(self.calib_radius.double().median()),
            "certified_share_by_train_radius": (self.table >= 0).double().mean(0).tolist(),
        }


class ReliableConformal:
    """RPS's conformal predictor: ``k_c`` split-CP thresholds and a majority vote.

    The :class:`~cpoison.conformal.SplitConformal` interface (``calibrate`` / ``predict``)
    plus :meth:`certify`. ``partition`` [n_cal] gives each calibration point's partition
    (``0..k_c - 1``, from :func:`content_hash_partition`); ``k_t`` is the number of models
    behind the logits (needed by the training certificate only).
    """

    def __init__(
        self, score: ConformalScore | str, alpha: float, partition: Tensor, k_c: int,
        k_t: int = 1, chunk_size: int | None = None,
        vote_rule: Literal["binomial", "majority"] = "binomial",
    ) -> None:
        self.score = build_score(score) if isinstance(score, str) else score
        self.alpha = check_alpha(alpha)
        self.partition = torch.as_tensor(partition, dtype=torch.long)
        self.k_c, self.k_t = int(k_c), int(k_t)
        self.chunk_size = chunk_size
        self.vote_rule = vote_rule
        if vote_rule == "binomial":
            #: the level of every partition's split-CP set
            self.set_alpha = self.alpha
            self.tau = majority_threshold(self.k_c, self.alpha)
        elif vote_rule == "majority":
            self.set_alpha = self.alpha / 2 if self.k_c > 1 else self.alpha
            self.tau = self.k_c // 2
        else:
            raise ConfigError(f"vote_rule must be 'binomial' or 'majority', got {vote_rule!r}")
        self.thresholds: Tensor | None = None
        self._cal_logits: Tensor | None = None
        self._cal_labels: Tensor | None = None

    @property
    def is_calibrated(self) -> bool:
        return self.thresholds is not None

    def calibrate(
        self, logits: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> ReliableConformal:
        """One threshold per calibration partition (SPEC 3.2 on its points). The scores of
        all points are computed in one call, so randomized scores draw the same ``u`` as
        :meth:`SplitConformal.calibrate` would."""
        check_logits(logits, "calibration logits")
        labels = check_labels(labels, logits.shape[0], logits.shape[1])
        if self.partition.numel() != logits.shape[0]:
            raise CpoisonError(f"{self.partition.numel()} partition ids for "
                               f"{logits.shape[0]} calibration points")
        scores = self.score.score_labels_no_grad(logits, labels, generator=generator,
                                                 chunk_size=self.chunk_size)
        qs = []
        for i in range(self.k_c):
            part = scores[self.partition.to(scores.device) == i]
            if part.numel() == 0:
                raise ConfigError(f"defense rps: calibration partition {i} of k_c = {self.k_c} "
                                  f"is empty ({logits.shape[0]} calibration points); lower k_c")
            qs.append(conformal_quantile(part, self.set_alpha))
        self.thresholds = torch.stack(qs)
        self._cal_logits, self._cal_labels = logits.detach(), labels
        return self

    def votes(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``#{i : y in C_i(x)}`` as int64 ``[N, K]``."""
        if self.thresholds is None:
            raise NotCalibratedError("RPS predictor is not calibrated: call calibrate() first")
        check_logits(logits)
        out = torch.zeros(logits.shape, dtype=torch.int64, device=logits.device)
        for rows, chunk in self.score.iter_chunks(logits, generator=generator,
                                                  chunk_size=self.chunk_size):
            for q in self.thresholds:
                out[rows] += sets_from_scores(chunk, q)
        return out

    def predict(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Majority prediction sets ``votes > tau`` as bool ``[N, K]``."""
        return self.votes(logits, generator) > self.tau

    def certify(self, logits: Tensor, max_train_radius: int | None = None) -> RPSCertificate:
        """The certificate of the sets of ``logits`` (see module doc and
        :class:`RPSCertificate`). Randomized scores are not certified (their sets depend on
        ``u``); the training part needs smoothed HPS (``k_t > 1``, temperature 1). Cost:
        ``O(K * R * N * K)`` for ``R = min(k_t, max_train_radius)`` training radii."""
        if self.thresholds is None or self._cal_logits is None or self._cal_labels is None:
            raise NotCalibratedError("RPS predictor is not calibrated: call calibrate() first")
        if self.score.randomized:
            raise CpoisonError("the RPS certificate needs a non-randomized score (HPS)")
        smoothed_hps = (isinstance(self.score, HPS) and self.score.temperature == 1.0
                        and self.k_t > 1)
        radius = 0
        if smoothed_hps:
            radius = self.k_t if max_train_radius is None else min(self.k_t, max_train_radius)
        m, k = logits.shape
        cal_counts = torch.round(self._cal_logits.cpu().double() * self.k_t).to(torch.int64)
        test_counts = torch.round(logits.cpu().double() * self.k_t).to(torch.int64)
        # thresholds under r changed models: q_low / q_high [R + 1, k_c]
        if radius > 0:
            s_lo, s_hi = _hps_score_bounds(cal_counts, self._cal_labels.cpu(), self.k_t, radius)
            parts = [self.partition == i for i in range(self.k_c)]

            def quantiles(bounds: Tensor) -> Tensor:  # [R + 1, k_c]
                return torch.stack([torch.stack([conformal_quantile(s[p], self.set_alpha)
                                                 for p in parts]) for s in bounds])

            q_lo, q_hi = quantiles(s_lo), quantiles(s_hi)
        else:
            q_lo = q_hi = self.thresholds.cpu().reshape(1, -1)
        sets = self.predict(logits).cpu()
        big = 1 << 30
        margin_cov = torch.full((radius + 1, m), big, dtype=torch.int64)
        margin_size = torch.full((radius + 1, m), big, dtype=torch.int64)
        scorer = self.score
        for y in range(k):
            cls = torch.full((m,), y, dtype=torch.long)
            if radius > 0:
                t_lo, t_hi = _hps_score_bounds(test_counts, cls, self.k_t, radius)
            else:
                s = scorer.score_no_grad(logits.cpu())[:, y]
                t_lo = t_hi = s.reshape(1, -1)
            # [R + 1, m, k_c]
            surely_in = sets_from_scores(t_hi[:, :, None], q_lo[:, None, :]).sum(-1)
            surely_out = (~sets_from_scores(t_lo[:, :, None], q_hi[:, None, :])).sum(-1)
            v_lo, v_hi = surely_in, self.k_c - surely_out
            in_set = sets[:, y][None, :].expand_as(v_lo)
            margin_cov = torch.where(in_set, torch.minimum(margin_cov, v_lo - self.tau - 1),
                                     margin_cov)
            margin_size = torch.where(~in_set, torch.minimum(margin_size, self.tau - v_hi),
                                      margin_size)
        n_min = int(torch.bincount(self.partition, minlength=self.k_c).min())
        deletions = max(n_min - min_calibration_size(self.set_alpha), 0)
        cov = torch.clamp(torch.clamp(margin_cov, max=deletions), min=-1)
        table = torch.clamp(torch.minimum(cov, margin_size), min=-1)
        ok = (table >= 0).cumprod(dim=0)  # certified for every r' <= r
        train_radius = ok.sum(0) - 1
        return RPSCertificate(table.T.contiguous(), cov.T.contiguous(), train_radius, table[0])


class RPS(Defense):
    """Reliable prediction sets: k_t partition models, vote logits, majority-vote CP."""

    name = "rps"
    frozen_features = True
    supports_rscp = False

    def __init__(self, config: RPSConfig) -> None:
        super().__init__(config)
        self.config: RPSConfig = config
        self._last_sizes: list[int] = []

    def check_sizes(self, n_train: int, n_calibration: int) -> None:
        if self.config.k_t > n_train:
            raise ConfigError(
                f"defense rps: k_t = {self.config.k_t} training partitions need at least "
                f"{self.config.k_t} training examples, got {n_train}; lower k_t")
        if self.config.k_c > n_calibration:
            raise ConfigError(
                f"defense rps: k_c = {self.config.k_c} calibration partitions need at least "
                f"{self.config.k_c} calibration examples, got {n_calibration}; lower k_c")

    def partition(self, data: TrainSet) -> Tensor:
        """Each training example's partition (hash of the loaded image and its label)."""
        parts = []
        for start in range(0, len(data), 1024):
            pos = torch.arange(start, min(len(data), start + 1024))
            x, y = data.load(pos)
            parts.append(content_hash_partition(x, y, self.config.k_t))
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)

    def train_models(
        self, data: TrainSet, train_fn: TrainFn, seed: int
    ) -> tuple[list[nn.Module], list[TrainingHooks]]:
        self.check_sizes(len(data), self.config.k_c)
        k_t = self.config.k_t
        part = self.partition(data)
        sizes = torch.bincount(part, minlength=k_t)
        if int(sizes.min()) == 0:
            raise ConfigError(
                f"defense rps: training partition {int(sizes.argmin())} of k_t = {k_t} is "
                f"empty ({len(data)} training examples); lower k_t")
        self._last_sizes = sizes.tolist()
        models = []
        for i in range(k_t):
            seed_i = seed if k_t == 1 else derive_seed(seed, "rps-partition", i)
            models.append(train_fn(subset(data, part == i), seed_i, None))
        return models, []

    def fit(self, data: TrainSet, train_fn: TrainFn, seed: int) -> DefenseOutcome:
        outcome = super().fit(data, train_fn, seed)
        outcome.record.update({"rps_k_t": self.config.k_t, "rps_k_c": self.config.k_c,
                               "rps_partition_sizes": self._last_sizes})
        return outcome

    def logits(
        self, models: list[nn.Module], images: Tensor, device: torch.device | str = "cpu",
        batch_size: int = 256,
    ) -> Tensor:
        """The single model's logits (``k_t = 1``) or the vote shares ``pi`` (``k_t > 1``)."""
        if len(models) != self.config.k_t:
            raise ConfigError(f"defense rps expects k_t = {self.config.k_t} models, "
                              f"got {len(models)}")
        if self.config.k_t == 1:
            return predict_logits(models[0], images, device, batch_size)
        counts = vote_counts([predict_logits(m, images, device, batch_size) for m in models])
        return vote_logits(counts, self.config.k_t)

    def conformal(
        self, score: ConformalScore | str, alpha: float,
        calibration_images: Tensor | None = None,
    ) -> ReliableConformal:
        """A :class:`ReliableConformal` whose calibration partitions hash
        ``calibration_images`` (required when ``k_c > 1``)."""
        k_c = self.config.k_c
        if calibration_images is None:
            if k_c > 1:
                raise ConfigError("defense rps with k_c > 1 needs the calibration images "
                                  "to partition them")
            raise ConfigError("defense rps needs the calibration images (for their number)")
        part = content_hash_partition(calibration_images, None, k_c)
        n_min = int(torch.bincount(part, minlength=k_c).min())
        if n_min < min_calibration_size(alpha):
            warnings.warn(
                f"defense rps: the smallest of k_c = {k_c} calibration partitions has "
                f"{n_min} points, too few for alpha = {alpha} (needs "
                f"{min_calibration_size(alpha)}): its sets are full", UserWarning, stacklevel=2)
        return ReliableConformal(score, alpha, part, k_c, self.config.k_t,
                                 vote_rule=self.config.vote_rule)
