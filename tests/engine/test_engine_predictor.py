"""A user's own conformal predictor makes the victims' sets of an engine run (a config's
``predictor``, ``cpoison audit --predictor``, ``cpoison.audit(predictor=...)``).

The tiny digits run (one victim pair, ours and randun) is run once with cpoison's split CP;
the same run with another predictor reuses every stored model and poison set and only
evaluates again. cpoison's own predictor through the user's route gives the very same
numbers under other cell keys; ``predictor: cpoison`` is the default (the same cells);
TorchCP and MAPIE give cpoison's HPS numbers exactly; bad input is one message each,
before anything trains."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import user_predictors
import yaml
from experiment_helpers import comparable, one_thread, tiny_config, tiny_raw

import cpoison
from cpoison.api.runner import run_experiment
from cpoison.cli import main
from cpoison.conformal import RAPS, SplitConformal, conformal_quantile, factories
from cpoison.conformal.adapters import conformal_sets, cpoison_factory
from cpoison.conformal.factories import (
    mapie_factory,
    predictor_factory,
    predictor_identity,
    register_predictor,
    torchcp_factory,
)
from cpoison.engine.identity import config_hash
from cpoison.errors import ConfigError, CpoisonError
from cpoison.experiments.config import validate_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformal"))
from torchcp_import import import_torchcp  # noqa: E402

SCORES = ["hps", "aps", "raps"]
USER = "user_predictors:cpoison_wrapped"


def _run(root: Path, name: str, **changes: Any) -> dict[str, Any]:
    config = tiny_config(**{"n_victims": 1, "scores": SCORES, **changes})
    with one_thread():
        return run_experiment(config, root / name, store=root / "store", progress=False)


def _keys(out: Path) -> set[str]:
    conn = sqlite3.connect(out / "results.sqlite")
    try:
        return {key for (key,) in conn.execute("SELECT key FROM cells")}
    finally:
        conn.close()


def _rows(summary: dict[str, Any], score: str) -> list[Any]:
    return [comparable(r) for r in summary["rows"] if r["score"] == score]


def _models(store: Path) -> list[Path]:
    return list(store.rglob("*.safetensors"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("predictor")
    return root, _run(root, "default")


# -- the same sets through the user's route ---------------------------------------------------


def test_a_user_predictor_gives_the_default_numbers_under_cells_of_its_own(default_run):
    root, default = default_run
    user_predictors.CALLS.clear()
    summary = _run(root, "user", predictor=USER)
    assert summary["trained_models"] == 0  # every model and poison set is reused
    assert set(user_predictors.CALLS) == set(SCORES)
    for score in SCORES:
        assert _rows(summary, score) == _rows(default, score), score
    assert not _keys(root / "user") & _keys(root / "default")
    resolved = yaml.safe_load((root / "user" / "config.resolved.yaml").read_text())
    assert resolved["predictor"] == USER
    # 'cpoison' is the default predictor: the same cells, found in the store
    named = _run(root, "named", predictor="cpoison")
    assert _keys(root / "named") == _keys(root / "default")
    assert named["trained_models"] == 0
    # unset, the config dumps (and hashes) as before the field existed
    assert "predictor" not in tiny_config().model_dump(mode="json")
    assert config_hash(tiny_config(predictor="CPoison")) == config_hash(tiny_config())


def test_the_cell_key_follows_the_predictor_functions_source():
    ident = predictor_identity(USER)
    assert ident["spec"] == USER and len(ident["code"]) == 16
    other = predictor_identity("user_predictors:not_a_predictor")
    assert other["code"] != ident["code"]
    assert predictor_identity("torchcp") == "torchcp"


# -- TorchCP and MAPIE ------------------------------------------------------------------------


def test_torchcp_gives_cpoisons_hps_numbers_and_covers_alike_with_aps_and_raps(default_run):
    """TorchCP's LAC makes cpoison's HPS sets: the same HPS numbers. APS and RAPS keep
    cpoison's settings (randomized; RAPS lam 0.01, k_reg 1), so the calibration thresholds
    agree for the same uniforms (checked below), but TorchCP draws one uniform per *label*
    of every test input where cpoison draws one per input, from another stream of the same
    seeded generator: those sets differ draw by draw and keep their coverage guarantee.
    With the tiny run's 75 calibration points one victim's coverage moves by about 0.04
    (one standard deviation) with the draws alone (measured: 0.83 through TorchCP against
    0.90 through cpoison for APS on this run; over 100 synthetic seeds with 200 calibration
    points both average 0.90), so only a wide band is asserted here."""
    import_torchcp()
    root, default = default_run
    summary = _run(root, "torchcp", predictor="torchcp")
    assert summary["trained_models"] == 0
    assert _rows(summary, "hps") == _rows(default, "hps")
    for score in ("aps", "raps"):
        theirs_rows, ours_rows = _rows(summary, score), _rows(default, score)
        assert theirs_rows != ours_rows  # other draws, other sets
        for theirs, ours in zip(theirs_rows, ours_rows, strict=True):
            for field in ("coverage_benign", "coverage_victim"):
                assert theirs[field]["mean"] >= 0.75, (score, field, theirs[field])
                assert abs(theirs[field]["mean"] - ours[field]["mean"]) <= 0.2, (
                    score, field, theirs[field], ours[field])


def test_the_torchcp_factory_keeps_cpoisons_raps_settings():
    """The same uniforms give the same RAPS threshold: TorchCP's ``penalty`` and ``kreg``
    are cpoison's ``lam`` and ``k_reg`` (1 for 10 classes)."""
    import_torchcp()
    g = torch.Generator().manual_seed(0)
    cal = torch.randn(300, 10, generator=g, dtype=torch.float64) * 2
    cal_y = torch.randint(10, (300,), generator=g)
    gen = torch.Generator().manual_seed(7)
    cp = torchcp_factory("raps", 0.1, gen)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(7)))
    cp.calibrate(cal, cal_y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        big_u = torch.rand(cal.shape[0])
    q = conformal_quantile(RAPS().score_labels(cal, cal_y, u=1.0 - big_u.double()), 0.1)
    assert float(cp.threshold) == pytest.approx(float(q), abs=1e-6)


def test_mapie_gives_cpoisons_hps_numbers(default_run):
    """MAPIE's "lac" makes cpoison's HPS sets: the same HPS numbers. Its APS randomizes only
    the calibration scores and always keeps the top label: its sets are not cpoison's,
    its coverage is close."""
    pytest.importorskip("mapie.classification")
    root, default = default_run
    summary = _run(root, "mapie", predictor="mapie", scores=["hps", "aps"])
    assert summary["trained_models"] == 0
    assert _rows(summary, "hps") == _rows(default, "hps")
    for theirs, ours in zip(_rows(summary, "aps"), _rows(default, "aps"), strict=True):
        for field in ("coverage_benign", "coverage_victim"):
            assert theirs[field]["mean"] >= 0.75, (field, theirs[field])
            assert abs(theirs[field]["mean"] - ours[field]["mean"]) <= 0.2, (
                field, theirs[field], ours[field])
        # MAPIE's APS always keeps the top label: never an empty set
        assert theirs["eval_benign_empty_share"]["mean"] == 0.0
        assert theirs["eval_victim_empty_share"]["mean"] == 0.0


def test_mapie_refuses_raps_with_its_reason():
    pytest.importorskip("mapie.classification")
    with pytest.raises(CpoisonError, match="MAPIE's RAPS holds out part of the calibration"):
        mapie_factory("raps", 0.1, torch.Generator())
    sets = conformal_sets(mapie_factory, "lac", 0.1, torch.Generator().manual_seed(0),
                          torch.randn(100, 4), torch.arange(100) % 4, torch.randn(5, 4))
    assert sets.shape == (5, 4)


def test_registered_predictors_are_config_names(monkeypatch):
    monkeypatch.setattr(factories, "PREDICTORS", dict(factories.PREDICTORS))
    register_predictor("mine", cpoison_factory)
    assert validate_config(tiny_raw(predictor="Mine")).predictor == "mine"
    assert predictor_factory("mine") is cpoison_factory
    assert predictor_identity("mine")["name"] == "mine"
    with pytest.raises(ConfigError, match="built in"):
        register_predictor("torchcp", cpoison_factory)
    with pytest.raises(ConfigError, match="without ':'"):
        register_predictor("a:b", cpoison_factory)


# -- the transfer setting (split CP) ----------------------------------------------------------

TRANSFER = {
    "transfer": {"public_fraction": 0.2, "extractor": {"arch": "mlp", "kwargs": {"hidden": 16}}},
    "attacks": [{"name": "randun"}], "scores": ["hps", "aps"], "targets": {
        "target_class": 3, "n_targets": 8}, "budget": 0.03,
}


def test_the_transfer_setting_takes_a_predictor_with_split_cp(tmp_path):
    user_predictors.CALLS.clear()
    default = _run(tmp_path, "default", **TRANSFER)
    summary = _run(tmp_path, "user", predictor=USER, **TRANSFER)
    assert set(user_predictors.CALLS) == {"hps", "aps"}
    for score in ("hps", "aps"):
        assert _rows(summary, score) == _rows(default, score)
    assert not _keys(tmp_path / "user") & _keys(tmp_path / "default")


# -- bad input: one message each, before anything trains --------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("sklearn", "unknown predictor 'sklearn'; choose one of cpoison, torchcp, mapie"),
    ("a:b:c", "predictor 'a:b:c' must be 'package.module:function'"),
    ("pkg.mod:", "predictor 'pkg.mod:' must be 'package.module:function'"),
])
def test_a_bad_predictor_name_is_one_config_error(value, message):
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_raw(predictor=value))
    assert message in str(err.value) and "'predictor'" in str(err.value)


