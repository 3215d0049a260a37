"""The transfer setting through the engine (SPEC 2, 3.5, 11; issue 10): a grid run on digits
completes with the same cells, rows and report; the extractor and the clean features are
computed once and reused; keys move with what determines them; the second order records
its residual; full-CP cells have rows; bad input gets one clear message each."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from cpoison.api.runner import run_experiment
from cpoison.engine import identity
from cpoison.engine.runtime import RunOptions, clear_caches, workspace_for
from cpoison.errors import ConfigError
from cpoison.experiments import transfer_protocol, workspace
from cpoison.experiments.config import validate_config
from cpoison.experiments.settings import setting_for
from cpoison.transfer import HeadConvergenceError, NoFeatureLayerError, SubsetTooLargeError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from experiment_helpers import one_thread, stored_rows  # noqa: E402

RAW: dict[str, Any] = {
    "name": "transfer-tiny", "dataset": "digits", "preset": "cpu", "seed": 0, "alpha": 0.1,
    "scores": ["hps", "aps"], "goal": {"kind": "overconfidence"},
    "targets": {"target_class": 3, "n_targets": 8}, "budget": 0.03, "eps": "16/255",
    "n_victims": 2, "n_repeats": 1,
    "transfer": {"public_fraction": 0.2, "extractor": {"arch": "mlp", "kwargs": {"hidden": 16}}},
    "attacks": [
        {"name": "ours", "crafting": {"iterations": 3, "restarts": 1, "augment": False}},
        {"name": "ours", "order": 2, "label": "second", "damping": 0.01,
         "crafting": {"iterations": 3, "restarts": 1, "augment": False}},
        {"name": "randun"},
    ],
}


def raw(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(RAW)
    for key, value in changes.items():
        node = out
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


class Counts:
    """How often the extractor was trained and the clean features computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.extractor = 0
        self.features = 0
        train, extract = workspace.train_model, transfer_protocol.extract_features

        def counting_train(model, data, recipe, seed, *args, **kwargs):  # type: ignore[no-untyped-def]
            if "extractor" in args or kwargs.get("desc") == "extractor":
                self.extractor += 1
            return train(model, data, recipe, seed, *args, **kwargs)

        def counting_extract(model, images, *args, **kwargs):  # type: ignore[no-untyped-def]
            if images.shape[0] > 100:  # the clean features, not the poisons'
                self.features += 1
            return extract(model, images, *args, **kwargs)

        monkeypatch.setattr(workspace, "train_model", counting_train)
        monkeypatch.setattr(transfer_protocol, "extract_features", counting_extract)


def run(config: Any, out: Path, store: Path) -> dict[str, Any]:
    with one_thread():
        return run_experiment(config, out, store=store, progress=False)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("transfer")
    clear_caches()
    mp = pytest.MonkeyPatch()
    counts = Counts(mp)
    try:
        config = validate_config(raw(grid={"transfer.head.lam": [1.0, 4.0]}))
        summary = run(config, root / "out", root / "store")
    finally:
        mp.undo()
    summary["_counts"] = (counts.extractor, counts.features)
    return root, summary


def test_transfer_grid_runs_through_the_engine(grid_run: tuple[Path, dict[str, Any]]) -> None:
    root, summary = grid_run
    rows = summary["rows"]
    assert [(r["point"]["transfer.head.lam"], r["attack"], r["score"]) for r in rows] == [
        (lam, a, s) for lam in (1.0, 4.0) for a in ("ours-l3-o1-hps", "second", "randun")
        for s in ("hps", "aps")]
    assert all(r["n_victims"] == 2 and r["n_repeats"] == 1 for r in rows)
    stored = stored_rows(root / "out")
    assert len(stored) == 2 * 3 * 2 * 2
    assert all(r["transfer"] and r["conformal"] == "split" for r in stored)
    assert {r["head_lam"] for r in stored} == {1.0, 4.0}
    assert all(0 <= r["coverage_victim"] <= 1 and r["head_grad_norm_victim"] <= 1e-9
               for r in stored)
    assert "| transfer.head.lam | attack | score |" in (root / "out" / "report.md").read_text()
    split = json.loads(next((root / "out" / "splits").glob("*.json")).read_text())
    public = set(split["public"])
    others = set(split["attacker_train"] + split["attacker_cal"] + split["victim_train"]
                 + split["victim_cal"])
    assert public and not public & others


