"""The shared crafting loop: gradient alignment (paper Eq. 11-13, SPEC 5.1).

Given a fixed direction ``g`` in parameter space (the l3 gradient for the first-order
update, (H + lambda I)^-1 g for the second-order one, a misclassification gradient for the
traditional attack), find perturbations delta of the poisons that minimise

    1 - cos(G(delta), g),   G(delta) = sum_p grad_theta CE(f(x_p + delta_p), y_p)
                                       [- sum_p grad_theta CE(f(x_p), y_p)  (white-box)]

An SGD step on the poisons moves theta along -G, so aligning G with g moves theta along -g,
which lowers the adversarial loss. The optimiser is Adam on the sign of the gradient with
learning rate ``lr * eps``, decayed x0.1 at 3/8, 5/8 and 7/8 of the iterations, followed by
projection onto the eps-ball and [0, 1] after every step. Poisons are processed in
mini-batches (two passes: G is accumulated first, then each batch back-propagates its share
of d(1 - cos)/dG), so memory stays bounded.

Strength (SPEC 5.4), written once here for every alignment-based attack:

* an ensemble of K surrogates, each with its own direction g_k: the loss is the mean over
  surrogates of 1 - cos(G_k(delta), g_k) (Witches' Brew's ensembles);
* retraining while crafting: every ``retrain_every`` iterations each surrogate is refreshed
  on the attacker's data plus the current poisons (a callback of the caller) and its g_k
  and clean gradient recomputed there (Sleeper Agent);
* selection among ``restarts`` candidates: by the final alignment loss on the original
  ensemble, or by a score the caller computes on each candidate (``select``: validation on
  the attacker's side, lower is better).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_serializer
from tqdm.auto import tqdm

from cpoison.attacks.config_keys import drop_legacy
from cpoison.attacks.params import flat_grad, trainable
from cpoison.seeding import derive_seed, make_generator
from cpoison.training.augment import augment

log = logging.getLogger(__name__)


class CraftingConfig(BaseModel):
    """Optimiser settings of the crafting loop (paper scale: 250 iterations, 8 restarts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(250, ge=1)
    restarts: int = Field(8, ge=1)
    lr: float = Field(0.1, gt=0, description="signed-Adam step in units of eps")
    augment: bool = Field(True, description="differentiable augmentation while crafting")
    crop_padding: int = Field(2, ge=0)
    flip: bool = True
    batch_size: int = Field(512, ge=1, description="poisons per mini-batch")
    objective: Literal["cosine", "projection"] = Field(
        "cosine", description="cosine: 1 - cos(G, g) (paper Eq. 12); projection: "
        "-<G, g/||g||> / ||G_clean||, which also rewards a larger poison gradient along g")
    ensemble: int = Field(1, ge=1, description="K surrogates the poisons are aligned with "
                          "(the repeat's surrogate and K - 1 more, stored and shared)")
    ensemble_variant: Literal["seeds", "bootstrap"] = Field(
        "seeds", description="seeds: the extra surrogates differ in initial weights and data "
        "order; bootstrap: each also trains on a bootstrap resample of the attacker's data")
    ensemble_archs: tuple[str, ...] = Field(
        (), description="architectures of the extra surrogates, cycled (empty: the "
        "attacker's architecture)")
    retrain_every: int = Field(0, ge=0, description="R: every R iterations, fine-tune each "
                               "surrogate on the attacker's data plus the current poisons and "
                               "recompute its direction there (0: never)")
    retrain: Literal["finetune", "scratch"] = Field(
        "finetune", description="finetune: continue from the surrogate's weights for "
        "retrain_epochs epochs of the recipe compressed to that length; scratch: train again "
        "from fresh weights with the full recipe (Sleeper Agent; a full training per "
        "surrogate and refresh)")
    retrain_epochs: int = Field(2, ge=1, description="epochs of each fine-tuning")
    select: Literal["loss", "validation"] = Field(
        "loss", description="keep the restart with the lowest alignment loss, or the one "
        "whose poisons best reach the goal on a model trained afresh on the attacker's data "
        "plus those poisons, calibrated on the attacker's calibration fold")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Fields added for SPEC 5.4 are left out while they hold the behaviour of the loop
        before them, so configs without them keep their keys (their poisons do not change)."""
        return drop_legacy(handler(self), _LEGACY)  # type: ignore[no-any-return]


_LEGACY: dict[str, Any] = {"ensemble": 1, "ensemble_variant": "seeds", "ensemble_archs": [],
                           "retrain_every": 0, "retrain": "finetune", "retrain_epochs": 2,
                           "select": "loss"}


@dataclass
class AlignmentResult:
    delta: torch.Tensor
    loss: float  # final alignment loss of the kept restart (no augmentation)
    losses: list[float]  # final loss of every restart
    selection: list[float] = field(default_factory=list)  # ``select`` scores, when given
    retrains: int = 0  # surrogate refreshes per restart


DirectionFn = Callable[[nn.Module], torch.Tensor]
"""A surrogate's direction g in its trainable-parameter space (the attack's objective)."""
RetrainFn = Callable[[int, nn.Module, torch.Tensor, int], nn.Module]
"""(member index, its original model, current delta, refresh number) -> refreshed model."""
SelectFn = Callable[[list[torch.Tensor]], list[float]]
"""Candidate deltas -> one score each, lower is better (selection on the attacker's side)."""


@dataclass
class Member:
    """One surrogate of the ensemble while crafting: its model, its direction and the terms
    of its alignment loss (the clean bases' gradient in white-box, the scale)."""

    model: nn.Module
    direction: torch.Tensor
    clean_grad: torch.Tensor | None
    scale: float


def make_member(model: nn.Module, direction_of: DirectionFn, bases: torch.Tensor,
                labels: torch.Tensor, subtract_clean: bool) -> Member:
    model.eval()
    direction = direction_of(model).detach().to(bases.device)
    base_grad = poison_gradient(model, bases, labels, create_graph=False).detach()
    return Member(model, direction, base_grad if subtract_clean else None,
                  float(base_grad.norm().clamp_min(1e-12)))


Clip = tuple[float, float] | None
"""The range perturbed inputs stay in: (0, 1) for images, None for feature vectors."""


def clipped(x: torch.Tensor, clip: Clip = (0.0, 1.0)) -> torch.Tensor:
    """``x`` clamped to ``clip`` (unchanged when None)."""
    return x if clip is None else x.clamp(*clip)


def signed_step(opt: torch.optim.Optimizer, delta: torch.Tensor, bases: torch.Tensor,
                eps: float, clip: Clip = (0.0, 1.0)) -> None:
    """One step of Adam on the sign of ``delta.grad`` (SPEC 5.1), then the projection onto
    the eps-ball and onto images in [0, 1] (``clip``): the update every crafting loop
    shares."""
    assert delta.grad is not None, "call backward() before signed_step"
    delta.grad.sign_()
    opt.step()
    with torch.no_grad():
        delta.clamp_(-eps, eps)
        if clip is not None:
            delta.copy_((bases + delta).clamp(*clip) - bases)


def poison_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, create_graph: bool
) -> torch.Tensor:
    """sum_p grad_theta CE(f(x_p), y_p) as a flat vector."""
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return flat_grad(loss, trainable(model), create_graph=create_graph)


