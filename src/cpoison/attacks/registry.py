"""Attacks by name: the config's ``name`` field selects the class."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cpoison.attacks.base import Attack
from cpoison.attacks.conformal_attack import ConformalAttack, ConformalAttackConfig
from cpoison.attacks.random_noise import RandomNoise, RandomNoiseConfig

AttackConfig = Annotated[ConformalAttackConfig | RandomNoiseConfig, Field(discriminator="name")]


def build_attack(config: ConformalAttackConfig | RandomNoiseConfig) -> Attack:
    if isinstance(config, ConformalAttackConfig):
        return ConformalAttack(config)
    return RandomNoise(config)


def attack_label(config: ConformalAttackConfig | RandomNoiseConfig) -> str:
    """A short unique name for results: the config's ``label`` or one built from it."""
    if config.label:
        return config.label
    if isinstance(config, ConformalAttackConfig):
        return f"ours-{config.loss}-o{config.order}-{config.score}"
    return config.name
