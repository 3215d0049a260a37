"""SPEC 5.1 sign check: poisons crafted by gradient alignment move theta, under one SGD step,
along -g and so lower the adversarial loss l2 on the targets more than the clean bases do."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from attack_helpers import EPS, ce_gradient, hps_l2, make_context

from cpoison.attacks import ConformalAttack, ConformalAttackConfig, CraftingConfig, align_poisons

LR = 1e-4  # small enough for the linear regime: the l2 change is within 10 % of lr * <g, G>/P


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> nn.Module:
    """A copy of ``model`` after one plain SGD step on the mean CE of the batch (x, y)."""
    stepped = copy.deepcopy(model)
    loss = F.cross_entropy(stepped(x), y)
    grads = torch.autograd.grad(loss, list(stepped.parameters()))
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), grads):
            p -= lr * g
    return stepped


@pytest.fixture(scope="module", params=[True, False], ids=["black-box", "white-box"])
def crafted(request, digits):
    """(context, g, crafted delta) for injected (black-box) or replaced (white-box) bases."""
    ctx = make_context(digits, inject=request.param)
    crafting = CraftingConfig(iterations=60, restarts=1, augment=False, objective="cosine")
    attack = ConformalAttack(ConformalAttackConfig(loss="l2", score="hps", crafting=crafting))
    g, facts = attack.target_direction(ctx)
    result = align_poisons(ctx.surrogate, ctx.bases, ctx.base_labels, g, ctx.eps, crafting,
                           seed=0, subtract_clean=not ctx.inject, progress=False)
    return ctx, g, result.delta, facts


def test_direction_is_the_l2_gradient(crafted):
    """With loss l2, the target direction is grad_theta l2 (no SAM shift)."""
    ctx, g, _, facts = crafted
    model = copy.deepcopy(ctx.surrogate)
    l2 = hps_l2(ctx)(model)
    expected = torch.cat([p.reshape(-1) for p in torch.autograd.grad(l2, model.parameters())])
    torch.testing.assert_close(g, expected, rtol=1e-4, atol=1e-6)
    assert facts["l2_surrogate"] == pytest.approx(float(l2.detach()), rel=1e-5)


def test_poisons_respect_the_threat_model(crafted):
    ctx, _, delta, _ = crafted
    assert delta.shape == ctx.bases.shape
    assert float(delta.abs().max()) <= EPS + 1e-6
    assert float(delta.abs().max()) > 0.5 * EPS  # the budget is actually used
    poisoned = ctx.bases + delta
    assert float(poisoned.min()) >= 0.0
    assert float(poisoned.max()) <= 1.0


def test_crafted_gradient_aligns_with_g(crafted):
    """cos(G(delta), g) of the crafted poisons is far above that of the clean bases."""
    ctx, g, delta, _ = crafted
    model = ctx.surrogate
    clean = ce_gradient(model, ctx.bases, ctx.base_labels)
    poisoned = ce_gradient(model, ctx.bases + delta, ctx.base_labels)
    if not ctx.inject:  # white-box replacement: G(delta) is the change of the gradient
        poisoned = poisoned - clean
    cos_poison = float(F.cosine_similarity(poisoned, g, dim=0))
    cos_clean = float(F.cosine_similarity(clean, g, dim=0))
    assert cos_poison > 0.8
    assert cos_poison > cos_clean + 0.2


def test_one_sgd_step_on_poisons_lowers_l2_more_than_on_clean_bases(crafted):
    ctx, g, delta, _ = crafted
    model, y = ctx.surrogate, ctx.base_labels
    l2 = hps_l2(ctx)
    on_poisons = sgd_step(model, ctx.bases + delta, y, LR)
    on_clean = sgd_step(model, ctx.bases, y, LR)
    with torch.no_grad():
        before, after_poison, after_clean = (float(l2(m)) for m in (model, on_poisons, on_clean))
    drop_poison, drop_clean = before - after_poison, before - after_clean
    assert drop_poison > 0, "a step on the crafted poisons must lower l2"
    assert drop_poison > 2 * drop_clean, (drop_poison, drop_clean)
    # Linear regime: the drop matches the first-order prediction lr * <g, G> / P, which is
    # positive exactly because G was aligned with +g (the step moves theta along -G).
    grad_poison = ce_gradient(model, ctx.bases + delta, y)
    predicted = LR * float(g @ grad_poison) / y.numel()
    assert drop_poison == pytest.approx(predicted, rel=0.1)
