"""Runs that outlast one machine (SPEC 11, stores in layers): a grid stopped half-way, its
cells exported to a folder, finished from an empty store with that folder as a read-only
layer (given as an fsspec URL, through the CLI) gives the uninterrupted run's summary and
computes only the missing cells; a cell whose key changed is computed again; keys do not
depend on the machine's paths or name; ``cpoison report`` rebuilds a report from the
folder alone."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from experiment_helpers import comparable, one_thread, tiny_config, tiny_raw

from cpoison.api.runner import run_experiment
from cpoison.cli import main
from cpoison.engine import tasks
from cpoison.engine.artifacts import ArtifactStore, StoreError, split_stores
from cpoison.engine.cells import export_cells
from cpoison.engine.grid import expand_grid
from cpoison.engine.plan import cells_of
from cpoison.engine.runtime import RunOptions, clear_caches, workspace_for

GRID = {"budget": [0.03, 0.05]}  # 2 budgets x 2 attacks x 2 victims = 8 cells


def run(config, out, store):
    with one_thread():
        return run_experiment(config, out, store=store, progress=False)


class Stopped(Exception):
    """The run stopped (a kill, the end of a sitting)."""


def counting_cells(monkeypatch, stop_after: int | None = None) -> list[int]:
    """Count the cells computed; with ``stop_after``, stop the run (as a kill would) when
    that many cells are done."""
    calls: list[int] = []
    original = tasks.cell_task

    def cell_task(*args, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise Stopped
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks, "cell_task", cell_task)
    return calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    summary = run(tiny_config(grid=GRID), root / "out", root / "store")
    assert summary["computed_cells"] == 8
    return root, summary


@pytest.fixture(scope="module")
def half_way(tmp_path_factory):
    """The same grid on another machine, stopped after 3 of its 8 cells, its cells
    exported to a folder."""
    root = tmp_path_factory.mktemp("half")
    patch = pytest.MonkeyPatch()
    try:
        calls = counting_cells(patch, stop_after=3)
        with pytest.raises(Stopped):
            run(tiny_config(grid=GRID), root / "out", root / "store")
        assert len(calls) == 3
    finally:
        patch.undo()
    done = export_cells(root / "out", root / "cells")
    assert (done.written, done.unchanged, done.name) == (3, 0, "out")
    return root


def test_a_grid_stopped_half_way_is_finished_from_its_exported_cells(
        uninterrupted, half_way, tmp_path, monkeypatch):
    whole_root, whole = uninterrupted
    clear_caches()  # a fresh process: nothing in memory from the other runs
    layer = tmp_path / "cells"  # the committed folder, as a fresh clone has it
    shutil.copytree(half_way / "cells", layer)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_raw(grid=GRID)))
    calls = counting_cells(monkeypatch)
    with one_thread():
        code = main(["attack", str(config), "--out", str(tmp_path / "out"), "--quiet",
                     "--store", str(tmp_path / "empty-store"),
                     "--store", f"file://{layer}"])
    assert code == 0
    assert len(calls) == 8 - 3  # only the missing cells
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["computed_cells"] == 5
    assert comparable(summary["rows"]) == comparable(whole["rows"])
    # the layer was only read
    assert len(list((layer / "cells").glob("*.json"))) == 3
    # exporting the finished run adds the 5 new cells beside the 3 (same names: same keys)
    done = export_cells(tmp_path / "out", layer, name="out")
    assert (done.written, done.unchanged) == (5, 3)
    mine = {p.name for p in (layer / "cells").glob("*.json")}
    export_cells(whole_root / "out", tmp_path / "whole-cells")
    assert mine == {p.name for p in (tmp_path / "whole-cells" / "cells").glob("*.json")}


def test_cells_from_a_layer_are_never_recomputed_and_a_changed_key_is(
        uninterrupted, tmp_path, monkeypatch):
    whole_root, _ = uninterrupted
    export_cells(whole_root / "out", tmp_path / "cells")
    calls = counting_cells(monkeypatch)
    again = run(tiny_config(grid=GRID), tmp_path / "out", [tmp_path / "empty", tmp_path / "cells"])
    assert (len(calls), again["computed_cells"], again["trained_models"]) == (0, 0, 0)
    assert not (tmp_path / "empty" / "models").exists()
    # new scores: new evaluation cells (the models come from the first run's store)
    rescored = run(tiny_config(grid=GRID, scores=["hps"]), tmp_path / "out2",
                   [whole_root / "store", tmp_path / "cells"])
    assert len(calls) == rescored["computed_cells"] == 8
    assert rescored["trained_models"] == 0


def test_exported_cells_are_deterministic_small_json(uninterrupted, tmp_path):
    whole_root, _ = uninterrupted
    first = export_cells(whole_root / "out", tmp_path / "a")
    again = export_cells(whole_root / "out", tmp_path / "a")
    assert (first.written, again.written, again.unchanged) == (8, 0, 8)
    export_cells(whole_root / "out", tmp_path / "b", name="out")
    for path in (tmp_path / "a" / "cells").glob("*.json"):
        twin = tmp_path / "b" / "cells" / path.name
        assert path.read_bytes() == twin.read_bytes()
        record = json.loads(path.read_text())
        assert record["key"] == path.stem and record["rows"]
        assert path.stat().st_size < 20_000
    assert (tmp_path / "a" / "runs" / "out" / "config.resolved.yaml").is_file()
    assert len(json.loads((tmp_path / "a" / "runs" / "out" / "plan.json").read_text())) == 8


def test_report_rebuilds_from_a_folder_of_cells(uninterrupted, half_way, tmp_path, capsys):
    whole_root, whole = uninterrupted
    export_cells(whole_root / "out", tmp_path / "cells", name="tiny")
    assert main(["report", str(tmp_path / "cells"), "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "tiny" / "summary.json").read_text())
    assert summary["missing_cells"] == 0
    assert comparable(summary["rows"]) == comparable(whole["rows"])
    table = [line for line in (whole_root / "out" / "report.md").read_text().splitlines()
             if line.startswith("|")]
    assert [line for line in (tmp_path / "report" / "tiny" / "report.md").read_text()
            .splitlines() if line.startswith("|")] == table
    # a half-way folder: the report covers the cells there and says how many are missing
    assert main(["report", str(half_way / "cells"), "--out", str(tmp_path / "half")]) == 0
    assert json.loads((tmp_path / "half" / "out" / "summary.json").read_text())[
        "missing_cells"] == 5


def test_runs_that_share_cells_keep_their_own_grid_points(uninterrupted, tmp_path):
    """A run naming the same cells by another grid (one budget, no grid) computes none of
    them, and after both are exported into one folder each run's report still places the
    shared cells at its own grid point."""
    whole_root, whole = uninterrupted
    plain_config = tiny_config(budget=0.05)
    plain = run(plain_config, tmp_path / "plain", whole_root / "store")
    assert plain["computed_cells"] == 0
    export_cells(whole_root / "out", tmp_path / "cells", name="grid")
    export_cells(tmp_path / "plain", tmp_path / "cells", name="plain")  # rewrites 4 files
    assert main(["report", str(tmp_path / "cells"), "--out", str(tmp_path / "report")]) == 0
    grid = json.loads((tmp_path / "report" / "grid" / "summary.json").read_text())
    assert comparable(grid["rows"]) == comparable(whole["rows"])
    again = json.loads((tmp_path / "report" / "plain" / "summary.json").read_text())
    assert comparable(again["rows"]) == comparable(plain["rows"])
    assert {json.dumps(r["point"]) for r in again["rows"]} == {"{}"}


def test_keys_do_not_depend_on_paths_or_the_machine_name(tmp_path, monkeypatch):
    def plan(store, data_root):
        clear_caches()
        opts = RunOptions(store=str(store), data_root=data_root, progress=False)
        points = expand_grid(tiny_config(grid=GRID))
        return [c.key for c in cells_of(points, lambda p: workspace_for(opts, p.config))]

    here = plan(tmp_path / "a", None)
    import platform
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "another-machine")
    monkeypatch.setattr(platform, "node", lambda: "another-machine")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    there = plan(tmp_path / "elsewhere" / "b", str(tmp_path / "data"))
    clear_caches()
    assert here == there and len(set(here)) == 8


def test_layers_are_read_only_and_checked(tmp_path):
    assert split_stores(None)[1] == ()
    assert split_stores([tmp_path / "a", tmp_path / "b", "s3://x/y"]) == (
        str(tmp_path / "a"), (str(tmp_path / "b"), "s3://x/y"))
    lower = ArtifactStore(tmp_path / "lower")
    lower.put_json("cells", "k", {"rows": [1]})
    store = ArtifactStore(tmp_path / "upper", [tmp_path / "lower"])
    assert store.get_json("cells", "k") == {"rows": [1]} and store.exists("cells", "k", ".json")
    store.put_json("cells", "k2", {"rows": [2]})
    assert not (tmp_path / "lower" / "cells" / "k2.json").exists()
    with pytest.raises(StoreError, match="not a folder"):
        ArtifactStore(tmp_path / "upper", [tmp_path / "typo"]).check_layers()
    shutil.rmtree(tmp_path / "lower")
    assert store.get_json("cells", "k") is None


def test_a_config_pins_the_precision_of_every_model(tmp_path):
    from cpoison.engine import identity

    clear_caches()
    opts = RunOptions(store=str(tmp_path), progress=False)
    plain, pinned = tiny_config(), tiny_config(precision="bf16")
    ws, ws_bf16 = workspace_for(opts, plain), workspace_for(opts, pinned)
    assert ws_bf16.preset.recipe.precision == "bf16"
    assert identity.surrogate_key(ws, plain, 0) != identity.surrogate_key(ws_bf16, pinned, 0)
    assert identity.crafting_fields(plain) == identity.crafting_fields(pinned)
    fp32 = tiny_config(precision="fp32")
    assert identity.surrogate_key(ws, plain, 0) == identity.surrogate_key(
        workspace_for(opts, fp32), fp32, 0)  # the digits preset trains in fp32
    clear_caches()
