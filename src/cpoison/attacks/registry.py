"""Attacks by name: the config's ``name`` field selects the class.

Adding an attack: a module with its config (a subclass of
:class:`~cpoison.attacks.base.AttackConfigBase` whose ``name`` is a ``Literal`` of its
name; ``default_label`` and ``objective_facts`` say how its result rows are named and what
they record) and its :class:`~cpoison.attacks.base.Attack`, then one line in ``ATTACKS``:
the config union of experiment configs, :func:`build_attack`, :func:`attack_label` and
:func:`objective_facts` follow the table.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from cpoison.attacks.base import Attack, AttackConfigBase
from cpoison.attacks.conformal_attack import ConformalAttack, ConformalAttackConfig
from cpoison.attacks.metapoison import MetaPoison, MetaPoisonConfig
from cpoison.attacks.misclassification import Misclassification, MisclassificationConfig
from cpoison.attacks.random_noise import RandomNoise, RandomNoiseConfig

ATTACKS: dict[str, tuple[type[AttackConfigBase], type[Attack]]] = {
    "ours": (ConformalAttackConfig, ConformalAttack),
    "randun": (RandomNoiseConfig, RandomNoise),
    "randga": (RandomNoiseConfig, RandomNoise),
    "metapoison": (MetaPoisonConfig, MetaPoison),
    "misclassification": (MisclassificationConfig, Misclassification),
}
"""Name -> (config class, attack class)."""

AnyAttackConfig = Union[tuple(dict.fromkeys(c for c, _ in ATTACKS.values()))]  # type: ignore[valid-type]  # noqa: UP007
AttackConfig = Annotated[AnyAttackConfig, Field(discriminator="name")]


def build_attack(config: AttackConfigBase) -> Attack:
    """The attack of ``config`` (by its name in :data:`ATTACKS`)."""
    return ATTACKS[config.name][1](config)  # type: ignore[call-arg]


def attack_label(config: AttackConfigBase) -> str:
    """A short unique name for results: the config's ``label`` or one built from it."""
    return config.label or config.default_label()


def objective_facts(config: AttackConfigBase) -> tuple[str | None, int | None, str | None]:
    """(loss, order, craft score) recorded with every result row (each config's own)."""
    return config.objective_facts()
