"""Attacks by name: the config's ``name`` field selects the class."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cpoison.attacks.base import Attack
from cpoison.attacks.conformal_attack import ConformalAttack, ConformalAttackConfig
from cpoison.attacks.metapoison import MetaPoison, MetaPoisonConfig
from cpoison.attacks.misclassification import Misclassification, MisclassificationConfig
from cpoison.attacks.random_noise import RandomNoise, RandomNoiseConfig

AnyAttackConfig = (
    ConformalAttackConfig | RandomNoiseConfig | MetaPoisonConfig | MisclassificationConfig
)
AttackConfig = Annotated[AnyAttackConfig, Field(discriminator="name")]


def build_attack(config: AnyAttackConfig) -> Attack:
    if isinstance(config, ConformalAttackConfig):
        return ConformalAttack(config)
    if isinstance(config, MetaPoisonConfig):
        return MetaPoison(config)
    if isinstance(config, MisclassificationConfig):
        return Misclassification(config)
    return RandomNoise(config)


def attack_label(config: AnyAttackConfig) -> str:
    """A short unique name for results: the config's ``label`` or one built from it."""
    if config.label:
        return config.label
    if isinstance(config, ConformalAttackConfig):
        if config.implicit_steps:
            return f"ours-{config.loss}-implicit-{config.score}"
        return f"ours-{config.loss}-o{config.order}-{config.score}"
    return config.name


def objective_facts(config: AnyAttackConfig) -> tuple[str | None, int | None, str | None]:
    """(loss, order, craft score) recorded with every result row: the conformal loss, update
    order and score of the paper's attack; "metapoison" (l2 through a K-step unroll, no
    order, its score) and "misclassification" (first-order alignment, no conformal score)
    for the comparators; None for the random baselines."""
    if isinstance(config, ConformalAttackConfig):  # implicit: exact Hessian, second order
        return config.loss, 2 if config.implicit_steps else config.order, config.score
    if isinstance(config, MetaPoisonConfig):
        return "metapoison", None, config.score
    if isinstance(config, MisclassificationConfig):
        return "misclassification", 1, None
    return None, None, None
