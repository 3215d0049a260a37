"""The SPEC 4.1 goals in the engine (issue 13): checked before any training, targets chosen
by the goal's eligibility, bases by goal, and each goal's own metric in the result rows and
the summary; over- and underconfidence configs dump (hence key) exactly as before."""

from __future__ import annotations

import pytest
from experiment_helpers import one_thread, stored_poisons, stored_rows, tiny_config, tiny_raw

from cpoison.api.runner import run_experiment
from cpoison.data import load_dataset
from cpoison.engine.grid import expand_grid
from cpoison.errors import ConfigError
from cpoison.experiments.config import ModelSpec, validate_config

OURS = [{"name": "ours", "loss": "l3", "crafting": {"iterations": 5, "restarts": 1}}]


def _run(tmp_path, **changes):
    config = tiny_config(attacks=OURS, n_victims=1, scores=["hps"], **changes)
    with one_thread():
        summary = run_experiment(config, tmp_path / "out", store=tmp_path / "store",
                                 progress=False)
    return summary, stored_rows(tmp_path / "out")


def test_unequal_coverage_runs_with_bases_from_the_other_classes(tmp_path) -> None:
    summary, rows = _run(tmp_path, goal={"kind": "unequal-coverage"})
    (row,) = rows
    assert row["goal"] == "unequal-coverage" and row["subgroup_class"] == 3.0
    for key in ("goal_effect", "subgroup_target_coverage_victim", "subgroup_coverage_benign",
                "marginal_coverage_victim", "rest_coverage_victim", "coverage_gap_victim"):
        assert isinstance(row[key], float), key
    assert row["goal_effect"] == pytest.approx(
        row["subgroup_target_coverage_benign"] - row["subgroup_target_coverage_victim"])
    (poisons,) = stored_poisons(tmp_path / "store", "ours-l3-o1-hps")
    labels = load_dataset("digits", seed=0).train_labels
    assert (labels[poisons.ids] != 3).all()  # the goal's poison_class: other classes
    srow = summary["rows"][0]
    assert set(srow["goal_effect"]) == {"mean", "se"}
    assert "subgroup_coverage_victim" in srow


def test_unequal_coverage_subgroup_is_the_target_class(tmp_path) -> None:
    targets = {"target_class": None, "n_targets": 10}
    summary, rows = _run(tmp_path, goal={"kind": "unequal-coverage", "subgroup_class": 5},
                         targets=targets)
    assert rows[0]["target_class"] == 5 and summary["rows"][0]["target_classes"] == [5]


def test_add_label_takes_bases_of_the_label_and_targets_without_it(tmp_path) -> None:
    summary, rows = _run(tmp_path, goal={"kind": "add-label", "label": 8})
    (row,) = rows
    for key in ("goal_effect", "label_share_benign", "label_share_victim",
                "true_label_coverage_victim", "label_share_evaluation_victim"):
        assert isinstance(row[key], float), key
    (poisons,) = stored_poisons(tmp_path / "store", "ours-l3-o1-hps")
    labels = load_dataset("digits", seed=0).train_labels
    assert (labels[poisons.ids] == 8).all()


def test_remove_label_targets_hold_the_label(tmp_path) -> None:
    """At alpha 0.05 a few 3s' surrogate sets hold 8 (goal_eligibility): only those are
    targets (fewer than the 10 asked for). The victims' own sets need not hold it (here
    they do not: a limit of the goal on well-separated classes)."""
    summary, rows = _run(tmp_path, goal={"kind": "remove-label", "label": 8}, alpha=0.05)
    (row,) = rows
    assert 1 <= row["n_targets"] < 10
    assert row["goal_effect"] == pytest.approx(
        row["label_share_benign"] - row["label_share_victim"])
    (poisons,) = stored_poisons(tmp_path / "store", "ours-l3-o1-hps")
    labels = load_dataset("digits", seed=0).train_labels
    assert (labels[poisons.ids] == 3).all()  # remove-label keeps target-class bases


@pytest.mark.parametrize(("goal", "message"), [
    ({"kind": "remove-label", "label": 10}, r"goal\.label 10 is not a class"),
    ({"kind": "add-label", "label": 3}, "goal.label 3 is the targets' own class"),
    ({"kind": "unequal-coverage", "subgroup_class": 4}, "differs from the target class 3"),
    ({"kind": "unequal-coverage", "subgroup_class": 12}, "goal.subgroup_class 12"),
])
def test_goals_are_checked_before_any_training(goal, message, tmp_path) -> None:
    with pytest.raises(ConfigError, match=message), one_thread():
        run_experiment(tiny_config(goal=goal), tmp_path / "out", store=tmp_path / "store",
                       progress=False)
    assert not (tmp_path / "store" / "models").exists()


def test_poison_class_defaults_by_goal_and_stays_explicit() -> None:
    assert tiny_config().poison_class == "target"
    assert tiny_config(goal={"kind": "unequal-coverage"}).poison_class == "other"
    assert tiny_config(goal={"kind": "add-label", "label": 1}).poison_class == "labels-to-add"
    assert tiny_config(goal={"kind": "remove-label", "label": 1}).poison_class == "target"
    explicit = tiny_config(goal={"kind": "unequal-coverage"}, poison_class="random")
    assert explicit.poison_class == "random"
    grid = tiny_config(grid={"goal.kind": ["overconfidence", "unequal-coverage"]})
    assert [p.config.poison_class for p in expand_grid(grid)] == ["target", "other"]


def test_existing_configs_dump_as_before() -> None:
    """No new key in the dump of an over/underconfidence config's crafting fields or of a
    model spec without weights: their keys (and cached artifacts) are unchanged."""
    from cpoison.engine.identity import crafting_fields

    fields = crafting_fields(tiny_config(surrogate="mlp"))
    assert "data" not in fields and "goal_protocol" not in fields
    assert fields["surrogate"] == {"arch": "mlp", "kwargs": None}
    assert fields["poison_class"] == "target"
    assert ModelSpec(arch="mlp").model_dump() == {"arch": "mlp", "kwargs": None}
    assert "goal_protocol" in crafting_fields(tiny_config(goal={"kind": "unequal-coverage"}))


def test_user_specs_and_data_in_configs(tmp_path) -> None:
    spec = ModelSpec(arch="user_models:small_mlp", weights="w.safetensors")
    assert spec.model_dump()["weights"] == "w.safetensors"
    with pytest.raises(ConfigError, match="takes no kwargs"):
        validate_config(tiny_raw(victim={"arch": "pkg.mod:f", "kwargs": {"width": 2}}))
    with pytest.raises(ConfigError, match=r"\.safetensors files only"):
        validate_config(tiny_raw(victim={"arch": "mlp", "weights": "m.pt"}))
    with pytest.raises(ConfigError, match="must be 'package.module:function'"):
        validate_config(tiny_raw(victim="pkg.mod:"))
    with pytest.raises(ConfigError, match="applies to a dataset given as a path"):
        validate_config(tiny_raw(data={"test_fraction": 0.3}))
    user = validate_config(tiny_raw(dataset=str(tmp_path / "x.npz")))
    assert user.dataset.endswith("x.npz") and user.preset == "cpu"  # given: kept
    raw = tiny_raw(dataset="./my_images")
    raw.pop("preset")
    assert validate_config(raw).preset == "audit"
    assert validate_config(tiny_raw()).dataset == "digits"
