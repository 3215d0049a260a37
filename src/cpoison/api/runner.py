"""``cpoison attack`` / ``cpoison demo`` in Python: load a config, run it through the engine
(:mod:`cpoison.engine.driver`) and print its table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cpoison.engine.driver import run
from cpoison.engine.runtime import RunOptions
from cpoison.experiments.config import ExperimentConfig, load_config
from cpoison.experiments.report import table
from cpoison.store.artifacts import StoreSpec, split_stores

log = logging.getLogger(__name__)

DEMO_CONFIG = "configs/demo.yaml"


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    data_root: str | Path | None = None,
    store: StoreSpec = None,
    device: str | None = None,
    progress: bool = True,
    use_cache: bool = True,
    any_device: bool = False,
    threads: int | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run, resume or extend ``config`` into ``out``; returns the summary (summary.json).

    Models, poisons and evaluated cells go to the artifact store ``store`` (a folder or an
    fsspec URL; default ``$CPOISON_CACHE`` or ``~/.cache/cpoison``) and are reused from it.
    A list of stores is layered: the first is written, the others only read (e.g. a folder
    of cells exported from another machine, :mod:`cpoison.engine.cells`).
    ``use_cache=False`` writes to ``out/artifacts`` instead (the read-only layers are still
    read), so every model of a new run is trained afresh (and the run still resumes)."""
    opts = run_options(out, store, use_cache, data_root=str(data_root) if data_root else None,
                       device=device, progress=progress, any_device=any_device,
                       threads=threads)
    return run(config, out, opts, executor, executor_options)


def run_options(out: str | Path, store: StoreSpec, use_cache: bool, **options: Any
                ) -> RunOptions:
    """The engine's options of a run into ``out``: the first of ``store`` written, the
    others read only; ``use_cache=False`` writes ``out/artifacts`` instead (the read-only
    layers are still read). ``options``: the other :class:`RunOptions` fields."""
    written, layers = split_stores(store)
    if not use_cache:
        written = str(Path(out) / "artifacts")
    return RunOptions(store=written, layers=layers, **options)


def run_from_config(config_path: str | Path, overrides: list[str], out: str | Path,
                    **kwargs: Any) -> dict[str, Any]:
    """Load (a user's path, else a shipped config), run and print the table."""
    config = load_config(config_path, overrides)
    summary = run_experiment(config, out, **kwargs)
    print(table(summary["rows"], summary.get("grid_keys", [])))
    print(f"\nwall time {summary['wall_seconds']:.0f} s ({summary['trained_models']} models "
          f"trained); report: {Path(out) / 'report.md'}; results: "
          f"{Path(out) / 'results.sqlite'}")
    return summary
