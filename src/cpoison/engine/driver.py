"""The driver (SPEC 11): validate every grid point and every input before anything runs,
plan the missing cells, hand their tasks to an executor, and write each finished cell into
the run's ``results.sqlite`` (the driver alone writes it); then summary, report and plots.

Re-running a config with more victims, repeats or grid values runs only the missing cells;
a cell or model whose key is found in the run's database or the artifact store is reused;
a changed setting gives new keys and its numbers never mix with the old ones (the summary
reads exactly the cells of the current plan)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from cpoison.attacks.goals import goal_kind
from cpoison.engine.executors import build_executor
from cpoison.engine.grid import GridPoint, expand_grid
from cpoison.engine.identity import split_key
from cpoison.engine.plan import Cell, Task, cells_of, tasks_for
from cpoison.engine.preflight import check_point
from cpoison.engine.runtime import RunOptions, workspace_for
from cpoison.errors import ConfigError
from cpoison.experiments.baseline import environment
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.paired import paired_comparisons
from cpoison.experiments.report import write_report
from cpoison.experiments.store import ResultStore
from cpoison.experiments.summary import summarize_rows
from cpoison.experiments.workspace import Workspace
from cpoison.io import atomic_write_json, atomic_write_text
from cpoison.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)


def check_output_folder(out: Path) -> None:
    """ConfigError unless ``out`` is (or can be made) a writable folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"--out {out} cannot be written: {err.strerror or err}") from None


def run(
    config: ExperimentConfig, out: str | Path, opts: RunOptions, executor: str = "local",
    executor_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume, or extend) ``config`` into ``out``; returns the summary."""
    start = time.perf_counter()
    out = Path(out)
    points = expand_grid(config)  # every grid cell validated before anything runs
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    store = opts.artifact_store()
    store.check_writable()
    store.check_layers()
    workspaces: dict[int, Workspace] = {}

    def workspace(point: GridPoint) -> Workspace:
        if id(point) not in workspaces:
            workspaces[id(point)] = workspace_for(opts, point.config)
        return workspaces[id(point)]

    for point in points:
        check_point(workspace(point), point)
    runner = build_executor(executor, **(executor_options or {}))
    runner.start()
    try:
        check_output_folder(out)
        _claim(out, config, points, workspace)
        cells = cells_of(points, workspace)
        trained, computed = _execute(out, points, cells, opts, workspace, runner, store)
    finally:
        runner.close()
    summary = summarize(out, config, points, cells)
    summary.update(wall_seconds=time.perf_counter() - start, trained_models=len(trained),
                   computed_cells=computed, executor=executor)
    atomic_write_json(out / "summary.json", summary)
    write_report(out, summary, config.model_dump(mode="json"))
    return summary


def _claim(out: Path, config: ExperimentConfig, points: list[GridPoint],
           workspace: Any) -> None:
    """Record the config and every role split in ``out`` (after all checks passed)."""
    atomic_write_text(out / "config.resolved.yaml",
                      yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    for point in points:
        ws = workspace(point)
        path = out / "splits" / f"{split_key(ws)}.json"
        if not path.exists():
            atomic_write_text(path, json.dumps(
                {"dataset": ws.dataset.name, "dataset_digest": ws.digest,
                 **ws.split.to_dict()}))


def _execute(out: Path, points: list[GridPoint], cells: list[Cell], opts: RunOptions,
             workspace: Any, runner: Any, store: ArtifactStore) -> tuple[list[str], int]:
    """Run the cells missing from the database and from every store layer; returns the
    models trained and the number of cells computed."""
    db = ResultStore(out / "results.sqlite")
    trained: list[str] = []
    try:
        db.set_fact("plan", [c.key for c in cells])
        done = db.done_keys()
        pending = []
        for cell in cells:  # cells computed by another run into the store or a layer
            if cell.key in done:
                continue
            stored = store.get_json("cells", cell.key)
            if isinstance(stored, dict) and stored.get("rows"):
                _record(db, points, cell, stored["rows"])
            else:
                pending.append(cell)
        log.info("%d cells: %d done, %d to run", len(cells), len(cells) - len(pending),
                 len(pending))
        by_key = {c.key: c for c in pending}
        bar = tqdm(total=len(pending), desc="cells", unit="cell", disable=not opts.progress)

        def on_result(task: Task, result: dict[str, Any]) -> None:
            trained.extend(result.get("trained", []))
            if task.kind == "cell":
                _record(db, points, by_key[task.key], result["rows"])
                bar.update(1)

        runner.run(tasks_for(pending, points, opts, workspace), on_result)
        bar.close()
    finally:
        db.close()
    return trained, len(pending)


def _record(db: ResultStore, points: list[GridPoint], cell: Cell,
            rows: list[dict[str, Any]]) -> None:
    db.add_cell(cell.key, points[cell.point].values, cell.repeat, cell.attack, cell.victim,
                rows)


def summarize(out: Path, config: ExperimentConfig, points: list[GridPoint],
              cells: list[Cell]) -> dict[str, Any]:
    """The summary of exactly the planned cells, in grid and attack order."""
    db = ResultStore(out / "results.sqlite")
    try:
        rows = db.rows([c.key for c in cells])
    finally:
        db.close()
    return build_summary(config, rows)


def build_summary(config: ExperimentConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary rows (SPEC 6 statistics) in grid-point, attack and score order."""
    points = expand_grid(config)
    labels = config.labels()
    order = {}
    for i, point in enumerate(points):
        for a, label in enumerate(labels):
            for k, score in enumerate(config.scores):
                order[(repr(sorted(point.values.items())), label, score)] = (i, a, k)
    summary_rows = summarize_rows(rows)
    summary_rows.sort(key=lambda r: order.get(
        (repr(sorted(r["point"].items())), r["attack"], r["score"]), (len(order), 0, 0)))
    metric = goal_kind(config.goal).effect_metric
    return {"rows": summary_rows, "grid_keys": list(config.grid), "environment": environment(),
            "paired": paired_comparisons(rows, metric)}


def report_from_run(out: str | Path) -> Path:
    """Rebuild ``report.md``, the plots and ``summary.json`` from a run folder's
    ``config.resolved.yaml`` and ``results.sqlite`` (``cpoison report RUN``), and an
    audit's ``audit.md`` (from its ``audit.json``); returns the path of the last written
    (``audit.md`` for an audit)."""
    from cpoison.experiments.config import read_config, validate_config

    out = Path(out)
    for name in ("config.resolved.yaml", "results.sqlite"):
        if not (out / name).is_file():
            raise ConfigError(f"{out} is not a cpoison run folder (no {name})")
    config = validate_config(read_config(out / "config.resolved.yaml"),
                             str(out / "config.resolved.yaml"))
    db = ResultStore(out / "results.sqlite")
    try:
        plan = db.fact("plan")
        rows = db.rows(plan)
    finally:
        db.close()
    summary = build_summary(config, rows)
    atomic_write_json(out / "summary.json", summary)
    report = write_report(out, summary, config.model_dump(mode="json"))
    if (out / "audit.json").is_file():  # an audit's folder: its audit.md as well (SPEC 12)
        from cpoison.experiments.audit_report import write_audit_report

        try:
            facts = json.loads((out / "audit.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{out / 'audit.json'} is not a readable audit record "
                              f"({type(err).__name__}); re-run the audit to rewrite it") from None
        report, _ = write_audit_report(out, summary, config.model_dump(mode="json"), facts)
    return report
