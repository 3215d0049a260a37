"""Defenses in the transfer setting: every defense that makes sense on a convex head over
frozen features (filters, EPIC, MaxUp, adversarial poisoning, RPS, head refit) runs through
the same seam as from scratch; one that does not, or any defense under full CP, is refused
with one message before anything trains; defense ``none`` is the transfer setting without
defenses, number for number."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from cpoison.api.runner import run_experiment
from cpoison.defenses import DEFENSES
from cpoison.defenses.maxup import MaxUp
from cpoison.errors import ConfigError
from cpoison.experiments.config import validate_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from experiment_helpers import comparable, one_thread  # noqa: E402
from test_engine_transfer import RAW  # noqa: E402

DEFENSES_HERE = ["none", "deep_knn", "spectral_signatures", "activation_clustering", "epic",
                 "maxup", "adversarial_poisoning", {"name": "rps", "k_t": 3, "k_c": 3},
                 "head_refit"]


def config(**changes):
    raw = copy.deepcopy(RAW)
    raw.update(n_victims=1, attacks=[{"name": "randun"}], scores=["hps", "aps"])
    raw.update(changes)
    return validate_config(raw)


def run(cfg, root: Path):
    with one_thread():
        return run_experiment(cfg, root / "out", store=root / "store", progress=False)


@pytest.fixture(scope="module")
def defense_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-defenses")
    return root, run(config(grid={"defense": DEFENSES_HERE}), root)


def test_every_frozen_feature_defense_runs_in_the_transfer_setting(defense_grid):
    _, summary = defense_grid
    rows = summary["rows"]
    assert sorted((r["defense"].split("(")[0], r["score"]) for r in rows) == sorted(
        (d if isinstance(d, str) else d["name"], s) for d in DEFENSES_HERE
        for s in ("hps", "aps"))
    for r in rows:
        assert 0.0 <= r["accuracy_victim"]["mean"] <= 1.0, r["defense"]
        assert r["benign_set_size"]["mean"] >= 1.0 or r["defense"].startswith("rps"), r
    knn = next(r for r in rows if r["defense"] == "deep_knn")
    assert knn["poisons_removed_share"]["mean"] is not None
    assert {r["setting"] for r in rows} == {"black-box"}


def test_defense_none_is_the_transfer_setting_without_defenses(defense_grid, tmp_path):
    _, summary = defense_grid
    plain = run(config(), tmp_path)
    def figures(rows):
        return [{k: v for k, v in r.items() if k != "point"} for r in comparable(rows)]

    none_rows = [r for r in summary["rows"] if r["defense"] == "none"]
    assert figures(none_rows) == figures(plain["rows"])


def test_defenses_that_do_not_fit_are_refused_before_training(tmp_path, monkeypatch):
    class NoFrozen(MaxUp):
        frozen_features = False

    with pytest.raises(ConfigError, match="does not run in the transfer setting with "
                       "conformal: full"):
        run(config(defense="maxup", transfer={**RAW["transfer"], "conformal": "full",
                                              "full_cp": {"subset_size": 40}}), tmp_path)
    assert not (tmp_path / "store" / "models").exists()
    monkeypatch.setitem(DEFENSES, "maxup", (DEFENSES["maxup"][0], NoFrozen))
    with pytest.raises(ConfigError, match="defense 'maxup' does not run in the transfer "
                       "setting"):
        run(config(defense="maxup"), tmp_path)
