"""MetaPoison (Huang et al., NeurIPS 2020): the "retraining-based" optimiser of the paper's
Table 2 (SPEC 5.3), here with the conformal objective l2 (SPEC 4.2) as adversarial loss.

Each craft step, for every surrogate:

1. unroll ``unroll_steps`` (K) plain SGD steps (lr ``unroll_lr``) from the surrogate's
   weights, each on a fresh clean mini-batch of ``batch_size`` images of the attacker's
   training fold plus all the poisons ``x_p + delta_p`` (mean cross-entropy over the joint
   batch). The parameters are plain tensors passed through
   :func:`torch.func.functional_call`, and the inner gradients are taken with
   ``create_graph=True``, so the unrolled weights are differentiable functions of delta;
2. evaluate l2 (:func:`~cpoison.attacks.losses.relaxed_loss`, calibration fold and targets,
   score ``score``) at the unrolled weights.

The mean of l2 over the surrogates is back-propagated to delta; delta takes a signed-Adam step
(lr ``lr * eps``, decayed x0.1 at 3/8, 5/8 and 7/8 of the steps, as in SPEC 5.1) and is
projected onto the eps-ball and onto [0, 1]. delta starts at zero (the clean bases), so the
recorded ``l2_start`` is the objective of the clean bases (on the ensemble as crafting
left it, like ``l2_final``).

Staggered surrogates. MetaPoison crafts against an ensemble of surrogates at different epochs
of training so that the poisons work at every stage of the victim's training, and keeps
training those surrogates while it crafts (the "retraining" whose cost the paper's Table 2
compares with the closed-form updates). Here the last surrogate is ``ctx.surrogate`` (fully
trained, never modified) and the other ``n_surrogates - 1`` are snapshots of one fresh run of
the same architecture (weights re-initialised from the seed) trained on the attacker's
training fold with :func:`cpoison.training.train_model`, one epoch at a time (constant lr
``stagger_lr``, momentum 0.9, weight decay 5e-4, batch ``batch_size``, crop and flip
augmentation), snapshotted after ``round(E * i / n)`` epochs, i = 1..n-1, E =
``stagger_epochs`` (default: the epochs of the surrogate's own recipe), i.e. spread evenly over
the training run. After every craft step each staggered snapshot takes ``retrain_steps`` plain
SGD steps (lr ``stagger_lr``) on a clean mini-batch plus the current poisons, as in the
original, so the ensemble moves along training with the poisons in its data. The original
uses 24 staggered models and resets a model once it reaches the last epoch; the default here
is 3 snapshots plus the trained surrogate, without resets (60 craft steps advance a snapshot
by about one epoch of a 6,000-image fold).

BatchNorm: the unroll uses the surrogates in eval mode, i.e. their running statistics
(buffers) normalise every batch and are never updated; only trainable parameters move.

``unroll_lr`` defaults to 0.1, the effective step lr / (1 - momentum) = 0.01 / 0.1 of the
SPEC 6 victim recipe: the unroll is plain SGD without a momentum state, so this is the step
size the victim actually takes once its momentum has built up.

Memory: every unrolled step holds a second-order graph over ``batch_size + P`` images, so the
cost is about 2K + 1 forward-backward passes per surrogate and craft step.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch.func import functional_call
from tqdm.auto import tqdm

from cpoison.attacks.alignment import signed_step
from cpoison.attacks.base import Attack, AttackConfigBase
from cpoison.attacks.conformal_attack import build_scorer, loss_data
from cpoison.attacks.context import AttackContext
from cpoison.attacks.losses import relaxed_loss
from cpoison.attacks.poison_set import PoisonSet
from cpoison.seeding import derive_seed, make_generator
from cpoison.training import Recipe, TrainSet, train_model
from cpoison.training.augment import augment

log = logging.getLogger(__name__)


class MetaPoisonConfig(AttackConfigBase):
    """Settings of MetaPoison (``name: metapoison`` in experiment configs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["metapoison"] = "metapoison"
    label: str | None = None
    unroll_steps: int = Field(2, ge=1, description="K: SGD steps unrolled per craft step")
    craft_steps: int = Field(60, ge=1, description="signed-Adam steps on delta")
    lr: float = Field(0.1, gt=0, description="signed-Adam step in units of eps")
    unroll_lr: float = Field(
        0.1, gt=0, description="SGD lr of the unroll (default: the victim recipe's effective "
        "step 0.01 / (1 - 0.9))")
    batch_size: int = Field(128, ge=1, description="clean images mixed with the poisons in "
                            "each unrolled step (and the staggered surrogates' batch size)")
    n_surrogates: int = Field(4, ge=1, description="ctx.surrogate plus n - 1 staggered ones")
    stagger_epochs: int | None = Field(
        None, ge=1, description="E: length of the run the snapshots are spread over (None: "
        "the surrogate recipe's epochs)")
    retrain_steps: int = Field(1, ge=0, description="SGD steps of every staggered snapshot "
                               "on clean data plus the poisons after each craft step")
    stagger_lr: float = Field(0.01, gt=0, description="SGD lr of the staggered training run")
    score: str = Field("hps", description="score inside l2: hps, aps, raps, nll or rscp")
    rscp_samples: int = Field(8, ge=1, description="noise draws of RSCP inside the loss")
    augment: bool = Field(False, description="differentiable crop/flip of the unroll batches")
    crop_padding: int = Field(2, ge=0)
    flip: bool = True

    def objective_facts(self) -> tuple[str | None, int | None, str | None]:
        """l2 through a K-step unroll: no update order; its score."""
        return "metapoison", None, self.score


class _Unrolled(nn.Module):
    """``module`` evaluated with the parameter tensors ``params`` (and its own buffers)."""

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.module = module
        self.params = params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, self.params, (x,), strict=False)


