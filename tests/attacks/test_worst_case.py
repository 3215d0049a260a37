"""The worst-case loss l3 (SPEC 4.3): SAM step zeta = rho * g2 / ||g2||, gradient at
theta* + zeta; rho = 0 gives the l2 gradient; parameters are restored after the call."""

from __future__ import annotations

import copy

import pytest
import torch
from attack_helpers import flat_params, hps_l2, make_context

from cpoison.attacks import ConformalAttack, ConformalAttackConfig
from cpoison.attacks.worst_case import worst_case_gradient


def l2_gradient(model, loss_fn) -> torch.Tensor:
    grads = torch.autograd.grad(loss_fn(model), list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def add_flat(model, step: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(step[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


@pytest.fixture(scope="module")
def setup(digits):
    ctx = make_context(digits)
    return copy.deepcopy(digits.model), hps_l2(ctx), ctx


def test_rho_zero_is_the_l2_gradient(setup):
    model, loss_fn, _ = setup
    g3, g2 = worst_case_gradient(model, loss_fn, 0.0)
    expected = l2_gradient(model, loss_fn)
    assert expected.norm() > 0
    torch.testing.assert_close(g2, expected)
    torch.testing.assert_close(g3, expected)


@pytest.mark.parametrize("rho", [0.05, 0.5])
def test_worst_case_step_ascends_and_restores_parameters(setup, rho):
    model, loss_fn, _ = setup
    before = flat_params(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    g3, g2 = worst_case_gradient(model, loss_fn, rho)
    # Parameters are restored exactly.
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    torch.testing.assert_close(g2, l2_gradient(model, loss_fn))
    # l3 value l2(theta + zeta) >= l2(theta), and g3 is the l2 gradient at theta + zeta.
    zeta = rho * g2 / g2.norm()
    shifted = copy.deepcopy(model)
    add_flat(shifted, zeta)
    assert torch.allclose(flat_params(shifted) - before, zeta, atol=1e-6)
    with torch.no_grad():
        l2_here, l2_there = float(loss_fn(model)), float(loss_fn(shifted))
    assert l2_there > l2_here
    torch.testing.assert_close(g3, l2_gradient(shifted, loss_fn))
    assert not torch.allclose(g3, g2)


def test_l3_with_rho_zero_equals_l2_in_the_attack(setup):
    """Through the attack's public API: l3 with rho = 0 gives the l2 direction, rho > 0 a
    different one."""
    _, _, ctx = setup
    before = flat_params(ctx.surrogate)
    l2_dir, _ = ConformalAttack(ConformalAttackConfig(loss="l2")).target_direction(ctx)
    l3_zero, _ = ConformalAttack(ConformalAttackConfig(loss="l3", rho=0.0)).target_direction(ctx)
    l3_dir, _ = ConformalAttack(ConformalAttackConfig(loss="l3", rho=0.5)).target_direction(ctx)
    torch.testing.assert_close(l3_zero, l2_dir)
    assert float(torch.nn.functional.cosine_similarity(l3_dir, l2_dir, dim=0)) < 0.9999
    assert torch.equal(flat_params(ctx.surrogate), before)
