"""Full conformal prediction with the convex head (SPEC 3.5)."""

from __future__ import annotations

import pytest
import torch

from cpoison.conformal import APS, HPS, RAPS
from cpoison.errors import ConfigError
from cpoison.transfer.full_cp import FullConformal, SubsetTooLargeError, select_subset
from cpoison.transfer.head import add_bias_column, fit_head

F64 = torch.float64


def draw(n: int, d: int, k: int, seed: int, scale: float = 1.5) -> tuple[torch.Tensor, ...]:
    """Exchangeable data: Gaussian features, labels from a softmax of a random linear map."""
    gen = torch.Generator().manual_seed(seed)
    w = scale * torch.randn(k, d, generator=gen, dtype=F64)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = torch.multinomial((x @ w.T).softmax(1), 1, generator=gen).squeeze(1)
    return x, y


@pytest.mark.parametrize("score", [HPS(), APS(), RAPS(lam=0.1)], ids=["hps", "aps", "raps"])
def test_exact_equals_brute_force_refits_from_scratch(score):
    """Tiny problem: warm-started exact full CP gives the same sets (and p-values) as
    refitting the head from zeros for every (x, y), with the same u."""
    x, y = draw(45, 3, 3, seed=0)
    gen = torch.Generator().manual_seed(1)
    train_u, test_u = torch.rand(30, generator=gen, dtype=F64), torch.rand(15, generator=gen,
                                                                           dtype=F64)
    out = {}
    for method in ("naive", "exact"):
        cp = FullConformal(score, 0.2, method, lam=0.5, subset_size=None, screen=False)
        out[method] = cp.fit(x[:30], y[:30], 3, u=train_u).predict(x[30:], u=test_u)
    assert torch.equal(out["naive"].sets, out["exact"].sets)
    torch.testing.assert_close(out["naive"].p_values, out["exact"].p_values, rtol=0, atol=0)
    assert out["exact"].max_grad_norm <= 1e-9
    assert 1.0 < out["exact"].sets.sum(1).double().mean() < 3.0  # neither trivial nor full


def test_p_value_follows_the_definition():
    """p(y) = |{i <= n+1 : S_i >= S_{n+1}}| / (n + 1) with every score under theta_y."""
    x, y = draw(21, 2, 3, seed=2)
    cp = FullConformal("hps", 0.1, "naive", lam=1.0, subset_size=None, screen=False)
    cp.fit(x[:20], y[:20], 3)
    res = cp.predict(x[20:])
    for label in range(3):
        theta = fit_head(x, torch.cat([y[:20], torch.tensor([label])]), 3, 1.0).theta
        probs = (add_bias_column(x) @ theta.T).softmax(1)
        s = 1 - probs[torch.arange(21), torch.cat([y[:20], torch.tensor([label])])]
        assert float(res.p_values[0, label]) == pytest.approx(float((s >= s[-1]).sum()) / 21)
        assert bool(res.sets[0, label]) == (float((s >= s[-1]).sum()) / 21 > 0.1)


def test_coverage_on_exchangeable_data_over_many_seeds():
    """P(Y in C(X)) >= 1 - alpha: 150 seeds, each with n = 30 training points and one fresh
    test point from the same distribution (exact full CP, HPS). The coverage estimate has a
    binomial standard error sqrt(0.8 * 0.2 / 150) = 0.033; the test allows 2.5 of them."""
    alpha, hits, seeds = 0.2, 0, 150
    for seed in range(seeds):
        x, y = draw(31, 2, 3, seed=100 + seed)
        cp = FullConformal("hps", alpha, "exact", lam=1.0, subset_size=None)
        res = cp.fit(x[:30], y[:30], 3).predict(x[30:])
        hits += int(res.sets[0, y[30]])
    assert hits / seeds >= 1 - alpha - 2.5 * (alpha * (1 - alpha) / seeds) ** 0.5


def test_influence_agrees_with_exact_on_most_sets():
    """Influence approximation vs exact on n = 300 (measured: 100 % identical sets,
    p-values within 3 / (n + 1)); the test requires >= 97 % and <= 5 / (n + 1)."""
    x, y = draw(500, 4, 4, seed=3, scale=1.0)
    res = {}
    for method in ("exact", "influence"):
        cp = FullConformal("hps", 0.1, method, lam=1.0, subset_size=300, seed=0, screen=False)
        res[method] = cp.fit(x[:400], y[:400], 4).predict(x[400:])
    agree = float((res["exact"].sets == res["influence"].sets).all(1).double().mean())
    gap = float((res["exact"].p_values - res["influence"].p_values).abs().max())
    assert agree >= 0.97
    assert gap <= 5 / 301 + 1e-12
    assert res["exact"].chord_iterations >= 1 and res["exact"].fallbacks == 0