def _float_images(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device)
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def _uint8_images(x: torch.Tensor) -> torch.Tensor:
    """The attacker's training images as uint8 (what :class:`TrainSet` stores)."""
    if x.dtype == torch.uint8:
        return x.cpu()
    return (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def snapshot_epochs(n_surrogates: int, stagger_epochs: int) -> list[int]:
    """Epochs at which the fresh run is snapshotted (one per staggered surrogate): spread
    evenly over a run of ``stagger_epochs``, the fully trained surrogate being the last."""
    n = n_surrogates
    return [max(1, round(stagger_epochs * i / n)) for i in range(1, n)]


def stagger_length(ctx: AttackContext, config: MetaPoisonConfig) -> int:
    """E: ``stagger_epochs``, else the surrogate recipe's epochs, else 2."""
    if config.stagger_epochs is not None:
        return config.stagger_epochs
    return ctx.surrogate_epochs or 2


def mixed_batch(
    ctx: AttackContext, poisons: torch.Tensor, batch_size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean mini-batch of the attacker's training fold (drawn from ``gen``) plus all the
    poisons, with labels: what the unroll and the retraining of the snapshots train on."""
    n_train = ctx.train_x.shape[0]
    pick = torch.randperm(n_train, generator=gen)[: min(batch_size, n_train)]
    x = torch.cat([_float_images(ctx.train_x[pick], ctx.device), poisons])
    y = torch.cat([ctx.train_y[pick].to(ctx.device), ctx.base_labels])
    return x, y


def staggered_surrogates(
    ctx: AttackContext, config: MetaPoisonConfig, seed: int
) -> list[tuple[str, nn.Module]]:
    """(name, model) pairs: snapshots of a fresh run at :func:`snapshot_epochs`, then
    ``ctx.surrogate`` ("trained"). All in eval mode."""
    epochs = snapshot_epochs(config.n_surrogates, stagger_length(ctx, config))
    out: list[tuple[str, nn.Module]] = []
    if epochs and ctx.train_x.shape[0] > 0:
        fresh = copy.deepcopy(ctx.surrogate).cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "stagger-init"))
            for module in fresh.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        data = TrainSet(_uint8_images(ctx.train_x), ctx.train_y.cpu(),
                        torch.arange(ctx.train_x.shape[0]))
        recipe = Recipe(epochs=1, batch_size=config.batch_size, lr=config.stagger_lr,
                        milestones=(), crop_padding=config.crop_padding, flip=config.flip)
        done = 0
        for i, epoch in enumerate(epochs):
            while done < epoch:
                train_model(fresh, data, recipe, derive_seed(seed, "stagger-epoch", done),
                            ctx.device, progress=ctx.progress, desc=f"stagger e{done + 1}")
                done += 1
            name = f"epoch{epoch}" if epochs.count(epoch) == 1 else f"epoch{epoch}-{i}"
            out.append((name, copy.deepcopy(fresh).eval()))
    out.append(("trained", ctx.surrogate))
    for _, model in out:
        model.eval()
    return out


class MetaPoison(Attack):
    """Unrolled-SGD (meta-learning) poisoning toward the relaxed conformal loss l2."""

    def __init__(self, config: MetaPoisonConfig) -> None:
        self.config = config
        self.name = config.name

    def objective(
        self, ctx: AttackContext, seed: int, surrogates: list[tuple[str, nn.Module]]
    ) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
        """``fn(delta, gen)``: mean over ``surrogates`` of l2 after the K-step unroll on
        clean mini-batches (drawn from ``gen``) plus the poisons ``bases + delta``."""
        cfg = self.config
        scorer = build_scorer(cfg.score, seed, cfg.rscp_samples)
        data = loss_data(ctx, scorer, seed)

        def unrolled_l2(model: nn.Module, poisons: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
            names = [n for n, p in model.named_parameters() if p.requires_grad]
            params = {n: p.detach().requires_grad_(True)
                      for n, p in model.named_parameters() if p.requires_grad}
            net = _Unrolled(model, params)
            for _ in range(cfg.unroll_steps):
                x, y = mixed_batch(ctx, poisons, cfg.batch_size, gen)
                if cfg.augment:
                    x = augment(x, cfg.crop_padding, cfg.flip, gen)
                loss = F.cross_entropy(net(x), y)
                grads = torch.autograd.grad(loss, [params[n] for n in names],
                                            create_graph=True, allow_unused=True)
                params = {n: params[n] - cfg.unroll_lr * g if g is not None else params[n]
                          for n, g in zip(names, grads)}
                net = _Unrolled(model, params)
            return relaxed_loss(net, scorer, ctx.goal, data, ctx.alpha)

        def fn(delta: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            poisons = (ctx.bases + delta).clamp(0, 1)
            total = sum(unrolled_l2(m, poisons, gen) for _, m in surrogates)
            return total / len(surrogates)

        return fn

    def retrain(self, ctx: AttackContext, models: list[nn.Module], poisons: torch.Tensor,
                gen: torch.Generator) -> None:
        """``retrain_steps`` SGD steps of each staggered snapshot on a clean mini-batch plus
        the current poisons (train mode, so BatchNorm statistics move as in training)."""
        cfg = self.config
        for model in models:
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            for _ in range(cfg.retrain_steps):
                x, y = mixed_batch(ctx, poisons, cfg.batch_size, gen)
                grads = torch.autograd.grad(F.cross_entropy(model(x), y), params,
                                            allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        if g is not None:
                            p.sub_(cfg.stagger_lr * g)
            model.eval()

    def craft(self, ctx: AttackContext) -> PoisonSet:
        cfg = self.config
        seed = derive_seed(ctx.seed, "metapoison")
        surrogates = staggered_surrogates(ctx, cfg, seed)
        staggered = [m for _, m in surrogates if m is not ctx.surrogate]
        objective = self.objective(ctx, seed, surrogates)
        eps, bases = ctx.eps, ctx.bases

        def evaluate(delta: torch.Tensor) -> float:
            # Fixed clean batches (CPU generator: randperm indexes the CPU training fold).
            with torch.enable_grad():
                return float(objective(delta, make_generator(derive_seed(seed, "eval"))).detach())

        delta = torch.zeros_like(bases, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=cfg.lr * eps)
        decay_at = {round(cfg.craft_steps * f) for f in (3 / 8, 5 / 8, 7 / 8)}
        gen = make_generator(derive_seed(seed, "batches"))
        history: list[float] = []
        bar = tqdm(range(cfg.craft_steps), desc="metapoison", disable=not ctx.progress,
                   leave=False)
        for step in bar:
            if step in decay_at:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
            opt.zero_grad(set_to_none=True)
            loss = objective(delta, gen)
            loss.backward()
            signed_step(opt, delta, bases, eps)
            if cfg.retrain_steps and staggered:
                self.retrain(ctx, staggered, (bases + delta.detach()).clamp(0, 1), gen)
            history.append(float(loss.detach()))
            bar.set_postfix(l2=f"{history[-1]:.3f}")
        final = delta.detach()
        # Both on the ensemble as crafting left it and on the same fixed clean batches.
        l2_start, l2_final = evaluate(torch.zeros_like(bases)), evaluate(final)
        log.info("metapoison: %d poisons, l2 after a %d-step unroll %.4f -> %.4f",
                 bases.shape[0], cfg.unroll_steps, l2_start, l2_final)
        meta = {"attack": self.name, "l2_start": l2_start, "l2_final": l2_final,
                "steps": cfg.craft_steps, "l2_history": history,
                "snapshot_epochs": snapshot_epochs(cfg.n_surrogates, stagger_length(ctx, cfg))}
        return PoisonSet(ctx.base_ids, final.cpu(), ctx.inject, meta)
