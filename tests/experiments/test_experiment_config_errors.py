"""Config validation (SPEC 10): every bad value raises one ConfigError naming the field;
an output folder holding another config's results is refused."""

from __future__ import annotations

import pytest
import yaml
from experiment_helpers import one_thread, tiny_config, tiny_raw

from cpoison.api.runner import run_experiment
from cpoison.errors import ConfigError
from cpoison.experiments.config import load_config, validate_config


def test_tiny_config_is_valid():
    config = tiny_config()
    assert config.eps == pytest.approx(16 / 255)  # '16/255' parsed as a fraction
    assert config.labels() == ["ours-l3-o1-hps", "randun"]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("alpha", 1.5, "'alpha'"),
        ("alpha", 0, "'alpha'"),
        ("budget", 0, "'budget'"),
        ("budget", 1.5, "'budget'"),
        ("scores", ["hps", "nonsense"], "'scores'"),
        ("attacks", [{"name": "nonsense"}], "'attacks.0'"),
        ("attacks", [], "'attacks'"),
        ("eps", "16/0", "'eps'"),
        ("eps", "sixteen", "'eps'"),
        ("n_victims", 0, "'n_victims'"),
        ("setting", "grey-box", "'setting'"),
        ("typo_field", 1, "'typo_field'"),
    ],
)
def test_invalid_value_names_the_field(field, value, named):
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_raw(**{field: value}))
    message = str(err.value)
    assert f"invalid value for {named}" in message
    assert "\n" not in message


def test_nested_invalid_values_name_the_dotted_field():
    raw = tiny_raw(targets={"target_class": -1})
    with pytest.raises(ConfigError, match="'targets.target_class'"):
        validate_config(raw)
    raw = tiny_raw()
    raw["attacks"][0]["crafting"]["iterations"] = 0
    with pytest.raises(ConfigError, match="'attacks.0.crafting.iterations'"):
        validate_config(raw)


def test_duplicate_attack_labels_are_refused():
    with pytest.raises(ConfigError, match="unique"):
        validate_config(tiny_raw(attacks=[{"name": "randun"}, {"name": "randun"}]))


def test_load_config_applies_overrides_and_names_the_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw()))
    config = load_config(path, ["n_victims=1", "attacks.0.crafting.iterations=3"])
    assert config.n_victims == 1
    assert config.attacks[0].crafting.iterations == 3
    with pytest.raises(ConfigError, match=rf"{path.name}: invalid value for 'alpha'"):
        load_config(path, ["alpha=1.5"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_budget_larger_than_the_target_class_pool_is_refused(reference_run, tmp_path):
    """0.5 x 675 victim images = 338 poisons, but the attacker holds about 68 images of the
    target class: ConfigError naming the budget, before any model trains or --out is
    claimed."""
    with pytest.raises(ConfigError, match=r"budget 0\.5 needs 338 poisons"), one_thread():
        run_experiment(tiny_config(budget=0.5), tmp_path / "out",
                       store=tmp_path / "empty-cache", progress=False)
    assert not any((tmp_path / "empty-cache").rglob("*.safetensors"))
    assert not (tmp_path / "out" / "config.resolved.yaml").exists()


def test_labels_to_add_outside_the_dataset_are_refused(reference_run, tmp_path):
    """goal.add_labels naming a class the dataset lacks: one ConfigError naming the field,
    raised before any model is trained (digits has classes 0..9)."""
    config = tiny_config(goal={"kind": "underconfidence", "add_labels": [2, 12]})
    with pytest.raises(ConfigError, match=r"goal.add_labels \[12\] are not classes of digits"):
        run_experiment(config, tmp_path / "out", store=tmp_path / "empty-cache",
                       progress=False)
    assert not any((tmp_path / "empty-cache").rglob("*.safetensors"))
