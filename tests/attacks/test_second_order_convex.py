"""Second-order machinery (SPEC 5.2) on a convex model, where the influence-function
prediction of the parameter change is accurate: L2-regularised multinomial logistic
regression (one nn.Linear, float64) on fixed random features."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from attack_helpers import ce_gradient, flat_params

from cpoison.attacks.hessian import (
    conjugate_gradient,
    gauss_newton_vector_product,
    hessian_vector_product,
)

N, D, K, P, LAM = 300, 6, 3, 15, 1e-2
F64 = torch.float64


def make_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(K, D, generator=gen, dtype=F64)
    x = torch.randn(N, D, generator=gen, dtype=F64)
    y = torch.multinomial((x @ w.T).softmax(1), 1, generator=gen).squeeze(1)
    return x, y


def fit(x: torch.Tensor, y: torch.Tensor, init: nn.Linear | None = None) -> nn.Linear:
    """argmin mean CE + LAM / 2 ||theta||^2 (weights and bias) by LBFGS to a gradient norm
    below 1e-7 (checked)."""
    model = nn.Linear(D, K, dtype=F64)
    with torch.no_grad():
        for p, q in zip(model.parameters(), init.parameters() if init else model.parameters()):
            p.copy_(q if init else torch.zeros_like(p))
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12,
                            tolerance_change=1e-15, history_size=20,
                            line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss = loss + LAM / 2 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(objective)
    objective()
    grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
    assert grad_norm < 1e-7, f"LBFGS did not converge: gradient norm {grad_norm:.2e}"
    return model


@pytest.fixture(scope="module")
def fitted() -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    x, y = make_problem()
    return x, y, fit(x, y)


def influence_vs_retraining(fitted, scale: float) -> float:
    """Relative error of the influence prediction of the parameter change when P training
    inputs are replaced in place by x_p + delta_p, ||delta_p|| ~ scale * sqrt(D)."""
    x, y, model = fitted
    gen = torch.Generator().manual_seed(1)
    ids = torch.arange(P)
    poisoned = x.clone()
    poisoned[ids] += scale * torch.randn(P, D, generator=gen, dtype=F64)
    # G = sum_p grad CE(poisoned_p) - grad CE(clean_p) at theta*; the objective changes by
    # G . dtheta / N, so dtheta ~ -(H + LAM I)^-1 G / N (H: Hessian of the mean CE).
    g = ce_gradient(model, poisoned[ids], y[ids]) - ce_gradient(model, x[ids], y[ids])
    matvec = hessian_vector_product(model, x, y, damping=LAM)
    solved = conjugate_gradient(matvec, g / N, max_iter=100, tol=1e-12)
    assert solved.residual < 1e-8
    predicted = -solved.solution
    actual = flat_params(fit(poisoned, y, init=model)) - flat_params(model)
    assert actual.norm() > 1e-3  # the perturbation does move the optimum
    return float((predicted - actual).norm() / actual.norm())


def test_influence_predicts_retraining(fitted):
    """White-box replacement of P = 15 of N = 300 points by perturbations of std 0.1 per
    feature (features have std 1): the influence prediction -(H + lambda I)^-1 G / N of the
    parameter change is within 5 % (relative L2 error) of retraining to convergence, and the
    error is a second-order effect: it roughly halves when the perturbation halves."""
    err = influence_vs_retraining(fitted, 0.1)
    err_half = influence_vs_retraining(fitted, 0.05)
    assert err < 0.05
    assert err_half < 0.7 * err


def test_conjugate_gradient_solves_a_positive_definite_system():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=F64))
    a = q @ torch.diag(torch.linspace(0.1, 10.0, 40, dtype=F64)) @ q.T
    b = torch.randn(40, generator=gen, dtype=F64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iter=200, tol=1e-10)
    exact = torch.linalg.solve(a, b)
    assert result.residual < 1e-9
    assert result.residual == pytest.approx(float((a @ result.solution - b).norm() / b.norm()),
                                            rel=1e-6, abs=1e-14)
    torch.testing.assert_close(result.solution, exact, rtol=1e-7, atol=1e-8)
    # CG converges in at most dim steps in exact arithmetic; it must stop when done.
    assert result.iterations <= 60


def test_conjugate_gradient_reports_an_unconverged_residual():
    """Too few iterations on an ill-conditioned system: the residual says so."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=F64))
    a = q @ torch.diag(torch.logspace(-3, 2, 40, dtype=F64)) @ q.T
    b = torch.randn(40, generator=gen, dtype=F64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iter=3)
    assert result.iterations == 3
    assert result.residual == pytest.approx(float((a @ result.solution - b).norm() / b.norm()))
    assert result.residual > 1e-3


def test_hessian_vector_product_matches_the_exact_hessian(fitted):
    x, y, model = fitted
    w0, b0 = model.weight.detach(), model.bias.detach()

    def mean_ce(flat: torch.Tensor) -> torch.Tensor:
        w, b = flat[: K * D].view(K, D), flat[K * D :]
        return F.cross_entropy(x @ w.T + b, y)

    hessian = torch.autograd.functional.hessian(mean_ce, torch.cat([w0.reshape(-1), b0]))
    v = torch.randn(K * D + K, generator=torch.Generator().manual_seed(2), dtype=F64)
    hv = hessian_vector_product(model, x, y, damping=LAM)(v)
    torch.testing.assert_close(hv, hessian @ v + LAM * v, rtol=1e-10, atol=1e-12)


def test_gauss_newton_equals_hessian_for_a_linear_model(fitted):
    """For logits linear in theta, H = J^T H_out J exactly, so both products coincide."""
    x, y, model = fitted
    gen = torch.Generator().manual_seed(3)
    hv = hessian_vector_product(model, x, y, damping=0.5)
    gv = gauss_newton_vector_product(model, x, y, damping=0.5)
    for _ in range(3):
        v = torch.randn(K * D + K, generator=gen, dtype=F64)
        torch.testing.assert_close(gv(v), hv(v), rtol=1e-10, atol=1e-12)


def test_gauss_newton_is_positive_semidefinite_on_a_nonlinear_model():
    """On an MLP the Hessian may be indefinite but v^T G v >= 0 for every v."""
    gen = torch.Generator().manual_seed(4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, K)).to(F64)
    x = torch.randn(64, D, generator=gen, dtype=F64)
    y = torch.randint(K, (64,), generator=gen)
    gv = gauss_newton_vector_product(model, x, y)
    n = sum(p.numel() for p in model.parameters())
    quad = [float(v @ gv(v)) for v in torch.randn(8, n, generator=gen, dtype=F64)]
    assert min(quad) >= -1e-12
    assert max(quad) > 0
