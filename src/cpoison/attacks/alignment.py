"""The shared crafting loop: gradient alignment (paper Eq. 11-13, SPEC 5.1).

Given a fixed direction ``g`` in parameter space (the l3 gradient for the first-order
update, (H + lambda I)^-1 g for the second-order one, a misclassification gradient for the
traditional attack), find perturbations delta of the poisons that minimise

    1 - cos(G(delta), g),   G(delta) = sum_p grad_theta CE(f(x_p + delta_p), y_p)
                                       [- sum_p grad_theta CE(f(x_p), y_p)  (white-box)]

An SGD step on the poisons moves theta along -G, so aligning G with g moves theta along -g,
which lowers the adversarial loss. The optimiser is Adam on the sign of the gradient with
learning rate ``lr * eps``, decayed x0.1 at 3/8, 5/8 and 7/8 of the iterations, followed by
projection onto the eps-ball and [0, 1] after every step; ``restarts`` runs keep the lowest
final loss. Poisons are processed in mini-batches (two passes: G is accumulated first, then
each batch back-propagates its share of d(1 - cos)/dG), so memory stays bounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

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


@dataclass
class AlignmentResult:
    delta: torch.Tensor
    loss: float  # final 1 - cos of the kept restart (no augmentation)
    losses: list[float]  # final loss of every restart


def signed_step(opt: torch.optim.Optimizer, delta: torch.Tensor, bases: torch.Tensor,
                eps: float) -> None:
    """One step of Adam on the sign of ``delta.grad`` (SPEC 5.1), then the projection onto
    the eps-ball and onto images in [0, 1]: the update every crafting loop shares."""
    assert delta.grad is not None, "call backward() before signed_step"
    delta.grad.sign_()
    opt.step()
    with torch.no_grad():
        delta.clamp_(-eps, eps)
        delta.copy_((bases + delta).clamp(0, 1) - bases)


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
) -> float:
    """The objective at ``delta`` without augmentation (for reporting and restarts)."""
    g = poison_gradient(model, (bases + delta).clamp(0, 1), labels, create_graph=False)
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
    gradient aligns with ``direction``. ``model`` is used in eval mode (BatchNorm frozen)."""
    model.eval()
    device = bases.device
    direction = direction.detach().to(device)
    base_grad = poison_gradient(model, bases, labels, create_graph=False).detach()
    clean_grad = base_grad if subtract_clean else None
    scale = float(base_grad.norm().clamp_min(1e-12))
    decay_at = {round(config.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)}
    best: AlignmentResult | None = None
    losses: list[float] = []
    n = bases.shape[0]
    for restart in range(config.restarts):
        gen = make_generator(derive_seed(seed, "restart", restart), device)
        delta = (torch.rand(bases.shape, generator=gen, device=device) * 2 - 1) * eps
        delta = ((bases + delta).clamp(0, 1) - bases).requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=config.lr * eps)
        bar = tqdm(range(config.iterations), desc=f"craft r{restart + 1}/{config.restarts}",
                   disable=not progress, leave=False)
        for it in bar:
            if it in decay_at:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
            opt.zero_grad(set_to_none=True)
            loss = _alignment_step(model, bases, labels, delta, direction, clean_grad, config,
                                   gen, scale)
            signed_step(opt, delta, bases, eps)
            if it % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        final = alignment_loss(model, bases, labels, delta.detach(), direction, clean_grad,
                               config.objective, scale)
        losses.append(final)
        log.debug("restart %d: final alignment loss %.4f", restart, final)
        if best is None or final < best.loss:
            best = AlignmentResult(delta.detach().clone(), final, losses)
    assert best is not None
    best.losses = losses
    log.info("crafted %d poisons: alignment loss %.4f (restarts %s)", n, best.loss,
             [round(v, 4) for v in losses])
    return best


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
) -> float:
    """Accumulate d(1 - cos(G, direction))/d delta into ``delta.grad``; returns the loss."""
    n = bases.shape[0]
    batches = [slice(s, s + config.batch_size) for s in range(0, n, config.batch_size)]

    def inputs(sl: slice) -> torch.Tensor:
        x = (bases[sl] + delta[sl]).clamp(0, 1)
        if config.augment:
            x = augment(x, config.crop_padding, config.flip, gen)
        return x

    if len(batches) == 1:
        g = poison_gradient(model, inputs(batches[0]), labels, create_graph=True)
        if clean_grad is not None:
            g = g - clean_grad
        loss = objective_value(g, direction, config.objective, scale)
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
    loss = objective_value(total, direction, config.objective, scale)
    (dl_dg,) = torch.autograd.grad(loss, total)
    gen.set_state(state)  # replay the same augmentation draws
    for sl in batches:
        g = poison_gradient(model, inputs(sl), labels[sl], create_graph=True)
        (g @ dl_dg).backward()
    return float(loss.detach())