def test_full_cp_refuses_a_predictor():
    raw = tiny_raw(predictor="torchcp", transfer={"conformal": "full"})
    with pytest.raises(ConfigError, match="full CP .* has no calibrate / predict split"):
        validate_config(raw)
    assert validate_config(tiny_raw(predictor="torchcp", transfer={})).predictor == "torchcp"


@pytest.mark.parametrize(("changes", "message"), [
    ({"predictor": "user_predictors:nope"},
     "predictor 'user_predictors:nope': module 'user_predictors' has no function 'nope'"),
    ({"predictor": "no_such_module_xyz:factory"},
     "cannot import module 'no_such_module_xyz'"),
    ({"predictor": "user_predictors:not_a_predictor"},
     "returned a int for score 'hps', which has no calibrate"),
    ({"predictor": "user_predictors:broken"},
     "calling it as factory('hps', 0.1, generator) failed: RuntimeError: no GPU here"),
    ({"predictor": USER, "defense": {"name": "rps", "k_t": 2, "k_c": 2}},
     "defense 'rps' replaces the victims' conformal predictor"),
    ({"predictor": "mapie", "scores": ["hps", "raps"]}, "cannot make RAPS sets"),
])
def test_a_predictor_that_cannot_run_is_refused_before_training(tmp_path, changes, message):
    if changes["predictor"] == "mapie":
        pytest.importorskip("mapie.classification")
    with pytest.raises(ConfigError) as err:
        _run(tmp_path, "out", **changes)
    assert message in str(err.value)
    assert _models(tmp_path / "store") == []


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cpoison: error: "), err
    assert "Traceback" not in "\n".join(err)
    assert message in err[-1], err[-1]


