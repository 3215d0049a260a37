"""A reproduction that outlasts one machine: its parts' evaluated cells exported to one
folder (the engine's format, :mod:`cpoison.engine.cells`) and its report rebuilt from that
folder alone, without datasets, models or training.

The folder holds every part as an exported run named after its config (``E1-over``,
``E3``, ...) and the reproduction's manifest::

    FOLDER/reproduce.json                 scale, experiments, command, parts
    FOLDER/cells/<cell key>.json          the cells of every part
    FOLDER/runs/E1-over/config.resolved.yaml, plan.json   one per part

so ``cpoison report FOLDER`` can tell a reproduction from a single run, and
:func:`report_from_cells` writes ``report.md`` / ``report.html`` (figures, CSV and LaTeX
tables) into any folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpoison.errors import ConfigError
from cpoison.io import atomic_write_json
from cpoison.reproduce.experiments import EXPERIMENTS, SCALES, Part, parts
from cpoison.reproduce.results import RunResult

MANIFEST = "reproduce.json"


def part_name(part: Part) -> str:
    """A part's name in a folder of cells: its config's file stem (``E1-over``, ``E3``)."""
    return part.config_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def is_reproduction_cells(folder: str | Path) -> bool:
    """Whether ``folder`` is a folder of cells exported from a reproduction (it holds
    ``reproduce.json`` beside ``runs/`` and ``cells/``)."""
    folder = Path(folder)
    return ((folder / MANIFEST).is_file() and (folder / "runs").is_dir()
            and (folder / "cells").is_dir())


def export_reproduction(out: str | Path, folder: str | Path) -> dict[str, int]:
    """Export every finished part of the reproduction in ``out`` (its ``reproduce.json``)
    into the folder of cells ``folder``, each part named by :func:`part_name`, and copy the
    manifest beside them; returns part name -> cells written."""
    from cpoison.engine.cells import export_cells

    out, folder = Path(out), Path(folder)
    manifest = _read_manifest(out / MANIFEST)
    written = {}
    for part in _parts(manifest["scale"]):
        run = part.folder(out)
        if (run / "results.sqlite").is_file() and (run / "config.resolved.yaml").is_file():
            done = export_cells(run, folder, part_name(part))
            written[part_name(part)] = done.written
    if not written:
        raise ConfigError(f"{out} holds no finished part of a reproduction")
    atomic_write_json(folder / MANIFEST, manifest)
    return written


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not a readable reproduction manifest "
                          f"({type(err).__name__})") from None
    if manifest.get("scale") not in SCALES:
        raise ConfigError(f"{path} names no known scale ({manifest.get('scale')!r})")
    return manifest  # type: ignore[no-any-return]


def _parts(scale: str) -> list[Part]:
    return [p for exp in EXPERIMENTS for p in parts(exp, scale)]


def load_part(folder: Path, part: Part) -> RunResult | None:
    """One part rebuilt from the folder of cells: its config, its summary (from the cells,
    without an environment: the cells do not record the machine) and its cells; None when
    the folder does not hold it."""
    from cpoison.engine.cells import read_exported_run
    from cpoison.engine.driver import build_summary
    from cpoison.experiments.config import validate_config
    from cpoison.store.artifacts import ArtifactStore

    run = folder / "runs" / part_name(part)
    if not (run / "config.resolved.yaml").is_file():
        return None
    raw, rows, missing = read_exported_run(ArtifactStore(folder), run)
    if not rows:
        return None
    summary = build_summary(validate_config(raw, part_name(part)), rows)
    summary.pop("environment", None)
    summary["missing_cells"] = missing
    return RunResult(part, Path(part.folder(Path("."))), raw, summary, rows)


def report_from_cells(folder: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write the reproduction's ``report.html`` and ``report.md`` (with figures, CSV and
    LaTeX tables) into ``out`` from the folder of cells ``folder`` alone; returns their
    paths."""
    from cpoison.reproduce import report

    folder, out = Path(folder), Path(out)
    if not is_reproduction_cells(folder):
        raise ConfigError(f"{folder} is not a folder of cells exported from a reproduction "
                          f"(no {MANIFEST} beside runs/ and cells/)")
    manifest = _read_manifest(folder / MANIFEST)
    scale = manifest["scale"]
    runs: dict[str, list[RunResult]] = {exp: [] for exp in EXPERIMENTS}
    for part in _parts(scale):
        found = load_part(folder, part)
        if found is not None:
            runs[part.experiment].append(found)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MANIFEST, manifest)
    return report.write(out, scale, report.with_e2(runs))


__all__ = ["MANIFEST", "export_reproduction", "is_reproduction_cells", "load_part",
           "part_name", "report_from_cells"]
