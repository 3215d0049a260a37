"""RSCP (Gendler et al. 2022; SPEC 3.1) with a tiny linear model on synthetic data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cpoison.conformal import APS, HPS, RSCP, RSCPConformal, SplitConformal, coverage, mean_size
from cpoison.errors import ConfigError, CpoisonError, NotCalibratedError

D, K = 6, 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model() -> nn.Module:
    torch.manual_seed(0)  # only for the module's own init, overwritten below
    model = nn.Linear(D, K)
    with torch.no_grad():
        model.weight.copy_(_means() * 1.5)
        model.bias.zero_()
    return model


def _means() -> torch.Tensor:
    return torch.randn(K, D, generator=_gen(123)) * 0.8


def _data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    labels = torch.randint(K, (n,), generator=g)
    x = _means()[labels] + torch.randn(n, D, generator=g)
    return x, labels


def test_rscp_coverage_and_conservative_sets() -> None:
    model = _model()
    rscp = RSCP(HPS(), sigma=0.25, delta=0.125, n_samples=32, batch_size=2048)
    covs, sizes, plain_sizes, contained = [], [], [], []
    for seed in range(4):
        x_cal, y_cal = _data(seed, 400)
        x_test, y_test = _data(seed + 50, 400)
        cp = RSCPConformal(rscp, alpha=0.1).calibrate(model, x_cal, y_cal, _gen(seed))
        sets = cp.predict(model, x_test, _gen(seed + 1))
        with torch.no_grad():
            plain = SplitConformal(HPS(), 0.1).calibrate(model(x_cal), y_cal)
            plain_sets = plain.predict(model(x_test))
        covs.append(coverage(sets, y_test))
        sizes.append(mean_size(sets))
        plain_sizes.append(mean_size(plain_sets))
        contained.append(float((plain_sets <= sets).all(dim=1).double().mean()))
    assert sum(covs) / 4 >= 0.9 - 0.02
    assert min(covs) >= 0.9 - 0.05
    assert sum(sizes) / 4 > sum(plain_sizes) / 4  # delta > 0 widens the sets
    assert sum(contained) / 4 >= 0.9  # plain HPS sets are (nearly always) inside RSCP sets


def test_delta_margin_gives_supersets_on_the_same_scores() -> None:
    model = _model()
    x_cal, y_cal = _data(0, 300)
    x_test, _ = _data(1, 200)
    base = RSCP(n_samples=16)
    cal = base.smoothed_score_labels(model, x_cal, y_cal, _gen(0))
    test = base.smoothed_scores(model, x_test, _gen(1))
    sets = {}
    for delta in [0.0, 0.125, 0.25]:
        r = RSCPConformal(RSCP(delta=delta, n_samples=16), 0.1).calibrate_from_scores(cal)
        sets[delta] = r.predict_from_scores(test)
    assert bool((sets[0.0] <= sets[0.125]).all()) and bool((sets[0.125] <= sets[0.25]).all())
    assert sets[0.25].sum() > sets[0.0].sum()
    # delta = 0 is the plain smoothed rule S~ <= tau (clipping aside)
    tau = RSCPConformal(RSCP(delta=0.0), 0.1).calibrate_from_scores(cal).threshold
    assert torch.equal(sets[0.0], test <= tau)


def test_phi_inverse_rule() -> None:
    rscp = RSCP(sigma=0.5, delta=0.25)
    cp = RSCPConformal(rscp, 0.1).calibrate_from_scores(torch.linspace(0.01, 0.99, 99))
    tau = float(cp.threshold)
    scores = torch.tensor([[tau, 0.5 * (tau + 1), 0.999, 1.0, 0.0]], dtype=torch.float64)
    lhs = torch.special.ndtri(scores.clamp(1e-6, 1 - 1e-6)) - 0.5
    expected = lhs <= torch.special.ndtri(torch.tensor(tau, dtype=torch.float64))
    assert torch.equal(cp.predict_from_scores(scores), expected)
    assert cp.adjusted_threshold == pytest.approx(
        float(torch.special.ndtr(torch.special.ndtri(torch.tensor(tau)) + 0.5))
    )


def test_smoothed_scores_definition_shared_noise_and_u() -> None:
    """S~ is the mean of the base score over noisy copies; noise and u shared across labels."""
    model = _model()
    x, _ = _data(3, 5)
    rscp = RSCP(APS(), sigma=0.3, n_samples=8, batch_size=16)  # 2 inputs per chunk
    got = rscp.smoothed_scores(model, x, _gen(9))
    g = _gen(9)
    parts = []
    for start in range(0, 5, 2):
        xc = x[start : start + 2]
        c = xc.shape[0]
        noise = torch.randn((c, 8, D), generator=g)
        u = torch.rand(c * 8, generator=g, dtype=torch.float64).float()
        with torch.no_grad():
            logits = model((xc[:, None] + 0.3 * noise).reshape(c * 8, D))
        parts.append(APS().score(logits, u=u).view(c, 8, K).mean(1))
    torch.testing.assert_close(got, torch.cat(parts), rtol=0, atol=1e-6)


def test_determinism_grad_version_and_model_mode() -> None:
    model = _model().train()
    x, _ = _data(4, 10)
    rscp = RSCP(n_samples=4)
    a = rscp.smoothed_scores(model, x, _gen(1))
    b = rscp.smoothed_scores(model, x, _gen(1))
    assert torch.equal(a, b) and not a.requires_grad
    assert model.training  # restored
    c = rscp.smoothed_scores_grad(model, x, _gen(1))
    torch.testing.assert_close(c.detach(), a)
    c[:, 0].sum().backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0
    assert not torch.equal(a, rscp.smoothed_scores(model, x, _gen(2)))


def test_eval_mode_is_used_for_forward_passes() -> None:
    seen: list[bool] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(D, K)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.training)
            return self.lin(x)

    probe = Probe().train()
    RSCP(n_samples=2).smoothed_scores(probe, torch.zeros(3, D), _gen(0))
    assert seen and not any(seen) and probe.training


def test_errors() -> None:
    model = _model()
    x, y = _data(5, 20)
    with pytest.raises(CpoisonError, match="generator"):
        RSCP(n_samples=2).smoothed_scores(model, x, None)
    with pytest.raises(NotCalibratedError):
        RSCPConformal(RSCP(n_samples=2)).predict(model, x, _gen(0))
    with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\)"):
        RSCPConformal(RSCP(), alpha=1.0)
    for kwargs in [{"sigma": 0}, {"delta": -1}, {"n_samples": 0}, {"batch_size": 1.5}]:
        with pytest.raises(ConfigError):
            RSCP(**kwargs)
    with pytest.raises(CpoisonError, match=r"labels must lie"):
        RSCPConformal(RSCP(n_samples=2)).calibrate(model, x, y + K, _gen(0))
    nan_model = nn.Linear(D, K)
    with torch.no_grad():
        nan_model.weight.fill_(math.nan)
    with pytest.raises(CpoisonError, match="non-finite"):
        RSCP(n_samples=2).smoothed_scores(nan_model, x, _gen(0))


def test_too_small_calibration_gives_full_sets() -> None:
    with pytest.warns(UserWarning, match="too small"):
        cp = RSCPConformal(RSCP(n_samples=2), 0.1).calibrate_from_scores(torch.rand(5))
    assert bool(cp.predict_from_scores(torch.rand(3, K)).all())
    assert math.isinf(cp.adjusted_threshold)
