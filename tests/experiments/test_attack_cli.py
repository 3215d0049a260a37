"""``cpoison attack``: runs a config with overrides; user errors are one stderr line and
exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest
import yaml
from experiment_helpers import comparable, stored_rows, tiny_raw

from cpoison.cli import main


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw()))
    return path


def test_attack_command_runs(config_path, tmp_path, reference_run, capsys):
    out = tmp_path / "out"
    code = main(["attack", str(config_path), "--set", "n_victims=1", "--out", str(out),
                 "--quiet", "--cache-dir", str(reference_run.cache)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| attack | score |" in printed
    assert "report:" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {r["n_victims"] for r in summary["rows"]} == {1}
    assert yaml.safe_load((out / "config.resolved.yaml").read_text())["n_victims"] == 1
    # n_victims does not enter any seed: the single victim is the reference run's victim 0.
    rows = stored_rows(out)
    assert len(rows) == 4
    reference = [r for r in stored_rows(reference_run.out) if r["victim"] == 0]
    assert comparable(rows) == comparable(reference)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--set", "alpha=1.5"], "invalid value for 'alpha'"),
        (["--set", "eps=16/0"], "invalid value for 'eps'"),
        (["--set", "attacks.0.name=nonsense"], "invalid value for 'attacks.0'"),
        (["--set", "alpha"], "--set expects KEY=VALUE"),
    ],
)
def test_bad_config_exits_2_with_one_line(config_path, tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    code = main(["attack", str(config_path), *extra, "--out", str(out), "--quiet",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cpoison: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err
    assert not (out / "results.sqlite").exists()


def test_missing_config_file_exits_2(tmp_path, capsys):
    code = main(["attack", str(tmp_path / "absent.yaml"), "--out", str(tmp_path / "out"),
                 "--quiet", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpoison: error: ") and "does not exist" in err
    assert len(err.splitlines()) == 1
