"""Defenses by name (SPEC 7): the config's ``name`` field selects the class.

>>> from cpoison.defenses import build_defense, parse_defense
>>> defense = build_defense(parse_defense("maxup"))          # defaults
>>> defense = build_defense(parse_defense({"name": "epic", "fraction": 0.3}))

``DefenseConfig`` is the pydantic discriminated union an experiment config can hold:
``defense: DefenseConfig = Field(default_factory=NoDefenseConfig)`` accepts a bare name
(``defense: maxup``) as well as a mapping (``defense: {name: epic, fraction: 0.3}``), so a
grid can list names (``grid: {defense: [none, maxup, epic]}``). Adding a defense: a module
with its config and :class:`~cpoison.defenses.base.Defense` subclass, then one line in
``DEFENSES`` (the config union and the validation follow the table); from outside the
package (a plugin, a test), :func:`register_defense`.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, PlainValidator, SerializeAsAny, ValidationError

from cpoison.defenses.activation_clustering import (
    ActivationClustering,
    ActivationClusteringConfig,
)
from cpoison.defenses.adversarial import AdversarialPoisoning, AdversarialPoisoningConfig
from cpoison.defenses.base import Defense, DefenseConfigBase
from cpoison.defenses.deep_knn import DeepKnn, DeepKnnConfig
from cpoison.defenses.epic import Epic, EpicConfig
from cpoison.defenses.head_refit import HeadRefit, HeadRefitConfig
from cpoison.defenses.maxup import MaxUp, MaxUpConfig
from cpoison.defenses.none import NoDefense, NoDefenseConfig
from cpoison.defenses.rps import RPS, RPSConfig
from cpoison.defenses.spectral import SpectralSignatures, SpectralSignaturesConfig
from cpoison.errors import ConfigError

DEFENSES: dict[str, tuple[type[DefenseConfigBase], type[Defense]]] = {
    "none": (NoDefenseConfig, NoDefense),
    "maxup": (MaxUpConfig, MaxUp),
    "adversarial_poisoning": (AdversarialPoisoningConfig, AdversarialPoisoning),
    "epic": (EpicConfig, Epic),
    "deep_knn": (DeepKnnConfig, DeepKnn),
    "spectral_signatures": (SpectralSignaturesConfig, SpectralSignatures),
    "activation_clustering": (ActivationClusteringConfig, ActivationClustering),
    "rps": (RPSConfig, RPS),
    "head_refit": (HeadRefitConfig, HeadRefit),
}
"""Name -> (config class, defense class)."""


def register_defense(config_class: type[DefenseConfigBase], defense_class: type[Defense]) -> None:
    """Add a defense to the table: ``config_class`` (its ``name`` field's default is the
    name a config uses) and the :class:`Defense` built from it. Configs validated after the
    call accept it (by name or mapping) and grids can list it."""
    name = config_class.model_fields["name"].default
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_class.__name__}.name needs a default: the defense's name")
    DEFENSES[name] = (config_class, defense_class)


AnyDefenseConfig = Union[tuple(config for config, _ in DEFENSES.values())]  # type: ignore[valid-type]  # noqa: UP007
"""Every built-in defense config (for the schema of an experiment config)."""


def _name_to_mapping(value: Any) -> Any:
    """A bare name (``"maxup"``) means that defense with its defaults."""
    return {"name": value} if isinstance(value, str) else value


def _validate(value: Any) -> DefenseConfigBase:
    try:
        return parse_defense(value)
    except ConfigError as err:
        raise ValueError(str(err)) from None


DefenseConfig = Annotated[
    SerializeAsAny[DefenseConfigBase],
    PlainValidator(_validate, json_schema_input_type=Annotated[
        AnyDefenseConfig, Field(discriminator="name")]),
]
"""Pydantic field type of an experiment's ``defense`` (a name or a mapping): validated by
the table (:func:`parse_defense`, so defenses registered later are accepted), dumped with
every field of its config."""


def available_defenses() -> list[str]:
    """Names accepted by :func:`parse_defense` (in table order)."""
    return list(DEFENSES)


def parse_defense(value: Any) -> AnyDefenseConfig:
    """Validate a defense given as a name, a mapping or a config; one clear
    :class:`ConfigError` per mistake (unknown name, unknown field, value out of range)."""
    if isinstance(value, DefenseConfigBase):
        return value  # type: ignore[return-value]
    raw = _name_to_mapping(value)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"defense must be a name or a mapping with a 'name', got {value!r}; "
                          f"valid names: {', '.join(available_defenses())}")
    name = raw["name"]
    if name not in DEFENSES:
        raise ConfigError(f"unknown defense {name!r}; valid defenses are: "
                          f"{', '.join(available_defenses())}")
    try:
        return DEFENSES[name][0].model_validate(raw)  # type: ignore[return-value]
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "defense"
        got = first.get("input")
        raise ConfigError(f"defense {name!r}: invalid value for '{where}' ({got!r}): "
                          f"{first['msg']}") from None


def build_defense(config: AnyDefenseConfig | str | dict[str, Any]) -> Defense:
    """The :class:`Defense` for a config (names and mappings are parsed first)."""
    config = parse_defense(config)
    return DEFENSES[config.name][1](config)


def defense_label(config: AnyDefenseConfig) -> str:
    """A short label for result rows: the name, plus the settings that differ from the
    defaults (``"epic(fraction=0.3)"``)."""
    cls = DEFENSES[config.name][0]
    default = cls().model_dump()
    changed = {k: v for k, v in config.model_dump().items() if k != "name" and default[k] != v}
    if not changed:
        return config.name
    return f"{config.name}(" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + ")"
