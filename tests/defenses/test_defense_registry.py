"""Defense configs (SPEC 7, SPEC 10): names, defaults, one clear ConfigError per mistake."""

from __future__ import annotations

import pydantic
import pytest

from cpoison.defenses import (
    DefenseConfig,
    available_defenses,
    build_defense,
    defense_label,
    parse_defense,
)
from cpoison.defenses.none import NoDefenseConfig
from cpoison.defenses.rps import RPS
from cpoison.errors import ConfigError


def test_every_name_builds_with_defaults_and_none_is_valid() -> None:
    names = available_defenses()
    assert names[0] == "none"
    assert {"maxup", "adversarial_poisoning", "epic", "deep_knn", "spectral_signatures",
            "activation_clustering", "rps"} <= set(names)
    for name in names:
        defense = build_defense(name)
        assert defense.name == name
        assert defense.config == parse_defense({"name": name})
    assert build_defense("none").training_hooks() is None


def test_published_defaults() -> None:
    assert parse_defense("maxup").m == 4
    adv = parse_defense("adversarial_poisoning")
    assert adv.steps == 5 and adv.eps == pytest.approx(16 / 255)
    epic = parse_defense("epic")
    assert epic.every == 5 and 0.1 <= epic.fraction <= 0.3
    assert parse_defense("spectral_signatures").overestimate == 1.5
    assert parse_defense("deep_knn").k_factor == 2.0
    ac = parse_defense("activation_clustering")
    assert ac.dims == 10 and ac.size_threshold == 0.35


@pytest.mark.parametrize(("value", "fragment"), [
    ("mixup", "unknown defense 'mixup'; valid defenses are: none, maxup"),
    ({"name": "maxup", "m": 0}, "defense 'maxup': invalid value for 'm' (0)"),
    ({"name": "epic", "fraction": 0.0}, "defense 'epic': invalid value for 'fraction' (0.0)"),
    ({"name": "epic", "fraction": 1.5}, "defense 'epic': invalid value for 'fraction' (1.5)"),
    ({"name": "epic", "every": 0}, "invalid value for 'every'"),
    ({"name": "rps", "k_t": 0}, "defense 'rps': invalid value for 'k_t' (0)"),
    ({"name": "spectral_signatures", "epsilon": 2}, "invalid value for 'epsilon' (2)"),
    ({"name": "maxup", "mm": 4}, "invalid value for 'mm'"),
    (42, "defense must be a name or a mapping"),
])
def test_bad_input_gives_one_clear_message(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_defense(value)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_k_t_larger_than_training_set_is_one_clear_message() -> None:
    defense = build_defense({"name": "rps", "k_t": 50, "k_c": 2})
    with pytest.raises(ConfigError, match=r"k_t = 50 training partitions need at least 50 "
                                          r"training examples, got 40"):
        defense.check_sizes(40, 100)
    with pytest.raises(ConfigError, match=r"k_c = 2 calibration partitions"):
        build_defense({"name": "rps", "k_t": 1, "k_c": 2}).check_sizes(40, 1)
    with pytest.raises(ConfigError, match=r"deep_knn: k = 40 neighbours"):
        build_defense({"name": "deep_knn", "k": 40}).check_sizes(40, 10)


def test_configs_are_frozen_and_usable_as_a_pydantic_field() -> None:
    class Experiment(pydantic.BaseModel):
        defense: DefenseConfig = pydantic.Field(default_factory=NoDefenseConfig)

    assert Experiment().defense.name == "none"
    assert Experiment(defense="epic").defense.fraction == 0.2
    assert Experiment(defense={"name": "rps", "k_t": 3}).defense.k_t == 3
    with pytest.raises(pydantic.ValidationError):
        Experiment(defense="mixup")
    cfg = parse_defense("maxup")
    with pytest.raises(pydantic.ValidationError):
        cfg.m = 2  # type: ignore[misc]
    assert isinstance(build_defense(cfg), object)
    assert not RPS.supports_rscp


def test_labels_name_the_changed_settings() -> None:
    assert defense_label(parse_defense("epic")) == "epic"
    assert defense_label(parse_defense({"name": "epic", "fraction": 0.3})) == \
        "epic(fraction=0.3)"
