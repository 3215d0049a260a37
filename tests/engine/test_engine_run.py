"""Running grids (SPEC 11): only missing cells run; stored cells, models and poisons are
reused by any run that reaches the store; a changed setting never mixes its numbers with
the old ones; ``cpoison report`` rebuilds the report from the database alone."""

from __future__ import annotations

import json

import pytest
from experiment_helpers import comparable, one_thread, stored_rows, tiny_config

from cpoison.api.runner import run_experiment
from cpoison.cli import main

GRID = {"budget": [0.03, 0.05]}


def run(config, out, store):
    with one_thread():
        return run_experiment(config, out, store=store, progress=False)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    summary = run(tiny_config(grid=GRID), root / "out", root / "store")
    return root, summary


def test_a_grid_runs_every_cell_and_shares_benign_victims(grid_run):
    root, summary = grid_run
    # 1 surrogate + 2 benign victims shared by both budgets + 2 budgets x 2 attacks x 2.
    assert summary["trained_models"] == 1 + 2 + 8
    rows = summary["rows"]
    assert [(r["point"]["budget"], r["attack"], r["score"]) for r in rows] == [
        (b, a, s) for b in (0.03, 0.05) for a in ("ours-l3-o1-hps", "randun")
        for s in ("hps", "aps")]
    assert {r["budget"] for r in rows} == {0.03, 0.05}
    assert all(r["n_victims"] == 2 and r["n_repeats"] == 1 for r in rows)
    assert len(stored_rows(root / "out")) == 16
    assert "| budget | attack | score |" in (root / "out" / "report.md").read_text()
    assert (root / "out" / "reduction_ratio_vs_budget.png").stat().st_size > 1000
    assert len(list((root / "out" / "splits").glob("*.json"))) == 1


def test_more_victims_train_only_the_new_victims(grid_run, tmp_path):
    root, summary = grid_run
    import shutil

    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    more = run(tiny_config(grid=GRID, n_victims=3), out, root / "store")
    # one new benign victim and its 2 budgets x 2 attacks poisoned twins
    assert more["trained_models"] == 1 + 4
    assert all(r["n_victims"] == 3 for r in more["rows"])
    old = {(r["budget"], r["attack"], r["victim"], r["score"]): r
           for r in stored_rows(root / "out")}
    for row in stored_rows(out):
        key = (row["budget"], row["attack"], row["victim"], row["score"])
        if row["victim"] < 2:
            assert comparable(row) == comparable(old[key])


def test_another_folder_reuses_stored_cells(grid_run, tmp_path):
    root, summary = grid_run
    again = run(tiny_config(grid={"budget": [0.05, 0.1]}), tmp_path / "out", root / "store")
    assert again["trained_models"] == 4  # only budget 0.1's poisoned victims
    shared = [r for r in again["rows"] if r["point"]["budget"] == 0.05]
    assert comparable(shared) == comparable(
        [r for r in summary["rows"] if r["point"]["budget"] == 0.05])


def test_a_changed_setting_makes_new_cells_and_never_mixes(grid_run, tmp_path):
    root, summary = grid_run
    import shutil

    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    changed = run(tiny_config(grid=GRID, alpha=0.2), out, root / "store")
    # alpha shapes the attacker's loss: ours' poisons (2 budgets x 2 victims) are new; the
    # random baseline's poisons come out the same bytes, so its victims are reused
    assert changed["trained_models"] == 4
    assert len(stored_rows(out)) == 32  # old cells kept, new ones beside them
    assert {r["alpha"] for r in stored_rows(out)} == {0.1, 0.2}
    assert all(r["n_victims"] == 2 for r in changed["rows"])
    assert comparable(changed["rows"]) != comparable(summary["rows"])
    rescored = run(tiny_config(grid=GRID, scores=["raps"]), out, root / "store")
    assert rescored["trained_models"] == 0  # same models, new evaluation cells
    assert {r["score"] for r in rescored["rows"]} == {"raps"}


def test_report_rebuilds_from_the_database(grid_run, capsys):
    root, summary = grid_run
    out = root / "out"
    before = (out / "report.md").read_text()
    (out / "report.md").unlink()
    (out / "summary.json").unlink()
    assert main(["report", str(out)]) == 0
    table = [line for line in before.splitlines() if line.startswith("|")]
    assert [line for line in (out / "report.md").read_text().splitlines()
            if line.startswith("|")] == table
    assert comparable(json.loads((out / "summary.json").read_text())["rows"]) == comparable(
        summary["rows"])


def test_ray_gives_the_local_numbers(grid_run, tmp_path):
    """The same grid under the Ray executor (a local Ray, 2 CPUs, 1 thread per task),
    from an empty store: identical rows."""
    root, summary = grid_run
    with one_thread():
        ray_summary = run_experiment(
            tiny_config(grid=GRID), tmp_path / "out", store=tmp_path / "store",
            progress=False, executor="ray", executor_options={"num_cpus": 2})
    assert ray_summary["trained_models"] == summary["trained_models"]
    assert comparable(ray_summary["rows"]) == comparable(summary["rows"])
    assert comparable(stored_rows(tmp_path / "out")) == comparable(stored_rows(root / "out"))


def test_benign_victims_are_evaluated_once_per_victim(tmp_path, monkeypatch):
    """2 budgets x 2 attacks x 2 victims = 8 cells: each benign victim is trained once and
    evaluated once (2 evaluations), each poisoned one once (8)."""
    from cpoison.experiments.settings import scratch

    calls: list[int] = []
    original = scratch.evaluate_victim

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(scratch, "evaluate_victim", counting)
    summary = run(tiny_config(grid=GRID), tmp_path / "out", tmp_path / "store")
    assert summary["trained_models"] == 1 + 2 + 8
    assert len(calls) == 2 + 8
