"""Misclassification poisoning (gradient matching, SPEC 5.3): the adversarial class, the sign
of the direction, and that one SGD step on the crafted poisons raises the targets' y_adv
log-probability more than a step on the clean bases."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from attack_helpers import EPS, ce_gradient, make_context

from cpoison.attacks import (
    CraftingConfig,
    Misclassification,
    MisclassificationConfig,
    build_attack,
)
from cpoison.attacks.registry import attack_label, objective_facts
from cpoison.errors import ConfigError
from cpoison.experiments.config import validate_config

LR = 1e-3
CRAFTING = CraftingConfig(iterations=60, restarts=1, augment=False)


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> nn.Module:
    stepped = copy.deepcopy(model)
    grads = torch.autograd.grad(F.cross_entropy(stepped(x), y), list(stepped.parameters()))
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), grads):
            p -= lr * g
    return stepped


def adv_log_prob(model: nn.Module, x: torch.Tensor, y_adv: int) -> float:
    with torch.no_grad():
        return float(F.log_softmax(model(x), 1)[:, y_adv].sum())


@pytest.fixture(scope="module", params=[True, False], ids=["black-box", "white-box"])
def crafted(request, digits):
    """Bases from the adversarial class, as in Witches' Brew: with bases of the targets' own
    class (clean label 3) the 16/255 budget cannot turn their gradient toward class y_adv on
    this MLP (the crafted cosine stays negative), so the sign test would test nothing."""
    ctx = make_context(digits, inject=request.param)
    attack = Misclassification(MisclassificationConfig(crafting=CRAFTING))
    y_adv = attack.adversarial_class(ctx)
    ids = digits.train_ids[digits.y[digits.train_ids] == y_adv][: ctx.base_ids.numel()]
    ctx.bases, ctx.base_labels, ctx.base_ids = digits.x[ids], digits.y[ids], ids
    return ctx, attack.craft(ctx)


def test_default_class_is_the_majority_runner_up(digits):
    ctx = make_context(digits)
    with torch.no_grad():
        logits = ctx.surrogate(ctx.target_x)
    second = logits.topk(2, dim=1).indices[:, 1]  # targets are correctly classified
    counts = torch.bincount(second, minlength=10)
    attack = Misclassification(MisclassificationConfig())
    assert attack.adversarial_class(ctx) == int(counts.argmax())
    assert attack.adversarial_class(ctx) != 3
    explicit = Misclassification(MisclassificationConfig(adversarial_class=7))
    assert explicit.adversarial_class(ctx) == 7
    with pytest.raises(ConfigError, match="true class"):
        Misclassification(MisclassificationConfig(adversarial_class=3)).adversarial_class(ctx)
    with pytest.raises(ConfigError, match="not a class"):
        Misclassification(MisclassificationConfig(adversarial_class=10)).adversarial_class(ctx)


def test_direction_is_the_gradient_of_the_adversarial_ce(digits):
    ctx = make_context(digits)
    g, y_adv, ce = Misclassification(MisclassificationConfig()).target_direction(ctx)
    model = copy.deepcopy(ctx.surrogate)
    loss = F.cross_entropy(model(ctx.target_x), torch.full_like(ctx.target_y, y_adv),
                           reduction="sum")
    expected = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, model.parameters())])
    torch.testing.assert_close(g, expected)
    assert ce == pytest.approx(float(loss.detach()), rel=1e-5)


def test_poisons_respect_the_threat_model(crafted):
    ctx, poisons = crafted
    assert torch.equal(poisons.ids, ctx.base_ids)
    assert poisons.inject == ctx.inject
    assert EPS * 0.5 < poisons.linf <= EPS + 1e-6
    poisoned = ctx.bases + poisons.delta
    assert float(poisoned.min()) >= 0.0 and float(poisoned.max()) <= 1.0
    assert poisons.meta["attack"] == "misclassification"
    assert poisons.meta["adversarial_class"] == Misclassification(
        MisclassificationConfig()).adversarial_class(ctx)
    assert poisons.meta["alignment_loss"] < 0.1


def test_one_sgd_step_on_poisons_raises_the_adversarial_log_probability(crafted):
    ctx, poisons = crafted
    y_adv = poisons.meta["adversarial_class"]
    model, y = ctx.surrogate, ctx.base_labels
    before = adv_log_prob(model, ctx.target_x, y_adv)
    gain_poison = adv_log_prob(sgd_step(model, ctx.bases + poisons.delta, y, LR),
                               ctx.target_x, y_adv) - before
    gain_clean = adv_log_prob(sgd_step(model, ctx.bases, y, LR), ctx.target_x, y_adv) - before
    assert gain_poison > 0, "a step on the crafted poisons must raise log p(y_adv | X_v)"
    assert gain_poison > 10 * abs(gain_clean), (gain_poison, gain_clean)
    # Linear regime: the gain is lr * <g, G> / P with G the poisons' gradient (theta moves
    # along -G and g is the gradient of -sum_v log p(y_adv | X_v)).
    g, _, _ = Misclassification(MisclassificationConfig()).target_direction(ctx)
    predicted = LR * float(g @ ce_gradient(model, ctx.bases + poisons.delta, y)) / y.numel()
    assert gain_poison == pytest.approx(predicted, rel=0.05)


def test_selectable_from_an_experiment_config():
    raw = {"dataset": "digits", "preset": "cpu", "attacks": [
        {"name": "misclassification", "adversarial_class": 5,
         "crafting": {"iterations": 10, "restarts": 1}},
        {"name": "misclassification", "label": "mc-auto"}]}
    config = validate_config(raw)
    first, second = config.attacks
    assert isinstance(first, MisclassificationConfig)
    assert first.adversarial_class == 5 and first.crafting.iterations == 10
    assert second.adversarial_class is None
    assert config.labels() == ["misclassification", "mc-auto"]
    assert attack_label(first) == "misclassification"
    assert isinstance(build_attack(second), Misclassification)
    assert objective_facts(first) == ("misclassification", 1, None)
    with pytest.raises(ConfigError, match="adversarial_class"):
        validate_config({**raw, "attacks": [{"name": "misclassification",
                                             "adversarial_class": -1}]})
