"""The convex head (SPEC 2, transfer setting): Newton fit, exact Hessian, parameter orders,
the frozen TransferModel, feature extraction and its errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cpoison.attacks.params import flat_grad, trainable
from cpoison.errors import CpoisonError
from cpoison.models import build_model
from cpoison.transfer.head import (
    HeadConvergenceError,
    add_bias_column,
    fit_head,
    fit_mlp_head,
    head_gradient,
    head_hessian,
    head_loss,
    linear_order,
)
from cpoison.transfer.model import NoFeatureLayerError, TransferModel, extract_features

F64 = torch.float64
N, D, K, LAM = 120, 5, 4, 0.5


def problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w = 2 * torch.randn(K, D, generator=gen, dtype=F64)
    x = torch.randn(N, D, generator=gen, dtype=F64)
    y = torch.multinomial((x @ w.T).softmax(1), 1, generator=gen).squeeze(1)
    return x, y


def test_newton_fit_reaches_the_tolerance_and_is_deterministic():
    x, y = problem()
    a = fit_head(x, y, K, LAM, tol=1e-10)
    b = fit_head(x, y, K, LAM, tol=1e-10)
    grad = head_gradient(add_bias_column(x), y, a.theta, LAM)
    assert float(grad.norm()) / N <= 1e-10
    assert a.grad_norm <= 1e-10 and 1 <= a.iterations < 30
    assert torch.equal(a.theta, b.theta)
    # warm start from a nearby optimum converges to the same point in fewer steps
    near = fit_head(x[:-1], y[:-1], K, LAM, tol=1e-10)
    warm = fit_head(x, y, K, LAM, tol=1e-10, init=near.theta)
    assert warm.iterations < a.iterations
    torch.testing.assert_close(warm.theta, a.theta, rtol=0, atol=1e-8)


def test_exact_hessian_matches_autograd_in_both_orders():
    x, y = problem(1)
    head = fit_head(x, y, K, LAM)
    xa = add_bias_column(x)
    auto = torch.autograd.functional.hessian(
        lambda t: head_loss(xa, y, t.view(K, D + 1), LAM), head.theta.reshape(-1))
    h = head_hessian(xa, head.theta, LAM)
    torch.testing.assert_close(h, auto, rtol=1e-10, atol=1e-10)
    # linear order = nn.Linear's (weight, bias): compare with the Hessian of the same loss
    lin = head.linear()
    perm = linear_order(K, D)
    params = trainable(lin)
    loss = F.cross_entropy(lin(x), y, reduction="sum") + LAM / 2 * sum(
        (p**2).sum() for p in params)
    g = flat_grad(loss, params, create_graph=True)
    rows = torch.stack([flat_grad(g[i], params, retain_graph=True) for i in range(g.numel())])
    torch.testing.assert_close(h[perm][:, perm], rows, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g.detach(), head_gradient(xa, y, head.theta, LAM).reshape(-1)[perm],
                               rtol=1e-8, atol=1e-10)


def test_a_head_that_does_not_converge_names_the_gradient_norm():
    x, y = problem()
    with pytest.raises(HeadConvergenceError, match=r"gradient norm \d\.\d+e[-+]\d+ > tolerance"):
        fit_head(x * 50, y, K, 1e-6, tol=1e-12, max_iter=2)


def test_bad_head_arguments_are_one_clear_error():
    x, y = problem()
    with pytest.raises(CpoisonError, match="lam must be a positive"):
        fit_head(x, y, K, lam=0.0)
    with pytest.raises(CpoisonError, match="labels must lie in"):
        fit_head(x, y + K, K)
    with pytest.raises(CpoisonError, match="NaN or inf"):
        fit_head(x * float("nan"), y, K)


def test_mlp_head_option_fits_deterministically():
    x, y = problem()
    a = fit_mlp_head(x, y, K, hidden=8, lam=0.5, seed=3, tol=1e-6)
    b = fit_mlp_head(x, y, K, hidden=8, lam=0.5, seed=3, tol=1e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert (a(x).argmax(1) == y).double().mean() > 0.6


def test_transfer_model_trains_only_the_head_and_keeps_the_extractor_frozen():
    ext = build_model("mlp", 1, 10, 8, seed=0, hidden=16)
    head = nn.Linear(16, 10, dtype=F64)
    model = TransferModel(ext, head).train()
    assert not ext.training  # stays in eval mode
    assert [p for p in model.parameters() if p.requires_grad] == list(head.parameters())
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), head(ext.features(x).double()))
    feats = extract_features(ext, (x * 255).to(torch.uint8))
    assert feats.shape == (3, 16)


def test_an_extractor_without_a_feature_layer_is_one_clear_error():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(NoFeatureLayerError, match="Sequential has no feature layer"):
        extract_features(plain, torch.rand(2, 1, 8, 8))
    with pytest.raises(NoFeatureLayerError, match="no feature layer"):
        TransferModel(plain, nn.Linear(10, 10))