def _digits_npz(path: Path) -> Path:
    from cpoison.data import load_dataset

    ds = load_dataset("digits")
    keep = ds.train_labels < 4
    np.savez(path, x=ds.train_images[keep][:, 0].numpy(), y=ds.train_labels[keep].numpy())
    return path


def test_the_command_line_refuses_a_bad_predictor(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_raw(n_victims=1)))
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    attack = ["attack", str(config), "--quiet", "--store", store, "--out", out]
    _fails(capsys, [*attack, "--set", "predictor=nosuch"], "unknown predictor 'nosuch'")
    _fails(capsys, [*attack, "--set", "predictor=user_predictors:nope"],
           "has no function 'nope'")
    _fails(capsys, [*attack, "--set", f"predictor={USER}", "--set", "defense=rps"],
           "replaces the victims' conformal predictor")
    data = _digits_npz(tmp_path / "digits.npz")
    _fails(capsys, ["audit", "--data", str(data), "--model", "mlp", "--out", out, "--store",
                    store, "--predictor", "nosuch", "--quiet"], "unknown predictor 'nosuch'")
    assert _models(tmp_path / "store") == [] and not Path(out).exists()


def test_the_audit_help_names_the_predictors():
    import argparse

    from cpoison.cli import _parser

    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    help_text = " ".join(action.choices["audit"].format_help().split())
    assert "--predictor PREDICTOR" in help_text and "SPEC" not in help_text
    assert "cpoison, torchcp or mapie" in help_text and "(default: cpoison" in help_text


# -- the audit from Python --------------------------------------------------------------------

FAST = {"budgets": [0.05], "victims": 1, "scores": "hps,aps", "targets": 5,
        "target_class": 1, "iterations": 5, "preset": "audit-quick", "progress": False}


def test_an_audit_takes_a_predictor_function(tmp_path):
    calls: list[str] = []

    def my_predictor(score: str, alpha: float, generator: torch.Generator) -> SplitConformal:
        calls.append(score)
        return SplitConformal(score, alpha, generator=generator)

    data = _digits_npz(tmp_path / "digits.npz")
    store = tmp_path / "store"
    with one_thread():
        result = cpoison.audit(data, "mlp", tmp_path / "out", store=store,
                               predictor=my_predictor, **FAST)
        plain = cpoison.audit(data, "mlp", tmp_path / "plain", store=store, **FAST)
    assert set(calls) == {"hps", "aps"}
    facts = json.loads((result.out / "audit.json").read_text())
    assert facts["predictor"].startswith("@python:")
    assert json.loads((plain.out / "audit.json").read_text())["predictor"] == "cpoison"
    assert "(your predictor, given from Python)" in result.text
    assert "(cpoison's own predictor)" in plain.text
    assert plain.summary["trained_models"] == 0
    for score in ("hps", "aps"):
        assert _rows(result.summary, score) == _rows(plain.summary, score)
    with pytest.raises(ConfigError, match="executor='local'"):
        cpoison.audit(data, "mlp", tmp_path / "ray", store=store, predictor=my_predictor,
                      executor="ray", **FAST)
    with pytest.raises(ConfigError, match="predictor: expected a name"):
        cpoison.audit(data, "mlp", tmp_path / "bad", store=store, predictor=3, **FAST)
