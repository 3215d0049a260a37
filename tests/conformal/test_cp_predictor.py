"""Split conformal predictor (SPEC 3.2): sets, errors, and the coverage property (SPEC 3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cp_reference import make_data, ref_quantile, ref_scores, ref_softmax
from hypothesis import given, settings
from hypothesis import strategies as st

from cpoison.conformal import (
    APS,
    HPS,
    RAPS,
    SplitConformal,
    build_score,
    conformal_rank,
    coverage,
    sets_from_scores,
)
from cpoison.errors import ConfigError, CpoisonError, NotCalibratedError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(seed: int, n: int, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    logits, labels = make_data(seed, n, k)
    return torch.from_numpy(logits), torch.from_numpy(labels)


@pytest.mark.parametrize(
    ("kind", "randomized"),
    [("hps", False), ("aps", True), ("aps", False), ("raps", True), ("raps", False)],
)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_threshold_and_sets_match_numpy_reference(kind: str, randomized: bool, seed: int) -> None:
    """SPEC 3.4: thresholds and sets equal a plain-numpy reference written from SPEC 3.1."""
    k = 12 if seed < 2 else 25
    alpha = [0.1, 0.05, 0.2, 0.1][seed]
    cal_logits, cal_labels = _data(seed, 300, k)
    test_logits, _ = _data(seed + 100, 200, k)
    lam, k_reg = 0.02, (1 if k <= 20 else 5)
    score = {"hps": HPS(), "aps": APS(randomized=randomized),
             "raps": RAPS(lam=lam, randomized=randomized)}[kind]  # fmt: skip
    cp = SplitConformal(score, alpha=alpha).calibrate(cal_logits, cal_labels, generator=_gen(seed))
    sets = cp.predict(test_logits, generator=_gen(seed + 1)).numpy()

    # the reference draws the same uniforms (SPEC 3.1: one float64 rand(N) per call)
    u_cal = torch.rand(300, generator=_gen(seed), dtype=torch.float64).numpy()
    u_test = torch.rand(200, generator=_gen(seed + 1), dtype=torch.float64).numpy()
    rand = kind != "hps" and randomized
    cal_all = ref_scores(ref_softmax(cal_logits.numpy()), kind, u_cal if rand else None, lam, k_reg)
    cal = cal_all[np.arange(300), cal_labels.numpy()]
    q_ref = ref_quantile(cal, alpha)
    test = ref_scores(ref_softmax(test_logits.numpy()), kind, u_test if rand else None, lam, k_reg)
    assert float(cp.threshold) == pytest.approx(q_ref, abs=1e-12)
    assert cp.n_calibration == 300
    disagree = sets != (test <= q_ref)
    # only float-boundary cases may differ, and there are none at this size
    assert not np.any(disagree & (np.abs(test - q_ref) > 1e-12))
    assert disagree.sum() == 0


@settings(derandomize=True, max_examples=24, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(["hps", "aps", "aps-det", "raps", "raps-det"]),
    alpha=st.sampled_from([0.05, 0.1, 0.2]),
    n_cal=st.sampled_from([50, 100, 250]),
)
def test_coverage_property(seed: int, name: str, alpha: float, n_cal: int) -> None:
    """SPEC 3.4: on exchangeable data, coverage averages k / (n + 1) >= 1 - alpha.

    100 independent calibration/test draws of the same distribution; the mean coverage has a
    standard deviation below 0.003 here, so the 0.015 tolerance is five deviations or more.
    """
    kind, _, det = name.partition("-")
    score = build_score(kind) if kind == "hps" else build_score(kind, randomized=not det)
    reps, n_test, k = 100, 50, 10
    logits, labels = _data(seed, reps * (n_cal + n_test), k)
    logits = logits.float().view(reps, n_cal + n_test, k)
    labels = labels.view(reps, n_cal + n_test)
    g = _gen(seed)
    covs = []
    for r in range(reps):
        cp = SplitConformal(score, alpha).calibrate(logits[r, :n_cal], labels[r, :n_cal], g)
        sets = cp.predict(logits[r, n_cal:], generator=g)
        covs.append(coverage(sets, labels[r, n_cal:]))
    mean = float(np.mean(covs))
    expected = conformal_rank(n_cal, alpha) / (n_cal + 1)
    assert expected >= 1 - alpha
    assert mean >= 1 - alpha - 0.015
    assert abs(mean - expected) <= 0.015


def test_sets_are_scores_below_threshold_and_entry_points_agree() -> None:
    cal_logits, cal_labels = _data(0, 500)
    test_logits, _ = _data(1, 300)
    score = RAPS()
    cp = SplitConformal(score, 0.1).calibrate(cal_logits, cal_labels, generator=_gen(0))
    scores = score.score(cal_logits, generator=_gen(0))
    cal = scores.gather(1, cal_labels[:, None]).squeeze(1)
    cp2 = SplitConformal(score, 0.1).calibrate_from_scores(cal, num_classes=10)
    assert torch.equal(cp.threshold, cp2.threshold)
    assert torch.equal(cp.calibration_scores, cal)
    test_scores = score.score(test_logits, generator=_gen(5))
    sets = cp.predict(test_logits, generator=_gen(5))
    assert torch.equal(sets, test_scores <= cp.threshold)
    assert torch.equal(sets, cp2.predict_from_scores(test_scores))
    assert sets.dtype == torch.bool and sets.shape == (300, 10)
    # chunking does not change anything
    small = SplitConformal(score, 0.1, chunk_size=7).calibrate(cal_logits, cal_labels, _gen(0))
    assert torch.equal(small.threshold, cp.threshold)
    assert torch.equal(small.predict(test_logits, generator=_gen(5)), sets)


def test_string_score_and_repr() -> None:
    cp = SplitConformal("aps", alpha=0.2)
    assert isinstance(cp.score, APS) and "uncalibrated" in repr(cp)
    cal_logits, cal_labels = _data(2, 100)
    cp.calibrate(cal_logits, cal_labels, generator=_gen(0))
    assert "threshold=" in repr(cp) and cp.is_calibrated


def test_threshold_is_not_rounded_to_narrower_scores() -> None:
    thr = torch.tensor(0.1, dtype=torch.float64)  # 0.1 rounds up to 0.100000001 in float32
    s = torch.tensor([[0.1]], dtype=torch.float32)
    assert float(s) > float(thr)
    assert not bool(sets_from_scores(s, thr))
    assert bool((s <= thr.float()).all())  # what a naive comparison would say


def test_too_small_calibration_gives_full_sets() -> None:
    cal_logits, cal_labels = _data(3, 5)
    with pytest.warns(UserWarning, match="too small"):
        cp = SplitConformal(HPS(), 0.1).calibrate(cal_logits, cal_labels)
    assert bool(cp.predict(_data(4, 20)[0]).all())


def test_predict_before_calibrate_raises() -> None:
    cp = SplitConformal(HPS())
    with pytest.raises(NotCalibratedError, match="calibrate"):
        cp.predict(torch.zeros(3, 4))
    with pytest.raises(NotCalibratedError):
        cp.predict_from_scores(torch.zeros(3, 4))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_alpha_validated_in_init(alpha: float) -> None:
    with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\), got"):
        SplitConformal(HPS(), alpha=alpha)


def test_nan_logits_raise_with_count() -> None:
    cal_logits, cal_labels = _data(5, 100)
    bad = cal_logits.clone()
    bad[:3, 0] = float("nan")
    with pytest.raises(CpoisonError, match="3 non-finite"):
        SplitConformal(HPS()).calibrate(bad, cal_labels)
    cp = SplitConformal(HPS()).calibrate(cal_logits, cal_labels)
    bad[5, 5] = float("-inf")
    with pytest.raises(CpoisonError, match="4 non-finite"):
        cp.predict(bad)


def test_shape_and_label_errors() -> None:
    logits, labels = _data(6, 100)
    cp = SplitConformal(HPS())
    with pytest.raises(CpoisonError, match=r"labels must have shape \[100\]"):
        cp.calibrate(logits, labels[:50])
    with pytest.raises(CpoisonError, match=r"labels must lie in \[0, 9\]"):
        cp.calibrate(logits, torch.full((100,), 10))
    with pytest.raises(CpoisonError, match=r"labels must lie in \[0, 9\]"):
        cp.calibrate(logits, torch.full((100,), -1))
    with pytest.raises(CpoisonError, match="integer"):
        cp.calibrate(logits, labels.float())
    with pytest.raises(CpoisonError, match=r"shape \[N, K\]"):
        cp.calibrate(logits[0], labels[:1])
    cp.calibrate(logits, labels)
    with pytest.raises(CpoisonError, match="calibrated with 10"):
        cp.predict(torch.zeros(4, 9))
    with pytest.raises(CpoisonError, match="ConformalScore"):
        SplitConformal(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="valid names"):
        SplitConformal("bogus")


def test_randomized_predictor_needs_generator() -> None:
    logits, labels = _data(7, 100)
    with pytest.raises(CpoisonError, match="generator"):
        SplitConformal(APS()).calibrate(logits, labels)
    cp = SplitConformal(APS()).calibrate(logits, labels, generator=_gen(0))
    with pytest.raises(CpoisonError, match="generator"):
        cp.predict(logits)
