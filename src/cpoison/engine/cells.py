"""Runs that outlast one machine (SPEC 11, stores in layers): a run's evaluated cells (their
rows, no model) exported to a folder, read back as a read-only layer of the artifact store,
and the report rebuilt from such a folder without training.

The folder has the artifact store's layout for cells, so it *is* a store layer::

    FOLDER/cells/<cell key>.json          one file per cell: key, grid point, repeat,
                                          attack, victim and the rows of every score
    FOLDER/runs/<name>/config.resolved.yaml   the config of an exported run
    FOLDER/runs/<name>/plan.json              its planned cell keys, in report order
    FOLDER/runs/<name>/cells.json             where each of its cells sits in that run:
                                              key -> grid point, repeat, attack, victim

A cell's numbers depend only on its content, so two runs can share one (the same attack on
the same victims, named by another grid): the cell file holds one run's labels, and each
run's ``cells.json`` its own, which the report uses.

Cell files are small, strict JSON with sorted keys, and their names are content keys
(:mod:`cpoison.store.keys`): the same cell exported from two machines is the same file, so
a folder can be committed and extended over days. A key holds the precision the models
were actually trained in (``auto`` resolves to bf16 where the CPU has it natively, fp32
elsewhere), so a run continued on another kind of CPU must pin ``precision`` in its config
to find the cells of the first.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cpoison.errors import ConfigError
from cpoison.experiments.store import ResultStore
from cpoison.io import json_safe
from cpoison.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

CELLS_FORMAT = 1
PLACE = ("point", "repeat", "attack", "victim")
"""What places a cell in its run (its labels there), as opposed to its numbers."""


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(json_safe(obj), sort_keys=True, indent=1, allow_nan=False,
                       default=str) + "\n").encode()


def _run_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    if not clean:
        raise ConfigError(f"export name {name!r} has no usable character")
    return clean


@dataclass(frozen=True)
class Export:
    """What :func:`export_cells` did: cells written, cells already there, the run's name."""

    written: int
    unchanged: int
    name: str
    folder: str


def export_cells(run: str | Path, folder: str | Path, name: str | None = None) -> Export:
    """Write every evaluated cell of the run folder ``run`` (its ``results.sqlite``) into
    ``folder`` (a folder or an fsspec URL), with the run's config and plan under
    ``runs/<name>/`` (default name: the run folder's name). Files already holding the same
    bytes are left alone, so re-exporting a resumed run only adds its new cells."""
    run = Path(run)
    for needed in ("config.resolved.yaml", "results.sqlite"):
        if not (run / needed).is_file():
            raise ConfigError(f"{run} is not a cpoison run folder (no {needed})")
    name = _run_name(name or run.resolve().name)
    target = ArtifactStore(folder)
    db = ResultStore(run / "results.sqlite")
    try:
        cells = db.cells()
        plan = db.fact("plan") or []
    finally:
        db.close()
    written = unchanged = 0
    for cell in cells:
        data = _json_bytes({"format": CELLS_FORMAT, **cell})
        if target.get("cells", cell["key"], ".json") == data:
            unchanged += 1
            continue
        target.put("cells", cell["key"], ".json", data)
        written += 1
    target.put(f"runs/{name}", "config.resolved", ".yaml",
               (run / "config.resolved.yaml").read_bytes())
    target.put(f"runs/{name}", "plan", ".json", _json_bytes(plan))
    target.put(f"runs/{name}", "cells", ".json", _json_bytes({
        cell["key"]: {field: cell[field] for field in PLACE} for cell in cells}))
    log.info("exported %d cells (%d already there) of %s to %s", written, unchanged, run,
             folder)
    return Export(written, unchanged, name, str(folder))


def is_cells_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of exported cells (``runs/`` and ``cells/``)."""
    path = Path(path)
    return (path / "runs").is_dir() and (path / "cells").is_dir()


def read_cell(store: ArtifactStore, key: str) -> dict[str, Any] | None:
    """The exported (or stored) record of cell ``key``, None when absent or without rows."""
    record = store.get_json("cells", key)
    if not isinstance(record, dict) or not record.get("rows"):
        return None
    return record


def _places(run: Path) -> dict[str, dict[str, Any]]:
    """The run's own labels of its cells (``cells.json``; empty for a folder exported
    before it existed, whose cell files then give them)."""
    path = run / "cells.json"
    if not path.is_file():
        return {}
    try:
        places = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable ({err})") from None
    return {key: {field: place[field] for field in PLACE if field in place}
            for key, place in places.items()}


def read_exported_run(store: ArtifactStore, run: Path
                      ) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """One run exported to a folder of cells (``run`` = ``FOLDER/runs/NAME``, ``store`` the
    folder's store): its raw config, the rows of its planned cells placed at the run's own
    grid point, repeat, attack and victim (``cells.json``), and how many planned cells the
    folder lacks (a warning names them)."""
    try:
        raw = yaml.safe_load((run / "config.resolved.yaml").read_text()) or {}
        plan = json.loads((run / "plan.json").read_text())
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"{run}: unreadable exported run ({err})") from None
    places = _places(run)
    rows: list[dict[str, Any]] = []
    missing = 0
    for key in plan:
        record = read_cell(store, key)
        if record is None:
            missing += 1
            continue
        place = places.get(key) or {"point": record.get("point") or {}}
        rows.extend({**row, "cell": key, **place} for row in record["rows"])
    if missing:
        log.warning("%s: %d of %d planned cells are not in the folder; the report leaves "
                    "them out", run.name, missing, len(plan))
    return raw, rows, missing


def report_from_cells(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Rebuild ``summary.json``, ``report.md`` and the plots of every run exported to
    ``folder`` (a folder of cells; see the module docstring) into ``out/<name>/`` (default
    ``folder/runs/<name>/``), from the cells alone: no dataset, no model, no training.
    Cells of a plan missing from the folder are left out, with a warning naming how many."""
    from cpoison.engine.driver import build_summary
    from cpoison.experiments.config import validate_config
    from cpoison.experiments.report import write_report
    from cpoison.io import atomic_write_json

    folder = Path(folder)
    if not is_cells_folder(folder):
        raise ConfigError(f"{folder} is not a folder of exported cells (no runs/ and cells/)")
    store = ArtifactStore(folder)
    reports = []
    for run in sorted(p for p in (folder / "runs").iterdir() if p.is_dir()):
        raw, rows, missing = read_exported_run(store, run)
        config = validate_config(raw, str(run / "config.resolved.yaml"))
        target = Path(out) / run.name if out is not None else run
        target.mkdir(parents=True, exist_ok=True)
        summary = build_summary(config, rows)
        summary["missing_cells"] = missing
        atomic_write_json(target / "summary.json", summary)
        reports.append(write_report(target, summary, config.model_dump(mode="json")))
    if not reports:
        raise ConfigError(f"{folder}/runs holds no exported run")
    return reports
