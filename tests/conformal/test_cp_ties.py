"""Ties at the threshold (SPEC 3.1 / 3.2): APS's point mass at 1, RAPS's 1 + lam * m.

On weak models the true label is often ranked last, so the conformal threshold sits at the
inclusive cumulative sum of all labels, 1 in exact arithmetic (``1 + lam * m`` for RAPS).
Summed in float32 that total came out as 0.99999994 or 1.0000001, and sets that must be full
lost labels whose score equals ``q`` exactly. These tests pin the exact values and the full
sets they give; away from the top nothing changes (the reference tests of
``test_cp_predictor.py`` and ``test_cp_mapie.py`` check that).
"""

from __future__ import annotations

import pytest
import torch

from cpoison.conformal import APS, RAPS, SplitConformal, coverage, full_share


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _weak(seed: int, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Near-uniform float32 logits of a weak model and labels independent of them."""
    g = _gen(seed)
    logits = torch.randn(n, k, generator=g) * 0.05
    labels = torch.randint(k, (n,), generator=g)
    return logits, labels


def _raw_sorted_scores(probs: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """The uncorrected sum (exclusive cumsum + u * p) in rank order, as computed before."""
    p_sorted, _ = torch.sort(probs, dim=1, descending=True, stable=True)
    cum = torch.cumsum(p_sorted, dim=1)
    exclusive = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=1)
    own = p_sorted if u is None else u.unsqueeze(1) * p_sorted
    return exclusive + own


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inclusive_sum_of_all_labels_is_exactly_one(dtype: torch.dtype) -> None:
    logits = torch.randn(4000, 7, generator=_gen(0), dtype=dtype) * 3
    score = APS(randomized=False)
    scores = score.score(logits)
    last = scores.gather(1, logits.argmin(dim=1, keepdim=True)).squeeze(1)
    assert torch.equal(last, torch.ones_like(last))
    assert float(scores.max()) == 1.0
    # the uncorrected float sum is off by a few ulps on many rows: that is what is fixed
    raw = _raw_sorted_scores(score.probabilities(logits), None)[:, -1]
    assert bool((raw != 1).any())
    assert float((raw - 1).abs().max()) < 16 * torch.finfo(dtype).eps


def test_values_below_the_top_are_bitwise_unchanged() -> None:
    logits = torch.randn(3000, 10, generator=_gen(1)) * 2
    u = torch.rand(3000, generator=_gen(2), dtype=torch.float64).float()
    for score, uu in [(APS(randomized=False), None), (APS(), u)]:
        probs = score.probabilities(logits)
        raw = _raw_sorted_scores(probs, uu)
        new, _ = torch.sort(score.score(logits, u=uu), dim=1)
        raw_sorted, _ = torch.sort(raw, dim=1)
        changed = new != raw_sorted
        # only entries at the top change, and they become exactly 1
        assert torch.equal(new[changed], torch.ones_like(new[changed]))
        assert bool(((raw_sorted[changed] - 1).abs() < 1e-5).all())
        assert int((~changed).sum()) > 0.85 * new.numel()


def test_zero_probability_tail_scores_exactly_one_also_randomized() -> None:
    # p = [1/2, 1/2, 0] in float32: label 2's exclusive sum is the whole mass
    logits = torch.tensor([[0.0, 0.0, -200.0], [0.3, 0.1, -300.0]])
    u = torch.tensor([0.25, 0.9])
    s = APS().score(logits, u=u)
    assert s[0, 2] == 1.0 and s[1, 2] == 1.0
    assert s[0, 1] < 1.0
    r = RAPS(lam=0.1, k_reg=1).score(logits, u=u)
    penalty = torch.tensor(0.1, dtype=torch.float32) * 2
    assert r[0, 2] == 1.0 + penalty and r[1, 2] == 1.0 + penalty


def test_gradients_are_unchanged_by_the_correction() -> None:
    logits = (torch.randn(50, 4, generator=_gen(3)) * 0.05).requires_grad_()
    weights = torch.randn(50, 4, generator=_gen(4))
    score = APS(randomized=False)
    (score.score(logits) * weights).sum().backward()
    grad = logits.grad.clone()
    logits.grad = None
    raw = _raw_sorted_scores(score.probabilities(logits), None)
    order = torch.sort(score.probabilities(logits).detach(), dim=1, descending=True, stable=True)[1]
    (torch.zeros_like(raw).scatter(1, order, raw) * weights).sum().backward()
    assert torch.equal(grad, logits.grad)


@pytest.mark.parametrize("k", [3, 4, 5])
@pytest.mark.parametrize("randomized", [False, True])
def test_weak_model_threshold_at_one_gives_full_sets(k: int, randomized: bool) -> None:
    """q = 1 (APS) on a weak model: every set is full and coverage is 1 >= 1 - alpha."""
    cal, cal_y = _weak(10 + k, 3000, k)
    test, test_y = _weak(20 + k, 3000, k)
    if randomized:  # the point mass at 1 comes from zero-probability tails here
        cal[:, -1] = -200.0
        test[:, -1] = -200.0
    cp = SplitConformal(APS(randomized=randomized), alpha=0.1)
    cp.calibrate(cal, cal_y, generator=_gen(0))
    assert float(cp.threshold) == 1.0
    sets = cp.predict(test, generator=_gen(1))
    assert full_share(sets) == 1.0
    assert coverage(sets, test_y) == 1.0 >= 0.9


@pytest.mark.parametrize("k", [3, 5])
def test_weak_model_raps_threshold_at_one_plus_lam_m(k: int) -> None:
    """RAPS on a weak model: q = 1 + lam * (k - k_reg), computed as the same float on both
    sides, so every set is full and coverage >= 1 - alpha."""
    cal, cal_y = _weak(30 + k, 3000, k)
    test, test_y = _weak(40 + k, 3000, k)
    score = RAPS(lam=0.01, randomized=False)
    cp = SplitConformal(score, alpha=0.1).calibrate(cal, cal_y)
    m = torch.tensor(float(k - score.resolved_k_reg(k)))
    assert torch.equal(cp.threshold, 1.0 + 0.01 * m)
    sets = cp.predict(test)
    assert full_share(sets) == 1.0
    assert coverage(sets, test_y) >= 0.9


def _mixed(seed: int, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half weak (near-uniform) points, half confident ones with tiny positive tails."""
    logits, labels = _weak(seed, n, k)
    confident = torch.arange(n) % 2 == 0
    logits[confident, labels[confident]] += 30.0  # tails ~1e-13: positive, far below an ulp
    return logits, labels


def test_mixed_model_rounded_tops_stay_in_full_sets() -> None:
    """Weak and confident points mixed: scores that round above 1 are read as 1 (the exact
    score is at most 1), so a threshold at the point mass keeps every set full."""
    cal, cal_y = _mixed(50, 2000, 3)
    test, test_y = _mixed(51, 2000, 3)
    for score in (APS(randomized=False), RAPS(lam=0.05, randomized=False)):
        scores = score.score(test)
        if isinstance(score, APS) and not isinstance(score, RAPS):
            assert float(scores.max()) == 1.0
        cp = SplitConformal(score, alpha=0.05).calibrate(cal, cal_y)
        sets = cp.predict(test)
        assert full_share(sets) == 1.0
        assert coverage(sets, test_y) >= 0.95
