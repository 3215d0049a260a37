"""The attacker's models for one repeat (SPEC 5.4): the from-scratch setting's
:class:`cpoison.attacks.surrogates.SurrogatePool`.

Everything here trains on the attacker's training fold D^tr only. The ensemble's extra
surrogates and the validation models are stored under their content keys (through
:meth:`Workspace.train`), so every attack, budget and grid point of a repeat shares them
and a re-run loads them. Fine-tuned copies (retraining while crafting) depend on poisons
still being optimised and are not stored.

Retraining while crafting (``crafting.retrain``): ``finetune`` (the default) continues from
the surrogate's weights for ``retrain_epochs`` epochs of the recipe compressed to that length
(its initial learning rate, the same step decays), a warm restart that moves the model far
enough to adapt to the current poisons, as a victim trained on them will; ``scratch``
retrains from fresh initial weights with the full recipe, as Sleeper Agent does, at the cost
of a full training per surrogate and refresh (40 epochs on the demo preset against 2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from cpoison.attacks.poison_set import PoisonSet
from cpoison.experiments.config import ModelSpec
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator
from cpoison.training import TrainSet, train_model


@dataclass
class RepeatSurrogates:
    """The attacker's model factory for one repeat: ``surrogate`` is the repeat's trained
    surrogate, ``seed`` the repeat's seed, ``spec`` the attacker's architecture."""

    ws: Workspace
    surrogate: nn.Module
    seed: int
    spec: ModelSpec | None = None

    def attacker_data(self, poisons: PoisonSet | None = None,
                      indices: torch.Tensor | None = None) -> TrainSet:
        """D^tr (or ``indices`` of the pool) with ``poisons``: bases that are D^tr images
        replace them in place (black-box: the attacker's analogue of clean data plus
        poisons), others are added (white-box bases come from the victim's data)."""
        data = self.ws.trainset(self.ws.split.attacker_train if indices is None else indices)
        if poisons is None:
            return data
        inside = bool(torch.isin(poisons.ids, data.indices).all())
        return data.with_poisons(poisons.ids, poisons.delta, inject=not inside)

    def ensemble(self, k: int, variant: str, archs: tuple[str, ...]) -> list[nn.Module]:
        models = [self.surrogate]
        pool = self.ws.split.attacker_train
        for i in range(1, k):
            seed = derive_seed(self.seed, "surrogate", i)
            indices = None
            if variant == "bootstrap":
                gen = make_generator(derive_seed(seed, "bootstrap"))
                indices = pool[torch.randint(pool.numel(), (pool.numel(),), generator=gen)]
            spec = self.spec
            if archs:
                spec = ModelSpec(arch=archs[(i - 1) % len(archs)])
            models.append(self.ws.train(self.attacker_data(indices=indices), seed,
                                        desc=f"surrogate {i + 1}/{k}", spec=spec))
        return models

    def finetune(self, model: nn.Module, poisons: PoisonSet, epochs: int,
                 seed: int) -> nn.Module:
        recipe = self.ws.preset.recipe.model_copy(update={"epochs": epochs})
        tuned = copy.deepcopy(model).to(self.ws.device)
        return train_model(tuned, self.attacker_data(poisons), recipe, seed, self.ws.device,
                           progress=False, desc="fine-tune")

    def retrain(self, index: int, poisons: PoisonSet, seed: int) -> nn.Module:
        spec = self.spec
        fresh = self.ws.build(seed, spec).to(self.ws.device)
        return train_model(fresh, self.attacker_data(poisons), self.ws.preset.recipe, seed,
                           self.ws.device, progress=False, desc=f"retrain {index}")

    def fresh(self, poisons: PoisonSet, seed: int) -> nn.Module:
        return self.ws.train(self.attacker_data(poisons), seed, desc="validation model",
                             spec=self.spec)