def test_extractor_and_features_once_poisons_shared_by_head_settings(
        grid_run: tuple[Path, dict[str, Any]]) -> None:
    root, summary = grid_run
    # one extractor training; one feature computation = two batched calls (the attacker
    # and victim roles of the pool, the test set)
    assert summary["_counts"] == (1, 2)
    # extractor + attacker head + 2 benign heads per lam + 2 x 3 poisoned heads per lam
    assert summary["trained_models"] == 1 + 1 + 2 * (2 + 6)
    # the victims' head settings do not shape crafting: one poison set per attack
    assert len(list((root / "store" / "poisons").glob("*.json"))) == 3
    assert len(list((root / "store" / "features").glob("*.safetensors"))) == 1


def test_a_rerun_reuses_extractor_features_and_cells(grid_run: tuple[Path, dict[str, Any]],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    root, first = grid_run
    clear_caches()  # a fresh process: only the store remains
    counts = Counts(monkeypatch)
    config = validate_config(raw(grid={"transfer.head.lam": [1.0, 4.0]}))
    again = run(config, tmp_path / "out", root / "store")
    assert (counts.extractor, counts.features, again["trained_models"]) == (0, 0, 0)
    assert [r["reduction_ratio"] for r in again["rows"]] == [
        r["reduction_ratio"] for r in first["rows"]]


def test_second_order_records_the_exact_hessian_residual(
        grid_run: tuple[Path, dict[str, Any]]) -> None:
    root, _ = grid_run
    stored = stored_rows(root / "out")
    second = [r for r in stored if r["attack"] == "second"]
    assert second and all(0 <= r["cg_residual"] < 1e-8 for r in second)
    assert all(r["cg_residual"] is None for r in stored if r["attack"] == "randun")
    metas = [json.loads(p.read_text())["meta"] for p in (root / "store" / "poisons").glob(
        "*.json")]
    exact = [m for m in metas if m.get("hessian_exact")]
    assert len(exact) == 1 and exact[0]["cg_residual"] < 1e-8


def keys_of(raw_config: dict[str, Any], store: Path) -> dict[str, str]:
    config = validate_config(raw_config)
    ws = workspace_for(RunOptions(store=str(store), progress=False), config)
    return {
        "extractor": setting_for(config).extractor_key(ws, config),
        "surrogate": identity.surrogate_key(ws, config, 0),
        "poisons": identity.poisons_key(ws, config, 0, 0),
        "benign": identity.benign_key(ws, config, 0, 0),
        "cell": identity.cell_key(ws, config, 0, 0, 0),
    }


def test_keys_follow_what_determines_them(tmp_path: Path) -> None:
    base = keys_of(raw(), tmp_path)
    assert keys_of(raw(), tmp_path) == base
    for change in ({"transfer__public_fraction": 0.25},
                   {"transfer__extractor": {"arch": "mlp", "kwargs": {"hidden": 8}}}):
        moved = keys_of(raw(**change), tmp_path)
        assert all(moved[k] != base[k] for k in base), change
    for change in ({"transfer__head": {"lam": 2.0}}, {"transfer__victim_subsample": 0.8}):
        moved = keys_of(raw(**change), tmp_path)
        assert [moved[k] == base[k] for k in base] == [True, True, True, False, False], change
    full = {"conformal": "full", "full_cp": {"subset_size": 100, "eval_size": 20}}
    full_base = keys_of(raw(transfer={**RAW["transfer"], **full}), tmp_path)
    for change, poisons_move in (({"method": "exact"}, False), ({"eval_size": 30}, False),
                                 ({"subset_size": 120}, True)):
        moved = keys_of(raw(transfer={**RAW["transfer"], **full, "full_cp": {
            **full["full_cp"], **change}}), tmp_path)
        assert (moved["poisons"] != full_base["poisons"]) == poisons_move, change
        assert moved["cell"] != full_base["cell"] and moved["extractor"] == base["extractor"]
    attacker = keys_of(raw(transfer__surrogate_head={"lam": 2.0}), tmp_path)
    assert [attacker[k] == base[k] for k in base] == [True, False, False, True, False]
    # from-scratch configs dump (and hash) exactly as before: no transfer key at all
    plain = validate_config({k: v for k, v in RAW.items() if k != "transfer"})
    assert "transfer" not in plain.model_dump(mode="json")
    assert "transfer" not in identity.crafting_fields(plain)


def test_full_cp_cells_have_rows(tmp_path: Path) -> None:
    clear_caches()
    config = validate_config(raw(
        scores=["hps", "raps"], n_victims=1,
        attacks=[{"name": "ours", "implicit_steps": 2}, {"name": "randga"}],
        transfer={**RAW["transfer"], "conformal": "full",
                  "full_cp": {"method": "exact", "subset_size": 120, "eval_size": 40}}))
    summary = run(config, tmp_path / "out", tmp_path / "store")
    stored = stored_rows(tmp_path / "out")
    assert len(stored) == 2 * 2
    for r in stored:
        assert r["conformal"] == "full" and r["full_cp_method"] == "exact"
        assert r["full_cp_eval_size"] == 40 and r["n_targets"] == 8
        assert r["full_cp_n_train_benign"] == 120
        assert r["full_cp_n_train_victim"] == 120 + r["n_poisons"]
        assert 0 <= r["coverage_benign"] <= 1 and not math.isnan(r["reduction_ratio"])
    assert {r["attack"] for r in summary["rows"]} == {"ours-l3-implicit-hps", "randga"}
    ours = [r for r in stored if r["attack"] == "ours-l3-implicit-hps"]
    assert all(r["order"] == 2 and 0 <= r["cg_residual"] < 1e-8 for r in ours)


def test_implicit_attack_needs_the_transfer_setting(tmp_path: Path) -> None:
    plain = {k: v for k, v in RAW.items() if k != "transfer"}
    config = validate_config({**plain, "n_victims": 1,
                              "attacks": [{"name": "ours", "implicit_steps": 2}]})
    with pytest.raises(ConfigError, match="implicit_steps needs the transfer setting"):
        run(config, tmp_path / "out", tmp_path / "store")
    # an attack config without the option dumps (and keys) as before
    assert "implicit_steps" not in validate_config(plain).attacks[0].model_dump()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="victim: the transfer setting has no victim"):
        validate_config({**raw(), "victim": "mlp"})
    with pytest.raises(ConfigError, match="needs the convex head"):
        validate_config(raw(transfer={"conformal": "full", "head": {"kind": "mlp"}}))
    with pytest.raises(ConfigError, match="RSCP has no full-CP form"):
        validate_config(raw(scores=["hps", "rscp"], transfer={"conformal": "full"}))
    assert validate_config(raw(defense="maxup")).defense.name == "maxup"  # runs (split CP)


