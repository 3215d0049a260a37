"""Scores (SPEC 3.1): values against the numpy reference, randomness, gradients, fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cp_reference import ref_scores, ref_softmax

from cpoison.conformal import APS, HPS, NLL, RAPS, SCORE_NAMES, SplitConformal, build_score
from cpoison.errors import ConfigError, CpoisonError


def _logits(seed: int, n: int = 40, k: int = 7, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_hps_is_one_minus_softmax(temperature: float) -> None:
    logits = _logits(0)
    p = ref_softmax(logits.numpy(), temperature)
    got = HPS(temperature=temperature).score(logits).numpy()
    np.testing.assert_allclose(got, 1 - p, rtol=0, atol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_nll_is_minus_log_softmax_and_finite(temperature: float) -> None:
    logits = _logits(1)
    p = ref_softmax(logits.numpy(), temperature)
    got = NLL(temperature=temperature).score(logits).numpy()
    np.testing.assert_allclose(got, -np.log(p), rtol=1e-12, atol=1e-12)
    # a label whose probability underflows to 0 still gets a finite score (log-softmax)
    far = NLL().score(torch.tensor([[0.0, -2000.0]], dtype=torch.float64))
    assert torch.isfinite(far).all() and float(far[0, 1]) == pytest.approx(2000.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
def test_nll_sets_are_hps_sets(seed: int, alpha: float) -> None:
    """-log p_y is increasing in 1 - p_y and the conformal quantile commutes with it."""
    gen = torch.Generator().manual_seed(seed)
    cal, test = (torch.randn(n, 10, generator=gen, dtype=torch.float64) * 3 for n in (500, 400))
    labels = torch.randint(10, (500,), generator=gen)
    sets = [SplitConformal(s, alpha).calibrate(cal, labels).predict(test) for s in ("hps", "nll")]
    assert torch.equal(sets[0], sets[1])
    assert 0 < int(sets[0].sum()) < sets[0].numel()  # neither empty nor full: a real check


def test_nll_gradient_does_not_vanish_on_confident_inputs() -> None:
    """d(1 - p_y)/dz is of order p_y for a label with tiny p_y; d(-log p_y)/dz is of order 1."""
    logits = torch.tensor([[12.0, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    label = torch.tensor([1])
    (g_hps,) = torch.autograd.grad(HPS().score_labels(logits, label).sum(), logits)
    (g_nll,) = torch.autograd.grad(NLL().score_labels(logits, label).sum(), logits)
    assert float(g_hps.norm()) < 1e-4
    assert float(g_nll.norm()) > 1.0


@pytest.mark.parametrize("randomized", [True, False])
@pytest.mark.parametrize("kind", ["aps", "raps"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aps_raps_match_reference(kind: str, randomized: bool, seed: int) -> None:
    logits = _logits(seed, k=23 if seed == 2 else 7)  # 23 classes: RAPS default k_reg = 5
    u = torch.rand(
        logits.shape[0], generator=torch.Generator().manual_seed(99), dtype=torch.float64
    )
    if kind == "aps":
        score, lam, k_reg = APS(randomized=randomized), 0.0, 0
    else:
        score = RAPS(lam=0.05, randomized=randomized)
        lam, k_reg = 0.05, (1 if logits.shape[1] <= 20 else 5)
    got = score.score(logits, u=u).numpy()
    ref = ref_scores(
        ref_softmax(logits.numpy()), kind, u.numpy() if randomized else None, lam, k_reg
    )
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


def test_ties_are_broken_by_index() -> None:
    # integer logits in a small range: many exact ties in p
    g = torch.Generator().manual_seed(3)
    logits = torch.randint(0, 3, (60, 6), generator=g).double()
    u = torch.rand(60, generator=g, dtype=torch.float64)
    p = ref_softmax(logits.numpy())
    for score, kind, lam, k_reg in [
        (APS(), "aps", 0.0, 0),
        (APS(randomized=False), "aps", 0.0, 0),
        (RAPS(lam=0.1, k_reg=2), "raps", 0.1, 2),
    ]:
        ref = ref_scores(p, kind, None if not score.randomized else u.numpy(), lam, k_reg)
        np.testing.assert_allclose(score.score(logits, u=u).numpy(), ref, rtol=0, atol=1e-13)
    # explicitly: two tied top labels 0 and 1 -> label 0 ranks first
    s = APS(randomized=False).score(torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64))
    p0 = float(torch.softmax(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), 0)[0])
    assert float(s[0, 0]) == pytest.approx(p0)
    assert float(s[0, 1]) == pytest.approx(2 * p0)


def test_non_randomized_means_u_equals_one() -> None:
    logits = _logits(4)
    ones = torch.ones(logits.shape[0], dtype=torch.float64)
    assert torch.equal(APS(randomized=False).score(logits), APS().score(logits, u=ones))
    # u = 1 is the inclusive cumulative sum: the top label's score is its probability
    p = torch.softmax(logits, 1)
    s = APS(randomized=False).score(logits)
    top = p.argmax(1)
    torch.testing.assert_close(s.gather(1, top[:, None]), p.gather(1, top[:, None]))
    # the last-ranked label's score is 1
    low = p.argmin(1)
    torch.testing.assert_close(s.gather(1, low[:, None]), torch.ones(len(p), 1, dtype=p.dtype))


def test_randomized_needs_generator_or_u_and_is_reproducible() -> None:
    logits = _logits(5)
    with pytest.raises(CpoisonError, match="generator"):
        APS().score(logits)
    with pytest.raises(CpoisonError, match="generator"):
        RAPS().score_labels(logits, torch.zeros(len(logits), dtype=torch.long))
    a = APS().score(logits, generator=torch.Generator().manual_seed(7))
    b = APS().score(logits, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # one uniform per input, shared across its labels, drawn as float64 rand(N)
    u = torch.rand(len(logits), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(a, APS().score(logits, u=u))
    # HPS ignores randomness entirely
    assert torch.equal(HPS().score(logits), HPS().score(logits, generator=torch.Generator()))


def test_global_rng_is_not_used() -> None:
    logits = _logits(6)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    APS().score(logits, generator=torch.Generator().manual_seed(1))
    assert torch.equal(before, torch.get_rng_state())


def test_u_validation() -> None:
    logits = _logits(7)
    with pytest.raises(CpoisonError, match="shape"):
        APS().score(logits, u=torch.rand(3))
    with pytest.raises(CpoisonError, match=r"\[0, 1\]"):
        APS().score(logits, u=torch.full((len(logits),), 1.5))


def test_score_labels_is_gather_and_fast_path_is_identical() -> None:
    logits = _logits(8, n=300, k=10, dtype=torch.float32)
    labels = torch.randint(10, (300,), generator=torch.Generator().manual_seed(0))
    for score in [HPS(), APS(), APS(randomized=False), RAPS(), RAPS(temperature=0.5),
                  NLL(), NLL(temperature=2.0)]:
        g = torch.Generator().manual_seed
        full = score.score(logits, generator=g(1))
        lab = score.score_labels(logits, labels, generator=g(1))
        assert torch.equal(lab, full.gather(1, labels[:, None]).squeeze(1))
        for chunk in (1, 7, 299, 5000):
            assert torch.equal(score.score_no_grad(logits, generator=g(1), chunk_size=chunk), full)
            fast_lab = score.score_labels_no_grad(logits, labels, generator=g(1), chunk_size=chunk)
            assert torch.equal(fast_lab, lab)
        # the autograd path (out-of-place softmax) gives the same values as well
        graded = score.score(logits.clone().requires_grad_(), generator=g(1))
        assert graded.requires_grad and torch.equal(graded.detach(), full)
        assert not score.score_no_grad(logits.requires_grad_(), generator=g(1)).requires_grad
        logits = logits.detach()


def test_raps_default_k_reg() -> None:
    assert RAPS().resolved_k_reg(10) == 1
    assert RAPS().resolved_k_reg(20) == 1
    assert RAPS().resolved_k_reg(21) == 5
    assert RAPS(k_reg=3).resolved_k_reg(100) == 3
    # K = 10, k_reg = 1: the top label has no penalty, rank r gets lam * (r - 1)
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    diff = RAPS(lam=0.5, randomized=False).score(logits) - APS(randomized=False).score(logits)
    torch.testing.assert_close(diff, torch.tensor([[0.0, 0.5, 1.0, 1.5]], dtype=torch.float64))


@pytest.mark.parametrize(
    "score",
    [HPS(temperature=1.7), APS(), APS(randomized=False), RAPS(lam=0.2, k_reg=1),
     NLL(temperature=0.8)],
    ids=repr,
)
def test_gradcheck(score) -> None:
    g = torch.Generator().manual_seed(11)
    logits = (torch.randn(3, 5, generator=g, dtype=torch.float64) * 2).requires_grad_()
    u = torch.rand(3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: score.score(z, u=u), (logits,))
    labels = torch.tensor([0, 3, 4])
    assert torch.autograd.gradcheck(lambda z: score.score_labels(z, labels, u=u), (logits,))


def test_aps_gradient_reaches_higher_ranked_probabilities() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    # label 2 is ranked last: its non-randomized score is 1 (constant), so take u = 0:
    # S = p_0 + p_1 = 1 - p_2, with a non-zero gradient on every logit
    s = APS().score_labels(logits, torch.tensor([2]), u=torch.zeros(1, dtype=torch.float64))
    s.sum().backward()
    p = torch.softmax(logits.detach(), 1)[0]
    expected = torch.tensor([-p[2] * p[0], -p[2] * p[1], p[2] * (1 - p[2])])
    torch.testing.assert_close(logits.grad[0], -expected)


def test_nan_logits_rejected_with_count() -> None:
    logits = _logits(9)
    logits[0, 0] = float("nan")
    logits[3, 2] = float("inf")
    with pytest.raises(CpoisonError, match="2 non-finite"):
        HPS().score(logits)
    with pytest.raises(CpoisonError, match=r"shape \[N, K\]"):
        HPS().score(torch.zeros(3))


def test_build_score() -> None:
    assert isinstance(build_score("hps"), HPS)
    assert isinstance(build_score("LAC"), HPS)
    assert isinstance(build_score("thr"), HPS)
    assert isinstance(build_score("aps", randomized=False), APS)
    raps = build_score("raps", lam=0.1, k_reg=2)
    assert isinstance(raps, RAPS) and raps.lam == 0.1 and raps.k_reg == 2
    assert isinstance(build_score("NLL"), NLL)
    assert set(SCORE_NAMES) == {"hps", "lac", "thr", "aps", "raps", "nll"}
    with pytest.raises(ConfigError, match="valid names: hps, lac, thr, aps, raps, nll"):
        build_score("naive")
    with pytest.raises(ConfigError, match="invalid parameters"):
        build_score("hps", lam=0.1)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: HPS(temperature=0),
        lambda: HPS(temperature=float("nan")),
        lambda: APS(randomized="yes"),
        lambda: RAPS(lam=-1),
        lambda: RAPS(k_reg=-1),
        lambda: RAPS(k_reg=1.5),
    ],
)
def test_bad_parameters_raise_config_error(factory) -> None:
    with pytest.raises(ConfigError):
        factory()