def objective_value(
    g: torch.Tensor, direction: torch.Tensor, objective: str, scale: float
) -> torch.Tensor:
    """The crafting objective of the poisons' gradient ``g`` (to minimise)."""
    if objective == "projection":
        return -(g @ direction) / (direction.norm() * scale)
    return 1 - F.cosine_similarity(g, direction, dim=0)


def alignment_loss(
    model: nn.Module,
    bases: torch.Tensor,
    labels: torch.Tensor,
    delta: torch.Tensor,
    direction: torch.Tensor,
    clean_grad: torch.Tensor | None = None,
    objective: str = "cosine",
    scale: float = 1.0,
    clip: Clip = (0.0, 1.0),
) -> float:
    """The objective at ``delta`` without augmentation (for reporting and restarts)."""
    g = poison_gradient(model, clipped(bases + delta, clip), labels, create_graph=False)
    if clean_grad is not None:
        g = g - clean_grad
    return float(objective_value(g, direction, objective, scale))


def align_poisons(
    model: nn.Module,
    bases: torch.Tensor,
    labels: torch.Tensor,
    direction: torch.Tensor,
    eps: float,
    config: CraftingConfig,
    seed: int,
    subtract_clean: bool = False,
    progress: bool = True,
) -> AlignmentResult:
    """Craft delta for ``bases`` (float [P, C, H, W] in [0, 1]) so that the poisons' training
    gradient aligns with ``direction`` at one fixed ``model`` (used in eval mode)."""
    return align_to_ensemble([model], lambda _: direction, bases, labels, eps, config, seed,
                             subtract_clean, progress)


