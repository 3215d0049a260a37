"""Attacks against conformal prediction: goals, losses, crafting loop, baselines."""

from cpoison.attacks.alignment import CraftingConfig, align_poisons
from cpoison.attacks.base import Attack
from cpoison.attacks.conformal_attack import ConformalAttack, ConformalAttackConfig
from cpoison.attacks.context import AttackContext
from cpoison.attacks.goal_metrics import goal_metrics
from cpoison.attacks.goals import GOAL_KINDS, Goal, check_goal
from cpoison.attacks.losses import LossData, relaxed_loss
from cpoison.attacks.metapoison import MetaPoison, MetaPoisonConfig
from cpoison.attacks.misclassification import Misclassification, MisclassificationConfig
from cpoison.attacks.poison_set import PoisonSet
from cpoison.attacks.random_noise import RandomNoise, RandomNoiseConfig
from cpoison.attacks.registry import (
    AttackConfig,
    attack_label,
    available_attacks,
    build_attack,
    register_attack,
)

__all__ = [
    "GOAL_KINDS",
    "Attack",
    "AttackConfig",
    "AttackContext",
    "ConformalAttack",
    "ConformalAttackConfig",
    "CraftingConfig",
    "Goal",
    "LossData",
    "MetaPoison",
    "MetaPoisonConfig",
    "Misclassification",
    "MisclassificationConfig",
    "PoisonSet",
    "RandomNoise",
    "RandomNoiseConfig",
    "align_poisons",
    "attack_label",
    "available_attacks",
    "build_attack",
    "check_goal",
    "goal_metrics",
    "register_attack",
    "relaxed_loss",
]
