"""The results committed under ``docs/results/`` are rebuildable on a fresh clone: every
folder of exported cells there holds its runs (config, plan, the runs' own labels of their
cells) and ``cpoison report FOLDER --out DIR`` rebuilds each run's tables exactly as the
committed report shows them, without training anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpoison.cli import main
from cpoison.engine.cells import is_cells_folder

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(p for p in (ROOT / "docs" / "results").glob("*/cells") if is_cells_folder(p))


def tables(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("|")]


def test_there_are_committed_cells() -> None:
    assert FOLDERS, "no folder of exported cells under docs/results"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.parent.name)
def test_committed_reports_rebuild_from_their_cells(folder: Path, tmp_path: Path) -> None:
    runs = sorted(p.name for p in (folder / "runs").iterdir() if p.is_dir())
    assert runs
    for name in runs:
        for part in ("config.resolved.yaml", "plan.json", "cells.json"):
            assert (folder / "runs" / name / part).is_file(), f"{name}/{part} not committed"
    assert main(["report", str(folder), "--out", str(tmp_path), "-q"]) == 0
    for name in runs:
        committed = folder.parent / "report" / name / "report.md"
        assert committed.is_file(), f"no committed report for run {name}"
        assert tables(tmp_path / name / "report.md") == tables(committed), name
