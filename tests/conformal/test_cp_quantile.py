"""The conformal quantile (SPEC 3.2): k formula, exactness, small calibration sets, errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from cp_reference import ref_rank

from cpoison.conformal import conformal_quantile, conformal_rank, min_calibration_size
from cpoison.errors import ConfigError, CpoisonError


@pytest.mark.parametrize(
    ("n", "alpha", "k"),
    [
        (9, 0.1, 9),  # 10 * 0.9 = 9 exactly: not 10
        (9, 0.3, 7),  # 10 * 0.7 = 7.000...01 in floats: not 8
        (2, 1 / 3, 2),
        (99, 0.05, 95),
        (100, 0.1, 91),
        (19, 0.05, 19),
        (18, 0.05, 19),
        (999_999, 0.1, 900_000),
        (10**9, 0.1, 900_000_001),
    ],
)
def test_rank_formula(n: int, alpha: float, k: int) -> None:
    assert conformal_rank(n, alpha) == k


def test_rank_matches_exact_decimal_arithmetic() -> None:
    alphas = [i / 100 for i in range(1, 100)] + [i / 1000 for i in range(1, 60, 7)]
    for alpha in alphas:
        for n in list(range(0, 120)) + [999, 1000, 4999, 10**6 - 1]:
            assert conformal_rank(n, alpha) == ref_rank(n, alpha), (n, alpha)


def test_min_calibration_size() -> None:
    for alpha in [0.5, 0.2, 0.1, 0.05, 0.01, 0.3, 0.25]:
        m = min_calibration_size(alpha)
        assert m == math.ceil(round(1 / alpha, 9)) - 1
        assert conformal_rank(m, alpha) <= m
        assert conformal_rank(m - 1, alpha) > m - 1


def test_quantile_is_kth_smallest() -> None:
    g = torch.Generator().manual_seed(0)
    for n in [1, 9, 10, 57, 1000]:
        scores = torch.rand(n, generator=g, dtype=torch.float64)
        for alpha in [0.05, 0.1, 0.3, 0.5, 0.9]:
            k = conformal_rank(n, alpha)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = conformal_quantile(scores, alpha)
            if k > n:
                assert math.isinf(q)
            else:
                assert q.dim() == 0 and q.dtype == torch.float64
                assert float(q) == float(torch.sort(scores).values[k - 1])


def test_quantile_exact_for_close_float64_values() -> None:
    # consecutive doubles around 1: any interpolation or float32 detour would merge them
    n = 10_001
    values = 1.0 + torch.arange(n, dtype=torch.float64) * 2.0**-52
    scores = values[torch.randperm(n, generator=torch.Generator().manual_seed(1))]
    q = conformal_quantile(scores, 0.1)
    k = conformal_rank(n, 0.1)
    assert float(q) == float(values[k - 1])
    assert float(q) != float(values[k - 2]) and float(q) != float(values[k])
    # float32 scores keep their dtype and exact value too
    s32 = scores.float() - 1 + torch.linspace(0, 1, n).float()
    assert float(conformal_quantile(s32, 0.2)) == float(
        torch.sort(s32).values[conformal_rank(n, 0.2) - 1]
    )


def test_quantile_uses_kthvalue(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = torch.kthvalue

    def spy(x, k, *args, **kwargs):
        calls.append(int(k))
        return real(x, k, *args, **kwargs)

    monkeypatch.setattr(torch, "kthvalue", spy)
    conformal_quantile(torch.rand(99, generator=torch.Generator().manual_seed(0)), 0.1)
    assert calls == [90]


def test_quantile_is_differentiable_through_the_selected_score() -> None:
    scores = torch.tensor([0.3, 0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6, 0.05], requires_grad=True)
    q = conformal_quantile(scores, 0.3)  # n = 10, k = ceil(11 * 0.7) = 8 -> 0.7
    assert float(q.detach()) == pytest.approx(0.7)
    q.backward()
    assert scores.grad.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_too_small_calibration_set_warns_and_gives_inf() -> None:
    with pytest.warns(UserWarning, match=r"calibration set \(n=8\) is too small for alpha=0.1"):
        q = conformal_quantile(torch.rand(8), 0.1)
    assert math.isinf(float(q)) and float(q) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(float(conformal_quantile(torch.rand(9), 0.1)))


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_alpha_outside_unit_interval_raises(alpha) -> None:
    with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\)"):
        conformal_quantile(torch.rand(10), alpha)


def test_bad_scores_raise() -> None:
    with pytest.raises(CpoisonError, match="empty"):
        conformal_quantile(torch.empty(0), 0.1)
    with pytest.raises(CpoisonError, match="1-D"):
        conformal_quantile(torch.rand(10, 2), 0.1)
    with pytest.raises(CpoisonError, match="1 NaN"):
        conformal_quantile(torch.tensor([0.1, float("nan"), 0.3]), 0.1)
    with pytest.raises(CpoisonError, match="floating"):
        conformal_quantile(torch.arange(10), 0.1)


def test_alpha_accepts_numpy_and_tensor_scalars() -> None:
    import numpy as np

    scores = torch.rand(100, generator=torch.Generator().manual_seed(0))
    q = conformal_quantile(scores, 0.1)
    assert torch.equal(conformal_quantile(scores, np.float32(0.1)), q)
    assert torch.equal(conformal_quantile(scores, torch.tensor(0.1, dtype=torch.float64)), q)
    # a float32 0.7 is 0.699999988...: read as 0.7, k = ceil(10 * 0.3) = 3, not 4
    assert conformal_rank(9, np.float32(0.7)) == 3
    assert conformal_rank(9, torch.tensor(0.7)) == 3
    with pytest.raises(ConfigError):
        conformal_quantile(scores, np.bool_(True))