def test_full_cp_subset_larger_than_the_data_fails_before_training(tmp_path: Path) -> None:
    config = validate_config(raw(transfer={**RAW["transfer"], "conformal": "full",
                                           "full_cp": {"subset_size": 100000}}))
    with pytest.raises(SubsetTooLargeError, match="subset_size 100000 is larger than a "
                       "victim's training data"):
        run(config, tmp_path / "out", tmp_path / "store")
    assert not (tmp_path / "store" / "models").exists()


def test_extractor_without_feature_layer_fails_before_training(tmp_path: Path) -> None:
    module = tmp_path / "nofeat.py"
    module.write_text(
        "import torch.nn as nn\n"
        "def build(in_channels, num_classes, image_size):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, num_classes, 3), "
        "nn.AdaptiveAvgPool2d(1), nn.Flatten())\n")
    config = validate_config(raw(transfer={**RAW["transfer"],
                                           "extractor": f"{module}:build"}))
    with pytest.raises(NoFeatureLayerError, match="transfer.extractor .* feature"):
        run(config, tmp_path / "out", tmp_path / "store")


def test_head_that_does_not_converge_says_so_with_the_gradient_norm(tmp_path: Path) -> None:
    clear_caches()
    config = validate_config(raw(n_victims=1, attacks=[{"name": "randun"}],
                                 transfer={**RAW["transfer"],
                                           "head": {"max_iter": 1, "tol": 1e-14}}))
    with pytest.raises(HeadConvergenceError,
                       match=r"benign head r0 v0 .*per-point gradient norm .* > tolerance"):
        run(config, tmp_path / "out", tmp_path / "store")


def test_white_box_mlp_head_and_rscp_through_the_extractor(tmp_path: Path) -> None:
    """White-box replacement poisons, the optional MLP head and RSCP (smoothing the
    extractor + head as one module) in the transfer setting."""
    clear_caches()
    config = validate_config(raw(
        setting="white-box", scores=["hps", "rscp"], n_victims=1,
        attacks=[RAW["attacks"][0], {"name": "randun"}],
        transfer={**RAW["transfer"], "head": {"kind": "mlp", "hidden": 8, "lam": 1.0},
                  "surrogate_head": {"kind": "mlp", "hidden": 8}}))
    run(config, tmp_path / "out", tmp_path / "store")
    stored = stored_rows(tmp_path / "out")
    split = json.loads(next((tmp_path / "out" / "splits").glob("*.json")).read_text())
    assert [(r["attack"], r["score"]) for r in stored] == [
        ("ours-l3-o1-hps", "hps"), ("ours-l3-o1-hps", "rscp"), ("randun", "hps"),
        ("randun", "rscp")]
    for r in stored:
        assert r["setting"] == "white-box" and r["head"] == "mlp"
        # replacement: the victim's training set keeps its size
        assert r["victim_train_size"] == round(0.9 * len(split["victim_train"]))
        assert 0 <= r["coverage_victim"] <= 1 and r["benign_set_size"] >= 0