def test_subset_is_seeded_and_too_large_a_subset_is_one_clear_error():
    assert torch.equal(select_subset(100, 10, 1), select_subset(100, 10, 1))
    assert not torch.equal(select_subset(100, 10, 1), select_subset(100, 10, 2))
    x, y = draw(50, 2, 3, seed=0)
    with pytest.raises(SubsetTooLargeError, match="2000 points but the training data has only 50"):
        FullConformal("hps").fit(x, y, 3)  # default subset_size = 2000


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_outside_the_unit_interval_is_one_clear_error(alpha):
    with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\)"):
        FullConformal("hps", alpha)


def test_randomized_score_without_u_or_generator_is_refused():
    x, y = draw(20, 2, 3, seed=0)
    with pytest.raises(Exception, match="needs randomness"):
        FullConformal("aps", subset_size=None).fit(x, y, 3)


@pytest.mark.parametrize("score", ["hps", "nll", "aps", "raps"])
@pytest.mark.parametrize(("method", "n"), [("influence", 300), ("exact", 300),
                                           ("influence", 12), ("naive", 12)])
def test_screening_gives_the_sets_and_bounds_of_rescoring_every_point(score, method, n):
    """Screening only skips scores their bounds decide: the same sets as rescoring
    every training point, p-value intervals that hold the exact p-value and are exact
    wherever they straddle alpha, whether few points are rescored (n = 300: heads move by
    O(1 / n)) or candidates fall back to rescoring all of them (n = 12)."""
    x, y = draw(n + 60, 4, 4, seed=5, scale=1.0)
    gen = torch.Generator().manual_seed(2)
    train_u, test_u = torch.rand(n, generator=gen, dtype=F64), torch.rand(60, generator=gen,
                                                                          dtype=F64)
    res = {}
    for screen in (True, False):
        cp = FullConformal(score, 0.1, method, lam=1.0, subset_size=None, screen=screen)
        res[screen] = cp.fit(x[:n], y[:n], 4, u=train_u).predict(x[n:], u=test_u)
    fast, full = res[True], res[False]
    assert torch.equal(fast.sets, full.sets)
    assert torch.equal(full.p_values, full.p_values_upper)
    assert bool((fast.p_values <= full.p_values).all())
    assert bool((full.p_values <= fast.p_values_upper).all())
    exact = fast.p_values == fast.p_values_upper
    assert torch.equal(fast.p_values[exact], full.p_values[exact])
    straddle = (fast.p_values <= 0.1) & (fast.p_values_upper > 0.1)
    assert not bool(straddle.any())
    assert full.extra["rescored_share"] == 1.0
    assert fast.extra["rescored_share"] <= 1.0
    if n == 300 and score in ("hps", "nll"):  # most candidates decided by the bounds
        assert fast.extra["rescored_share"] < 0.5


@pytest.mark.parametrize("method", ["influence", "exact"])
def test_the_screening_bound_holds_for_centred_logits_and_is_tighter_than_uncentred(method):
    """The leverage bounds every candidate's move of each training point's centred logits
    (the only part any score sees), for influence and exactly refitted heads, and it is
    smaller than the uncentred leverage, which also counts the shift shared by all K
    logits (the direction where H* has only the penalty's curvature)."""
    x, y = draw(260, 4, 4, seed=3, scale=1.0)
    cp = FullConformal("hps", 0.1, method, lam=1.0, subset_size=None)
    cp.fit(x[:200], y[:200], 4)
    k = 4
    xt = add_bias_column(x[200:]).repeat_interleave(k, 0)
    yt = torch.arange(k).repeat(60)
    theta = cp._influence(xt, yt)[0] if method == "influence" else cp._exact(xt, yt)[0]
    delta = theta - cp.head.theta
    h_norm = ((delta.flatten(1) @ cp.hess) * delta.flatten(1)).sum(1).sqrt()
    moves = torch.einsum("bkd,nd->bnk", delta, cp.xa)
    centred = (moves - moves.mean(dim=2, keepdim=True)).abs().amax(2)
    bound = h_norm[:, None] * cp.leverage[None, :]
    assert bool((centred <= bound * (1 + 1e-9) + 1e-12).all())
    blocks = cp.hinv[torch.arange(k), :, torch.arange(k), :]
    uncentred = torch.einsum("nd,cde,ne->nc", cp.xa, blocks, cp.xa).amax(1).sqrt()
    assert bool((cp.leverage < uncentred).all())
    assert float((cp.leverage / uncentred).median()) < 0.9
