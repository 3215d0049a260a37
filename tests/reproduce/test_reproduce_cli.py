"""``cpoison reproduce`` input errors (SPEC 10): an unknown experiment, an unknown scale, an
override that breaks a config, or a folder from another scale gives one ``cpoison: error:``
line and exit code 2, before anything trains; ``--report-only`` on an empty folder writes a
report in which every experiment is "not run" and no number appears."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cpoison.cli import main
from cpoison.reproduce.experiments import EXPERIMENTS


@pytest.mark.parametrize(("argv", "message"), [
    (["E8"], "unknown experiment 'E8'; choose from E1, E2"),
    (["E1", "--scale", "gpu"], "argument --scale: invalid choice: 'gpu'"),
    (["E3", "--scale", "test", "--set", "n_victims=0"], "n_victims"),
])
def test_bad_input_is_one_line_exit_2(argv: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    try:
        code = main(["reproduce", *argv, "--out", str(out), "--store", str(tmp_path / "s")])
    except SystemExit as exit_:  # a usage error, found by argparse
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("cpoison: error:") and message in err[0]
    assert not (out / "reproduce.json").exists()


def test_report_only_on_an_empty_folder_says_not_run(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["reproduce", "--scale", "cpu", "--out", str(out), "--report-only"]) == 0
    md = (out / "report.md").read_text()
    assert md.count("Not run at this scale") == len(EXPERIMENTS)
    assert "13 not run." in md and ".png" not in md
    body = md.split("## E1:")[1]
    assert not re.search(r"\d\.\d\d ±", body)  # no number for what did not run
    assert json.loads((out / "reproduce.json").read_text())["scale"] == "cpu"
    # a folder holds one scale
    code = main(["reproduce", "--scale", "test", "--out", str(out), "--report-only"])
    assert code == 2 and "scale 'cpu'" in capsys.readouterr().err


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "file"
    out.write_text("")
    code = main(["reproduce", "E3", "--scale", "test", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a file, not a folder" in err[0]
