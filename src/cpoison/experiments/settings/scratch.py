"""Training from scratch (the default setting): the surrogate is a model of the attacker's
architecture trained on D^tr; every victim is a model of the victim's architecture trained
with the preset's recipe on the victim training set (plus the poisons), under the config's
defense (:mod:`cpoison.experiments.defended`), and evaluated on the victim's calibration
set with every score (by the config's ``predictor`` when one is set)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from cpoison.attacks import PoisonSet
from cpoison.defenses import Defense
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.defended import fit_victim
from cpoison.experiments.evaluation import EvalViews, ModelEval, evaluate_victim
from cpoison.experiments.repeats import repeat_seed, victim_seeds
from cpoison.experiments.settings.base import (
    Setting,
    Victim,
    defense_key,
    evaluation_part,
    victim_factory,
)
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed
from cpoison.training import TrainSet


def surrogate_data(ws: Workspace, config: ExperimentConfig, repeat: int) -> tuple[TrainSet, int]:
    """(training set, seed) of the repeat's surrogate: D^tr and a seed of the repeat."""
    return (ws.trainset(ws.split.attacker_train),
            derive_seed(repeat_seed(config, repeat), "surrogate"))


def benign_data(ws: Workspace) -> TrainSet:
    """The victims' clean training set."""
    return ws.trainset(ws.split.victim_train)


class Scratch(Setting):
    """Victims (and the surrogate) trained from scratch."""

    name = "scratch"

    def surrogate_key(self, ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
        data, seed = surrogate_data(ws, config, repeat)
        return ws.model_key(data, seed, config.surrogate)

    def train_surrogate(self, ws: Workspace, config: ExperimentConfig,
                        repeat: int) -> nn.Module:
        data, seed = surrogate_data(ws, config, repeat)
        return ws.train(data, seed, desc=f"surrogate r{repeat}", spec=config.surrogate)

    def benign_key(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> str:
        """With no defense, the benign model's key; under a defense, the same fields plus
        the defense's settings (the key of the model a training-hook defense trains, and of
        the victim record ``victims/<key>.json`` every defense stores)."""
        seed, _ = victim_seeds(config, repeat, victim)
        return ws.model_key(benign_data(ws), seed, config.victim, defense=defense_key(config))

    def fit_benign(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> Victim:
        seed, _ = victim_seeds(config, repeat, victim)
        return Victim(fit_victim(ws, config, benign_data(ws), seed,
                                 desc=f"benign r{repeat} v{victim}"))

    def fit_poisoned(self, ws: Workspace, config: ExperimentConfig, repeat: int, victim: int,
                     poisons: PoisonSet, benign: Victim, desc: str) -> Victim:
        seed, _ = victim_seeds(config, repeat, victim)
        data = benign_data(ws).with_poisons(poisons.ids, poisons.delta, inject=poisons.inject)
        return Victim(fit_victim(ws, config, data, seed, desc=desc))

    def cell_parts(self, ws: Workspace, config: ExperimentConfig, eval_seed: int
                   ) -> dict[str, Any]:
        return {
            "victim": ws.spec(config.victim).model_dump(mode="json"),
            "evaluation": evaluation_part(config, {
                "scores": list(config.scores), "alpha": config.alpha, "seed": eval_seed,
                "rscp_samples": ws.preset.rscp_samples if "rscp" in config.scores else None}),
            "defense": defense_key(config),
        }

    def evaluate(self, ws: Workspace, config: ExperimentConfig, victim: Victim,
                 views: EvalViews, eval_seed: int, defense: Defense,
                 n_poisons: int) -> ModelEval:
        return evaluate_victim(ws, defense, victim.outcome.models, views, config.scores,
                               config.alpha, eval_seed, victim_factory(config))