def align_to_ensemble(
    models: Sequence[nn.Module],
    direction_of: DirectionFn,
    bases: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    config: CraftingConfig,
    seed: int,
    subtract_clean: bool = False,
    progress: bool = True,
    retrain: RetrainFn | None = None,
    select: SelectFn | None = None,
    clip: Clip = (0.0, 1.0),
) -> AlignmentResult:
    """The crafting loop (module docstring): align the poisons' gradient with each
    surrogate's direction, mean loss over ``models``; refresh the surrogates through
    ``retrain`` every ``config.retrain_every`` iterations; keep the restart that ``select``
    scores lowest (else the lowest final alignment loss on the original ``models``)."""
    if config.retrain_every and retrain is None:
        raise ValueError("retrain_every needs a retrain callback")
    originals = [make_member(m, direction_of, bases, labels, subtract_clean) for m in models]
    decay_at = {round(config.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)}
    candidates: list[torch.Tensor] = []
    losses: list[float] = []
    retrains = 0
    for restart in range(config.restarts):
        gen = make_generator(derive_seed(seed, "restart", restart), bases.device)
        delta = (torch.rand(bases.shape, generator=gen, device=bases.device) * 2 - 1) * eps
        delta = (clipped(bases + delta, clip) - bases).requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=config.lr * eps)
        members = list(originals)
        refreshes = 0
        bar = tqdm(range(config.iterations), desc=f"craft r{restart + 1}/{config.restarts}",
                   disable=not progress, leave=False)
        for it in bar:
            if it in decay_at:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
            if config.retrain_every and it and it % config.retrain_every == 0:
                assert retrain is not None
                refreshes += 1
                members = [make_member(retrain(k, m.model, delta.detach(), refreshes),
                                       direction_of, bases, labels, subtract_clean)
                           for k, m in enumerate(originals)]
            opt.zero_grad(set_to_none=True)
            loss = sum(_alignment_step(m.model, bases, labels, delta, m.direction,
                                       m.clean_grad, config, gen, m.scale, len(members),
                                       clip) for m in members)
            signed_step(opt, delta, bases, eps, clip)
            if it % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        retrains = refreshes
        final = ensemble_loss(originals, bases, labels, delta.detach(), config.objective, clip)
        losses.append(final)
        candidates.append(delta.detach().clone())
        log.debug("restart %d: final alignment loss %.4f", restart, final)
    scores = select(candidates) if select is not None and len(candidates) > 1 else []
    ranking = scores or losses
    best = min(range(len(candidates)), key=lambda i: ranking[i])
    log.info("crafted %d poisons on %d surrogate(s): alignment loss %.4f (restarts %s%s)",
             bases.shape[0], len(models), losses[best], [round(v, 4) for v in losses],
             f", selection scores {[round(v, 4) for v in scores]}" if scores else "")
    return AlignmentResult(candidates[best], losses[best], losses, scores, retrains)


def ensemble_loss(members: Sequence[Member], bases: torch.Tensor, labels: torch.Tensor,
                  delta: torch.Tensor, objective: str, clip: Clip = (0.0, 1.0)) -> float:
    """The mean alignment objective over ``members`` at ``delta``, without augmentation."""
    return sum(alignment_loss(m.model, bases, labels, delta, m.direction, m.clean_grad,
                              objective, m.scale, clip) for m in members) / len(members)


def _alignment_step(
    model: nn.Module,
    bases: torch.Tensor,
    labels: torch.Tensor,
    delta: torch.Tensor,
    direction: torch.Tensor,
    clean_grad: torch.Tensor | None,
    config: CraftingConfig,
    gen: torch.Generator,
    scale: float,
    n_members: int = 1,
    clip: Clip = (0.0, 1.0),
) -> float:
    """Accumulate d(1 - cos(G, direction))/d delta / ``n_members`` into ``delta.grad``;
    returns that member's share of the ensemble's loss."""
    n = bases.shape[0]
    batches = [slice(s, s + config.batch_size) for s in range(0, n, config.batch_size)]

    def inputs(sl: slice) -> torch.Tensor:
        x = clipped(bases[sl] + delta[sl], clip)
        if config.augment:
            x = augment(x, config.crop_padding, config.flip, gen)
        return x

    if len(batches) == 1:
        g = poison_gradient(model, inputs(batches[0]), labels, create_graph=True)
        if clean_grad is not None:
            g = g - clean_grad
        loss = objective_value(g, direction, config.objective, scale) / n_members
        loss.backward()
        return float(loss.detach())
    # Two passes: accumulate G without a graph, then back-propagate dL/dG batch by batch.
    state = gen.get_state()
    total = torch.zeros_like(direction)
    for sl in batches:
        total += poison_gradient(model, inputs(sl).detach(), labels[sl], create_graph=False)
    if clean_grad is not None:
        total = total - clean_grad
    total = total.detach().requires_grad_(True)
    loss = objective_value(total, direction, config.objective, scale) / n_members
    (dl_dg,) = torch.autograd.grad(loss, total)
    gen.set_state(state)  # replay the same augmentation draws
    for sl in batches:
        g = poison_gradient(model, inputs(sl), labels[sl], create_graph=True)
        (g @ dl_dg).backward()
    return float(loss.detach())
