"""What a repeat and a victim pair fix, in every setting (SPEC 6): their seeds, the groups a
poison set is evaluated on, and the facts every result row carries."""

from __future__ import annotations

from typing import Any

import torch

from cpoison.attacks import PoisonSet, attack_label
from cpoison.attacks.registry import objective_facts
from cpoison.data.splits import evaluation_indices
from cpoison.errors import ConfigError, DataError
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.evaluation import EvalViews
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed


def repeat_seed(config: ExperimentConfig, repeat: int) -> int:
    """The seed of repeat ``repeat`` (SPEC 6: each repeat its own target class and seeds)."""
    return derive_seed(config.seed, "repeat", repeat)


def victim_seeds(config: ExperimentConfig, repeat: int, victim: int) -> tuple[int, int]:
    """(training seed, evaluation seed) of victim pair ``victim``: the benign and the
    poisoned model share both (SPEC 6 pairing)."""
    seed = repeat_seed(config, repeat)
    return derive_seed(seed, "victim", victim), derive_seed(seed, "eval", victim)


def poison_budget(config: ExperimentConfig, ws: Workspace,
                  where: str = "") -> tuple[int, torch.Tensor, str]:
    """(number of poisons, the pool their bases come from, whose pool it is): ``budget *
    |victim train|`` poisons, from the attacker's data (black-box) or the victim's
    (white-box); ConfigError when the budget gives no poison. The one budget rule of the
    checks before training and of the base selection."""
    split = ws.split
    n_poisons = round(config.budget * split.victim_train.numel())
    if n_poisons < 1:
        raise ConfigError(f"budget {config.budget} gives no poison for "
                          f"{split.victim_train.numel()} victim training images{where}")
    if config.setting == "black-box":
        return n_poisons, split.attacker_train, "attacker"
    return n_poisons, split.victim_train, "victim"


def views_of(ws: Workspace, poisons: PoisonSet) -> EvalViews:
    """The targets, other images of the target class and evaluation set of a poison set."""
    meta = poisons.meta
    if "targets" not in meta or "target_class" not in meta:
        raise DataError("poison set lacks its targets in the sidecar meta")
    targets = torch.tensor(meta["targets"], dtype=torch.long)
    labels = ws.dataset.test_labels
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= labels.numel()):
        raise DataError(f"poison set names targets outside the test set of {labels.numel()}")
    others = torch.nonzero(labels == int(meta["target_class"])).flatten()
    others = others[~torch.isin(others, targets)]
    return EvalViews(targets, others, evaluation_indices(labels.numel(), targets))


def row_meta(config: ExperimentConfig, attack_index: int, poisons: PoisonSet,
             views: EvalViews, repeat: int, victim: int, score: str) -> dict[str, Any]:
    """The facts every row of a cell carries, in every setting."""
    attack_config = config.attacks[attack_index]
    loss, order, craft_score = objective_facts(attack_config)
    return {
        "repeat": repeat, "attack": attack_label(attack_config), "victim": victim,
        "score": score, "goal": config.goal.kind, "setting": config.setting,
        "alpha": config.alpha,
        "target_class": int(poisons.meta["target_class"]), "budget": config.budget,
        "eps": config.eps, "loss": loss, "order": order, "craft_score": craft_score,
        "n_poisons": len(poisons), "n_targets": int(views.targets.numel()),
        "craft_seconds": poisons.meta.get("craft_seconds"),
    }
