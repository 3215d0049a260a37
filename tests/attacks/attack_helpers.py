"""A small trained surrogate on scikit-learn's digits and an attack context around it,
shared by the attack tests (fixed seeds; trains in well under a second on one thread)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpoison.attacks import AttackContext, Goal, LossData
from cpoison.attacks.losses import logit_scorer, relaxed_loss
from cpoison.conformal import build_score
from cpoison.data import load_dataset
from cpoison.models import build_model

EPS = 16 / 255
ALPHA = 0.1
TARGET_CLASS = 3


@dataclass
class Digits:
    model: nn.Module
    x: torch.Tensor  # train pool, float [0, 1]
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_ids: torch.Tensor  # D^tr (the surrogate's training fold)
    cal_ids: torch.Tensor  # D^ca


def train_digits_mlp(hidden: int = 32, steps: int = 150, seed: int = 0) -> Digits:
    """An MLP trained full-batch with Adam on 1000 digits (about 96 % test accuracy)."""
    ds = load_dataset("digits")
    x, y = ds.train_images.float() / 255, ds.train_labels
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(y.numel(), generator=gen)
    train_ids, cal_ids = perm[:1000], perm[1000:1300]
    model = build_model("mlp", 1, 10, 8, seed=seed, hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x[train_ids]), y[train_ids]).backward()
        opt.step()
    model.eval()
    return Digits(model, x, y, ds.test_images.float() / 255, ds.test_labels, train_ids, cal_ids)


def make_context(
    d: Digits, n_bases: int = 30, n_targets: int = 15, goal: Goal | None = None,
    inject: bool = True, seed: int = 0,
) -> AttackContext:
    """Targets: correctly classified test images of TARGET_CLASS; bases: training images of
    that class (black-box injection by default)."""
    with torch.no_grad():
        correct = d.model(d.x_test).argmax(1) == d.y_test
    target_ids = torch.nonzero(correct & (d.y_test == TARGET_CLASS)).flatten()[:n_targets]
    base_ids = d.train_ids[d.y[d.train_ids] == TARGET_CLASS][:n_bases]
    return AttackContext(
        surrogate=d.model, bases=d.x[base_ids], base_labels=d.y[base_ids], base_ids=base_ids,
        inject=inject, cal_x=d.x[d.cal_ids], cal_y=d.y[d.cal_ids],
        target_x=d.x_test[target_ids], target_y=d.y_test[target_ids],
        train_x=d.x[d.train_ids], train_y=d.y[d.train_ids], goal=goal or Goal(), alpha=ALPHA,
        eps=EPS, seed=seed, device=torch.device("cpu"), progress=False,
    )


def hps_l2(ctx: AttackContext):
    """l2 (SPEC 4.2) with the HPS score on the context's calibration fold and targets, as a
    function of a model; computed from cpoison.attacks.losses, independent of the attack."""
    scorer = logit_scorer(build_score("hps"))
    data = LossData(ctx.cal_x, ctx.cal_y, torch.zeros(ctx.cal_y.numel()), ctx.target_x,
                    ctx.target_y, torch.zeros(ctx.target_y.numel()))

    def loss_fn(model: nn.Module) -> torch.Tensor:
        return relaxed_loss(model, scorer, ctx.goal, data, ctx.alpha)

    return loss_fn


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def ce_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_p grad_theta CE(f(x_p), y_p) as a flat vector (independent of cpoison)."""
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])


def relaxed_l2(ctx: AttackContext, score: str) -> float:
    """The relaxed loss l2 (Eq. 7) of ``ctx`` through ``score`` at the surrogate's weights,
    with the attack's own fixed uniforms and RSCP noise (4 draws)."""
    from cpoison.attacks.conformal_attack import ConformalAttackConfig, build_scorer, loss_data

    scorer = build_scorer(score, ctx.seed, 4)
    data = loss_data(ctx, scorer, ctx.seed)
    shape = ConformalAttackConfig().loss_shape()  # the attack's default variant of Eq. 7
    with torch.no_grad():
        return float(relaxed_loss(ctx.surrogate, scorer, ctx.goal, data, ctx.alpha, shape))
