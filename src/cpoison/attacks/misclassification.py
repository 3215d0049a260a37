"""The "traditional poisoning attack" of the paper (SPEC 5.3): gradient-matching
misclassification poisoning (Geiping et al., "Witches' Brew", ICLR 2021).

The target loss is CE(f(X_v), y_adv) summed over the targets: the cross-entropy toward one
wrong class y_adv, to be minimised. Its gradient g at the surrogate's weights is the direction
handed to the one crafting loop (:func:`~cpoison.attacks.surrogates.craft_aligned`, with its
ensembles, retraining and selection, SPEC 5.4): the poisons' training gradient G
is aligned with +g, an SGD step on the poisons moves theta along -G, hence along -g, which
lowers CE(f(X_v), y_adv), i.e. raises the targets' log-probability of y_adv.

``adversarial_class`` None picks the class the surrogate ranks second on the targets, by
majority over the targets (ties to the smaller label).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field

from cpoison.attacks.alignment import CraftingConfig
from cpoison.attacks.base import Attack, AttackConfigBase
from cpoison.attacks.context import AttackContext
from cpoison.attacks.params import flat_grad, trainable
from cpoison.attacks.poison_set import PoisonSet
from cpoison.attacks.surrogates import craft_aligned
from cpoison.errors import ConfigError

log = logging.getLogger(__name__)


class MisclassificationConfig(AttackConfigBase):
    """Settings of the misclassification attack (``name: misclassification``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["misclassification"] = "misclassification"
    label: str | None = None
    adversarial_class: int | None = Field(
        None, ge=0, description="y_adv; None: the surrogate's majority runner-up on the targets")
    crafting: CraftingConfig = CraftingConfig()

    def objective_facts(self) -> tuple[str | None, int | None, str | None]:
        """First-order alignment, no conformal score."""
        return "misclassification", 1, None


def runner_up_class(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """The class most often ranked second (best label other than the true one)."""
    masked = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return int(torch.bincount(masked.argmax(1), minlength=logits.shape[1]).argmax())


class Misclassification(Attack):
    """Gradient alignment toward CE(f(X_v), y_adv) (first order, shared crafting loop)."""

    def __init__(self, config: MisclassificationConfig) -> None:
        self.config = config
        self.name = config.name

    def adversarial_class(self, ctx: AttackContext) -> int:
        model = ctx.surrogate.eval()
        with torch.no_grad():
            logits = model(ctx.target_x)
        y_adv = self.config.adversarial_class
        if y_adv is None:
            return runner_up_class(logits, ctx.target_y)
        if y_adv >= logits.shape[1]:
            raise ConfigError(f"adversarial_class {y_adv} is not a class of the model "
                              f"(0..{logits.shape[1] - 1})")
        if bool((ctx.target_y == y_adv).any()):
            raise ConfigError(f"adversarial_class {y_adv} is the true class of some targets")
        return y_adv

    def target_direction(self, ctx: AttackContext, model: torch.nn.Module | None = None,
                         y_adv: int | None = None) -> tuple[torch.Tensor, int, float]:
        """(g = grad_theta sum_v CE(f(X_v), y_adv) at ``model`` (default: the surrogate),
        y_adv, that CE there)."""
        y_adv = self.adversarial_class(ctx) if y_adv is None else y_adv
        model = (model if model is not None else ctx.surrogate).eval()
        adv = torch.full_like(ctx.target_y, y_adv)
        loss = F.cross_entropy(model(ctx.target_x), adv, reduction="sum")
        g = flat_grad(loss, trainable(model))
        return g.detach(), y_adv, float(loss.detach())

    def craft(self, ctx: AttackContext) -> PoisonSet:
        y_adv = self.adversarial_class(ctx)
        ce_at: list[float] = []

        def direction_of(model: torch.nn.Module) -> torch.Tensor:
            g, _, ce = self.target_direction(ctx, model, y_adv)
            ce_at.append(ce)
            return g

        def objective(model: torch.nn.Module) -> float:
            """Attacker-side validation: CE toward y_adv on the targets (lower is better)."""
            adv = torch.full_like(ctx.target_y, y_adv)
            with torch.no_grad():
                return float(F.cross_entropy(model.eval()(ctx.target_x), adv))

        result = craft_aligned(ctx, self.config.crafting, direction_of, ctx.seed, objective)
        log.info("misclassification toward class %d: alignment loss %.4f", y_adv, result.loss)
        meta = {"attack": self.name, "adversarial_class": y_adv, "ce_adv_surrogate": ce_at[0],
                "alignment_loss": result.loss, "restart_losses": result.losses}
        if result.selection:
            meta["selection_scores"] = result.selection
        return PoisonSet(ctx.base_ids, result.delta.cpu(), ctx.inject, meta)
