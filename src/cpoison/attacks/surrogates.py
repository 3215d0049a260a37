"""The attacker's extra models while crafting (SPEC 5.4): what an alignment-based attack may
ask of the setting it runs in, and the one place that turns a crafting config into an
ensemble, a retraining callback and a validation selector for
:func:`cpoison.attacks.alignment.align_to_ensemble`.

The setting (the experiment protocol, the audit) implements :class:`SurrogatePool` on the
attacker's own data only: D^tr for training, D^ca for calibration. Nothing of a victim is
ever used, so selection on the attacker's side is a legitimate part of the attack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn as nn

from cpoison.attacks.alignment import (
    AlignmentResult,
    CraftingConfig,
    DirectionFn,
    align_to_ensemble,
)
from cpoison.attacks.context import AttackContext
from cpoison.attacks.poison_set import PoisonSet
from cpoison.errors import ConfigError
from cpoison.seeding import derive_seed


class SurrogatePool(Protocol):
    """The attacker's model factory for one repeat (implemented by the setting)."""

    def ensemble(self, k: int, variant: str, archs: tuple[str, ...]) -> list[nn.Module]:
        """The repeat's surrogate first, then ``k - 1`` more trained on the attacker's
        training fold (other seeds; ``bootstrap``: on resamples of it; ``archs`` cycled),
        each stored under its content key and shared by every attack of the repeat."""
        ...

    def finetune(self, model: nn.Module, poisons: PoisonSet, epochs: int,
                 seed: int) -> nn.Module:
        """A copy of ``model`` trained ``epochs`` more epochs on the attacker's training
        fold with ``poisons`` in it (bases of that fold replaced in place, others added)."""
        ...

    def retrain(self, index: int, poisons: PoisonSet, seed: int) -> nn.Module:
        """Surrogate ``index`` trained again from fresh initial weights (``seed``) with the
        full recipe on the attacker's training fold with ``poisons`` in it (not stored)."""
        ...

    def fresh(self, poisons: PoisonSet, seed: int) -> nn.Module:
        """A model of the attacker's architecture trained from scratch, with the full
        recipe, on the attacker's training fold with ``poisons`` in it."""
        ...


ValidationObjective = Callable[[nn.Module], float]
"""A model trained with a candidate's poisons -> the attack's goal on the targets (lower is
better), measured on the attacker's side."""


def needs_pool(crafting: CraftingConfig) -> bool:
    """Whether the crafting config asks for more than the repeat's one surrogate."""
    return crafting.ensemble > 1 or crafting.retrain_every > 0 or crafting.select == "validation"


def craft_aligned(
    ctx: AttackContext, crafting: CraftingConfig, direction_of: DirectionFn, seed: int,
    objective: ValidationObjective | None = None,
) -> AlignmentResult:
    """Run the one crafting loop for an alignment-based attack: its direction per surrogate
    (``direction_of``), the ensemble, retraining and selection of ``crafting``;
    ``objective`` is what validation selection minimises (needed for ``select:
    validation``)."""
    models: list[nn.Module] = [ctx.surrogate]
    pool = ctx.surrogates
    if needs_pool(crafting):
        if pool is None:
            raise ConfigError("crafting.ensemble / retrain_every / select: validation need "
                              "the attacker's models to be trainable here; this setting does "
                              "not provide them (use the from-scratch setting)")
        models = pool.ensemble(crafting.ensemble, crafting.ensemble_variant,
                               crafting.ensemble_archs)
    retrain = None
    if crafting.retrain_every:
        assert pool is not None

        def retrain(k: int, model: nn.Module, delta: torch.Tensor, n: int) -> nn.Module:
            poisons = PoisonSet(ctx.base_ids, delta.cpu(), ctx.inject)
            refresh_seed = derive_seed(seed, "retrain", k, n)
            if crafting.retrain == "scratch":
                return pool.retrain(k, poisons, refresh_seed)
            return pool.finetune(model, poisons, crafting.retrain_epochs, refresh_seed)

    select = None
    if crafting.select == "validation":
        assert pool is not None
        if objective is None:
            raise ConfigError("select: validation needs an attack with a goal to measure")

        def select(candidates: list[torch.Tensor]) -> list[float]:
            fresh_seed = derive_seed(seed, "validate")  # the same for every candidate
            return [objective(pool.fresh(PoisonSet(ctx.base_ids, d.cpu(), ctx.inject),
                                         fresh_seed)) for d in candidates]

    return align_to_ensemble(
        models, direction_of, ctx.bases, ctx.base_labels, ctx.eps, crafting,
        derive_seed(seed, "align"), subtract_clean=not ctx.inject, progress=ctx.progress,
        retrain=retrain, select=select, clip=ctx.clip,
    )
