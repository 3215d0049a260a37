"""Defenses in the engine (SPEC 7, 11; issue 11 items 1 and 4): a grid over defenses runs;
defense ``none`` is the engine without defenses, number for number; both victims of a pair
train under the same defense and its settings are part of their keys and of the cell's,
never of the surrogate's or the poisons'; a defense's record does not depend on whether its
models came from the store; bad defense input fails before any training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from experiment_helpers import comparable, one_thread, stored_rows, tiny_config

from cpoison.api.runner import run_experiment
from cpoison.defenses import build_defense
from cpoison.engine import identity, keys
from cpoison.engine.artifacts import ArtifactStore
from cpoison.engine.grid import expand_grid
from cpoison.engine.runtime import RunOptions, workspace_for
from cpoison.errors import ConfigError
from cpoison.experiments import protocol
from cpoison.experiments.report import table

DEFENSES = ["none", "maxup", "deep_knn", {"name": "rps", "k_t": 3, "k_c": 3}]
NEW_FIELDS = {"defense", "poisons_removed_share", "clean_removed_share",
              "clean_removed_share_benign", "cell", "point", "_key"}


def defended_config(**changes):
    """The tiny config with one victim, RandUn only (no crafting) and RSCP as well."""
    raw = dict(n_victims=1, attacks=[{"name": "randun"}], scores=["hps", "aps", "rscp"])
    raw.update(changes)
    return tiny_config(**raw)


def run(config, out: Path, store: Path):
    with one_thread():
        return run_experiment(config, out, store=store, progress=False)


@pytest.fixture(scope="module")
def defense_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("defense-grid")
    summary = run(defended_config(grid={"defense": DEFENSES}), root / "out", root / "store")
    return root, summary


def _rows(out: Path, defense: str) -> list[dict]:
    return [r for r in stored_rows(out) if r["defense"] == defense]


def test_a_defense_grid_runs_every_defense(defense_grid):
    root, summary = defense_grid
    # 1 surrogate; none: benign + poisoned; maxup: both again (its key holds the defense);
    # deep_knn: only its 2 models on the filtered sets (its feature models are the none
    # victims, from the store); rps: 3 + 3 partition models (the poisons reach all three)
    assert summary["trained_models"] == 1 + 2 + 2 + 2 + 3 + 3
    rows = summary["rows"]
    assert [(r["defense"], r["score"]) for r in rows] == [
        (d, s) for d in ("none", "maxup", "deep_knn", "rps(k_c=3,k_t=3)")
        for s in ("hps", "aps", "rscp")]
    for r in rows:
        assert r["n_victims"] == 1
        if r["defense"] == "rps(k_c=3,k_t=3)" and r["score"] == "rscp":
            continue
        assert 0.0 <= r["accuracy_victim"]["mean"] <= 1.0, r["defense"]
        assert r["reduction_ratio"]["mean"] is not None
    # filters and training-time defenses report the shares removed; none removes nothing
    stored = stored_rows(root / "out")
    for row in stored:
        assert 0.0 <= row["clean_removed_share"] <= 1.0
        assert 0.0 <= row["poisons_removed_share"] <= 1.0
    assert {r["clean_removed_share"] for r in _rows(root / "out", "none")} == {0.0}
    knn = _rows(root / "out", "deep_knn")[0]
    assert knn["defense_record"]["removed"] == (knn["defense_record"]["poisons_removed"]
                                                + knn["defense_record"]["clean_removed"])
    assert knn["defense_record"]["filter"]["k"] >= 1
    text = (root / "out" / "report.md").read_text()
    assert "| defense | attack | score |" in text
    assert "| rps(k_c=3,k_t=3) | randun | rscp (unsupported) |" in text


def test_rscp_under_rps_is_reported_missing_and_the_certificate_is_in_the_row(defense_grid):
    root, summary = defense_grid
    rps = {r["score"]: r for r in _rows(root / "out", "rps(k_c=3,k_t=3)")}
    rscp = rps["rscp"]
    assert rscp["unsupported"] is True and "RSCP" in rscp["unsupported_reason"]
    assert "reduction_ratio" not in rscp and "benign_set_size" not in rscp
    assert rps["hps"].get("unsupported") is None and "reduction_ratio" in rps["hps"]
    summary_rscp = [r for r in summary["rows"]
                    if r["defense"].startswith("rps") and r["score"] == "rscp"][0]
    assert summary_rscp["unsupported"] is True and "reduction_ratio" not in summary_rscp
    # RPS's certificate of the targets' sets, for the non-randomized score (HPS) only
    hps = rps["hps"]
    assert 0 <= hps["certified_train_radius_benign"] <= 3
    assert 0.0 <= hps["certified_against_poisons_benign"] <= 1.0
    assert "certified_train_radius_benign" not in rps["aps"]  # randomized: no certificate
    assert hps["defense_record"]["rps_k_t"] == 3
    assert sum(hps["defense_record"]["rps_partition_sizes"]) == (
        hps["defense_record"]["clean_total"] + hps["defense_record"]["poisons_total"])


def test_defense_none_gives_the_rows_of_a_run_without_defenses(defense_grid, reference_run):
    """The reference run (no defense field; other attacks, two victims, no RSCP, its own
    fresh store) and the grid's ``none`` point share RandUn's victim 0 cell: the same
    numbers, computed independently."""
    root, _ = defense_grid
    assert "defense" not in tiny_config().model_dump(exclude_defaults=True)
    ours = {r["score"]: r for r in _rows(root / "out", "none")}
    theirs = {r["score"]: r for r in stored_rows(reference_run.out)
              if r["attack"] == "randun" and r["victim"] == 0}
    assert set(theirs) == {"hps", "aps"}
    for score, ref in theirs.items():
        mine = {k: v for k, v in ours[score].items() if k not in NEW_FIELDS}
        assert comparable(mine) == comparable({k: v for k, v in ref.items()
                                               if k not in NEW_FIELDS}), score


def _keys(config):
    ws = workspace_for(RunOptions(store="unused"), config)
    return {"surrogate": identity.surrogate_key(ws, config, 0),
            "poisons": identity.poisons_key(ws, config, 0, 0),
            "benign": identity.benign_key(ws, config, 0, 0),
            "cell": identity.cell_key(ws, config, 0, 0, 0)}


def test_defense_settings_key_the_victims_and_cells_not_the_surrogate_or_poisons():
    none, maxup = _keys(defended_config()), _keys(defended_config(defense="maxup"))
    epic2 = _keys(defended_config(defense={"name": "epic", "fraction": 0.2}))
    epic3 = _keys(defended_config(defense={"name": "epic", "fraction": 0.3}))
    for a, b in [(none, maxup), (maxup, epic2), (epic2, epic3)]:
        assert a["surrogate"] == b["surrogate"] and a["poisons"] == b["poisons"]
        assert a["benign"] != b["benign"] and a["cell"] != b["cell"]
    # a default setting spelt out is the same defense
    assert epic2 == _keys(defended_config(defense="epic"))
    # no defense: the benign key is the plain model's key, as before defenses existed
    config = defended_config()
    ws = workspace_for(RunOptions(store="unused"), config)
    seed, _ = protocol.victim_seeds(config, 0, 0)
    assert none["benign"] == ws.model_key(protocol.benign_data(ws), seed, config.victim)


def test_no_defense_leaves_the_cell_key_as_before_defenses():
    parts = dict(poisons="p", benign="b", victim={"arch": "mlp"}, evaluation={"alpha": 0.1})
    before = keys.digest(kind="cell", version=keys.EVALUATION_VERSION, **parts)
    assert keys.cell_key(**parts) == keys.cell_key(**parts, defense=None) == before
    assert keys.cell_key(**parts, defense={"name": "maxup"}) != before


def test_benign_and_poisoned_victims_train_under_the_same_defense(defense_grid):
    root, _ = defense_grid
    config = defended_config(defense="maxup")
    ws = workspace_for(RunOptions(store=str(root / "store")), config)
    seed, _ = protocol.victim_seeds(config, 0, 0)
    store = ArtifactStore(root / "store")
    poisons = store.load_poisons(identity.poisons_key(ws, config, 0, 0))
    benign = protocol.benign_data(ws)
    poisoned = benign.with_poisons(poisons.ids, poisons.delta, inject=poisons.inject)
    dump = config.defense.model_dump(mode="json")
    for data in (benign, poisoned):
        key = ws.model_key(data, seed, config.victim, defense=config.defense)
        meta = store.load_model_meta(key, ws.build(seed, config.victim))
        assert meta is not None and meta["defense"] == dump and meta["seed"] == seed
    assert identity.benign_key(ws, config, 0, 0) == ws.model_key(
        benign, seed, config.victim, defense=config.defense)


def test_a_filter_record_survives_a_rerun_from_the_store(defense_grid, tmp_path):
    """Cells gone, models stored: the filter runs again on the stored feature model and
    gives the same rows (removed ids, shares, figures) without training anything."""
    root, _ = defense_grid
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    shutil.rmtree(store / "cells")
    config = defended_config(defense="deep_knn")
    again = run(config, tmp_path / "out", store)
    assert again["trained_models"] == 0
    before = _rows(root / "out", "deep_knn")
    after = stored_rows(tmp_path / "out")
    drop = {"cell", "point"}
    assert [comparable({k: v for k, v in r.items() if k not in drop}) for r in after] == [
        comparable({k: v for k, v in r.items() if k not in drop}) for r in before]
    assert list((store / "victims").glob("*.json"))


def test_a_training_hook_record_is_restored_with_its_model(tmp_path):
    """EPIC's dropped ids and record are saved with the model and put back on the hooks
    when the model comes from the store."""
    config = defended_config(defense={"name": "epic", "every": 2, "fraction": 0.2})
    ws = workspace_for(RunOptions(store=str(tmp_path / "store"), progress=False), config)
    defense = build_defense(config.defense)
    data = ws.trainset(ws.split.victim_train[:300])
    with one_thread():
        first = defense.training_hooks()
        model = ws.train(data, 7, hooks=first, defense=config.defense)
        second = defense.training_hooks()
        again = ws.train(data, 7, hooks=second, defense=config.defense)
    assert first.record["epic_dropped"] > 0 and first.removed.numel() > 0
    assert second.record == first.record
    assert torch.equal(second.removed, first.removed)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))
    with pytest.raises(ValueError, match="needs the defense"):
        ws.train(data, 7, hooks=defense.training_hooks())


@pytest.mark.parametrize(("change", "named"), [
    ({"defense": "nonsense"}, "unknown defense 'nonsense'"),
    ({"grid": {"defense": ["none", "nonsense"]}}, "grid cell {defense='nonsense'}"),
    ({"defense": {"name": "maxup", "m": 0}}, "'m'"),
    ({"defense": {"name": "epic", "fraction": 1.5}}, "'fraction'"),
])
def test_bad_defense_input_is_one_config_error_before_training(change, named, tmp_path):
    with pytest.raises(ConfigError, match="defense") as err:
        run(defended_config(**change), tmp_path / "out", tmp_path / "store")
    assert named in str(err.value)
    assert not (tmp_path / "store" / "models").exists()


def test_rps_k_t_above_the_training_set_is_refused_before_training(tmp_path):
    config = defended_config(grid={"defense": ["none", {"name": "rps", "k_t": 100000}]})
    with pytest.raises(ConfigError) as err:
        run(config, tmp_path / "out", tmp_path / "store")
    message = str(err.value)
    assert "k_t = 100000" in message and "grid cell" in message
    assert not (tmp_path / "store" / "models").exists()
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_the_table_shows_a_defense_column_only_with_a_defense():
    row = {"attack": "a", "score": "hps", "defense": "none", "point": {}}
    assert "defense" not in table([row])
    assert "| defense |" in table([{**row, "defense": "epic"}])
    assert "| defense |" in table([row], ["defense"])


def test_a_grid_can_vary_a_defense_setting():
    points = expand_grid(defended_config(defense="epic", grid={"defense.fraction": [0.1, 0.3]}))
    assert [p.config.defense.fraction for p in points] == [0.1, 0.3]
    assert {p.config.defense.name for p in points} == {"epic"}
    with pytest.raises(ConfigError, match=r"grid cell \{defense.fraction=0\}"):
        expand_grid(defended_config(defense="epic", grid={"defense.fraction": [0]}))


def test_head_refit_evaluates_the_stored_undefended_victims(defense_grid, tmp_path):
    """The head refit trains nothing: its victims are the ``none`` victims from the store,
    with a head refitted on half of the clean calibration set; RSCP runs on them too."""
    root, _ = defense_grid
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    summary = run(defended_config(defense={"name": "head_refit", "folds": 2}),
                  tmp_path / "out", store)
    assert summary["trained_models"] == 0
    rows = summary["rows"]
    assert [(r["defense"], r["score"]) for r in rows] == [
        ("head_refit(folds=2)", s) for s in ("hps", "aps", "rscp")]
    for r in rows:
        assert r.get("unsupported") is None
        assert 0.0 <= r["accuracy_victim"]["mean"] <= 1.0
        assert r["reduction_ratio"]["mean"] is not None
    # the refitted victims are other classifiers than the stored ones
    none = [r for r in stored_rows(root / "out") if r["defense"] == "none"]
    mine = stored_rows(tmp_path / "out")
    assert [r["accuracy_victim"] for r in mine] != [r["accuracy_victim"] for r in none]
