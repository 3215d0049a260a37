"""Attacks by name: the config's ``name`` field selects the class.

Adding an attack: a module with its config (a subclass of
:class:`~cpoison.attacks.base.AttackConfigBase` whose ``name`` is a ``Literal`` of its
name; ``default_label`` and ``objective_facts`` say how its result rows are named and what
they record) and its :class:`~cpoison.attacks.base.Attack`, then one line in ``ATTACKS``:
the validation of experiment configs, :func:`build_attack`, :func:`attack_label` and
:func:`objective_facts` follow the table. From outside the package (a plugin, a test),
:func:`register_attack` adds one; configs validated after the call accept it.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, PlainValidator, SerializeAsAny

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
"""Every built-in attack config (for the schema of an experiment config)."""


def register_attack(name: str, config_class: type[AttackConfigBase],
                    attack_class: type[Attack]) -> None:
    """Add an attack to the table under ``name`` (the value of its config's ``name``
    field): experiment configs validated after the call accept ``{name: NAME, ...}``."""
    if not isinstance(name, str) or not name:
        raise ValueError("an attack's name must be a non-empty string")
    if not (isinstance(config_class, type) and issubclass(config_class, AttackConfigBase)):
        raise TypeError(f"{config_class!r} is not a subclass of AttackConfigBase")
    if not (isinstance(attack_class, type) and issubclass(attack_class, Attack)):
        raise TypeError(f"{attack_class!r} is not a subclass of Attack")
    ATTACKS[name] = (config_class, attack_class)


def available_attacks() -> list[str]:
    """Names an experiment config's attacks may take (in table order)."""
    return list(ATTACKS)


def _validate(value: Any) -> AttackConfigBase:
    """An attack config from a mapping (its ``name`` picks the class in :data:`ATTACKS`);
    the class's own validation errors keep their field locations."""
    if isinstance(value, AttackConfigBase):
        return value
    name = value.get("name") if isinstance(value, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"an attack must be a mapping with a 'name', got {value!r}; "
                         f"valid names: {', '.join(available_attacks())}")
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid attacks are: "
                         f"{', '.join(available_attacks())}")
    return ATTACKS[name][0].model_validate(value)


AttackConfig = Annotated[
    SerializeAsAny[AttackConfigBase],
    PlainValidator(_validate, json_schema_input_type=Annotated[
        AnyAttackConfig, Field(discriminator="name")]),
]
"""Pydantic field type of one of an experiment's ``attacks``: validated by the table (so
attacks registered later are accepted), dumped with every field of its config."""


def build_attack(config: AttackConfigBase) -> Attack:
    """The attack of ``config`` (by its name in :data:`ATTACKS`)."""
    return ATTACKS[config.name][1](config)  # type: ignore[call-arg]


def attack_label(config: AttackConfigBase) -> str:
    """A short unique name for results: the config's ``label`` or one built from it."""
    return config.label or config.default_label()


def objective_facts(config: AttackConfigBase) -> tuple[str | None, int | None, str | None]:
    """(loss, order, craft score) recorded with every result row (each config's own)."""
    return config.objective_facts()
