"""``cpoison attack`` / ``cpoison demo``: validate a config, run (or resume) the protocol
into an output folder, and write summary.json, report.md and the plots there."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml

from cpoison.errors import ConfigError
from cpoison.experiments.baseline import environment
from cpoison.experiments.config import ExperimentConfig, load_config, validate_config
from cpoison.experiments.presets import get_preset
from cpoison.experiments.protocol import run_protocol
from cpoison.experiments.report import table, write_report
from cpoison.experiments.store import ResultStore
from cpoison.experiments.summary import summarize_rows
from cpoison.experiments.workspace import Workspace
from cpoison.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def demo_config_path() -> Path:
    """``configs/demo.yaml`` of the current folder, else of the source checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        path = base / "configs" / "demo.yaml"
        if path.is_file():
            return path
    raise ConfigError("configs/demo.yaml not found; run from the cpoison checkout or pass "
                      "--config PATH")


def _claim_output(out: Path, config: ExperimentConfig) -> None:
    """Write the resolved config; refuse to mix results of a different config in ``out``.

    The stored config is compared after validation, so a run written before a new setting
    was added (stored without it, hence at its default) still resumes."""
    resolved = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    path = out / "config.resolved.yaml"
    if holds_other_config(out, config):
        raise ConfigError(f"{out} holds results of a different config; use another "
                          f"--out or delete {out}")
    atomic_write_text(path, resolved)


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Run or resume ``config`` into ``out``; returns the summary written to summary.json.
    Models come from the model cache (``cache_dir``, default ``$CPOISON_CACHE``) unless
    ``use_cache`` is False."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _claim_output(out, config)
    preset = get_preset(config.dataset, config.preset)
    if config.victim_model and config.victim_model != preset.model:
        preset = preset.model_copy(update={"model": config.victim_model, "model_kwargs": {}})
    ws = Workspace.open(preset, seed=config.seed, setting=config.setting, data_root=data_root,
                        cache_dir=cache_dir, device=device, progress=progress,
                        use_cache=use_cache)
    store = ResultStore(out / "results.sqlite")
    try:
        run_protocol(ws, config, out, store)
        rows = store.rows()
    finally:
        store.close()
    order = {(a, s): (i, k) for i, a in enumerate(config.labels())
             for k, s in enumerate(config.scores)}
    summary = {
        "rows": sorted(summarize_rows(rows), key=lambda r: order[(r["attack"], r["score"])]),
        "environment": environment(),
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": ws.train_seconds,
    }
    atomic_write_json(out / "summary.json", summary)
    write_report(out, summary, config.model_dump(mode="json"))
    return summary


def holds_other_config(out: Path, config: ExperimentConfig) -> bool:
    """Whether ``out`` holds results of a config other than ``config``."""
    path = out / "config.resolved.yaml"
    if not path.exists():
        return False
    try:
        stored = validate_config(yaml.safe_load(path.read_text()) or {}, str(path))
    except (ConfigError, yaml.YAMLError):
        return True
    return stored != config


def set_aside(out: Path) -> Path:
    """Rename ``out`` to the first free ``out.previous-N`` (nothing is deleted)."""
    n = 1
    while (target := out.with_name(f"{out.name}.previous-{n}")).exists():
        n += 1
    out.rename(target)
    return target


def run_from_config(
    config_path: str | Path, overrides: list[str], out: str | Path,
    set_aside_other: bool = False, **kwargs: Any,
) -> dict[str, Any]:
    """Load, run and print the table. With ``set_aside_other`` (``cpoison demo``) an ``out``
    holding another config's results (an older demo) is renamed, not refused."""
    config = load_config(config_path, overrides)
    if set_aside_other and holds_other_config(Path(out), config):
        moved = set_aside(Path(out))
        log.warning("%s held results of another config (an earlier demo); moved them to %s",
                    out, moved)
    summary = run_experiment(config, out, **kwargs)
    print(table(summary["rows"]))
    print(f"\nwall time {summary['wall_seconds']:.0f} s; report: {Path(out) / 'report.md'}; "
          f"results: {Path(out) / 'results.sqlite'}")
    return summary
