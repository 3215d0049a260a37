"""Bad input from the command line (SPEC 10, 11): one ``cpoison: error:`` line naming what
is wrong, exit code 2, no traceback, and nothing already computed is lost."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "experiments"))
from experiment_helpers import tiny_raw  # noqa: E402

from cpoison.attacks import PoisonSet  # noqa: E402
from cpoison.cli import main  # noqa: E402
from cpoison.conformal import APS, SplitConformal  # noqa: E402
from cpoison.errors import CpoisonError, DataError  # noqa: E402
from cpoison.io import atomic_write_text  # noqa: E402


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(n_victims=1)))
    return path


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cpoison: error: "), err
    assert "Traceback" not in "\n".join(err)
    assert message in err[-1], err[-1]


def attack(config: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["attack", str(config), "--quiet", "--store", str(tmp_path / "store"), *extra]


def test_out_that_is_a_file(config, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    fails(capsys, attack(config, tmp_path, "--out", str(blocker)), "is a file, not a folder")
    fails(capsys, attack(config, tmp_path, "--out", str(blocker / "sub")), "cannot be written")
    assert blocker.read_text() == "keep me"


def test_store_that_cannot_be_written(config, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails(capsys, ["attack", str(config), "--quiet", "--store", str(blocker / "s"), "--out",
                   str(tmp_path / "out")], "cannot be written")
    assert not (tmp_path / "out").exists()


def test_json_path_is_checked_before_training(tmp_path, capsys):
    fails(capsys, ["cp", "--dataset", "digits", "--json", str(tmp_path), "--quiet"],
          "is a folder, not a file")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails(capsys, ["cp", "--dataset", "digits", "--json", str(blocker / "r.json")],
          "is a file, not a folder")


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "unknown device 'gpu'"),
    pytest.param("cuda", "no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_unknown_or_absent_device(config, tmp_path, capsys, device, message):
    fails(capsys, attack(config, tmp_path, "--out", str(tmp_path / "o"), "--device", device),
          message)
    assert not (tmp_path / "o" / "config.resolved.yaml").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("alpha=[0.1", "is not a valid YAML value"),
    ("alpha.x=1", "'alpha' holds a value"),
    ("attacks.9.loss=l2", "not an item of a list"),
    ("budget", "--set expects KEY=VALUE"),
    ("grid.budgett=[0.01]", "grid cell {budgett=0.01}"),
    ("grid.budget=[]", "empty list"),
    ("grid.budget=[0.01, 7]", "grid cell {budget=7}"),
])
def test_bad_overrides_and_grids(config, tmp_path, capsys, override, message):
    fails(capsys, attack(config, tmp_path, "--out", str(tmp_path / "o"), "--set", override),
          message)
    assert not (tmp_path / "o").exists()  # the corrected re-run is not refused


def test_config_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    fails(capsys, ["attack", str(path), "--out", str(tmp_path / "o")], "is not UTF-8")


def test_unreachable_ray_cluster(config, tmp_path, capsys):
    fails(capsys, attack(config, tmp_path, "--out", str(tmp_path / "o"), "--executor", "ray",
                         "--address", "127.0.0.1:9"), "cannot reach the Ray cluster")
    assert not (tmp_path / "o").exists()


def test_damaged_results_database(config, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    db = out / "results.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):  # every b-tree page but the file header's
        data[page * 4096: page * 4096 + 12] = b"\xff" * 12
    db.write_bytes(bytes(data))
    fails(capsys, attack(config, tmp_path, "--out", str(out)), "results database")
    assert db.read_bytes() == bytes(data)  # left as it was, for the user to inspect


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    fails(capsys, ["report", str(tmp_path)], "is not a cpoison run folder")


def test_stored_poison_ids_outside_the_pool():
    poisons = PoisonSet(torch.tensor([3, 70000]), torch.zeros(2, 1, 2, 2))
    with pytest.raises(DataError, match=r"range over \[3, 70000\].*60000 images"):
        poisons.check_ids(60000)


def test_api_calls_with_the_wrong_types():
    with pytest.raises(CpoisonError, match="generator must be a torch.Generator, got int"):
        SplitConformal(APS(), 0.1).calibrate(torch.randn(10, 3), torch.randint(3, (10,)),
                                             generator=5)
    with pytest.raises(CpoisonError, match="logits must be a torch.Tensor, a NumPy array or a "
                       "list of floating-point numbers, got str"):
        SplitConformal(APS(), 0.1).calibrate("[[0.1, 0.9]]", [1])
    with pytest.raises(DataError, match="delta must be a torch.Tensor"):
        PoisonSet([1], [[0.0]])


def test_outputs_are_readable_by_the_team_and_complete(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("flag", [["--threads", "0"], ["--num-cpus", "-1"],
                                  ["--cpus-per-task", "x"]])
def test_counts_that_are_not_positive(config, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as stop:
        main(attack(config, tmp_path, "--out", str(tmp_path / "o"), *flag))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and flag[0] in err[-1]
    assert not (tmp_path / "o").exists()
