"""``cpoison reproduce``: run the paper's experiments (SPEC 9) through the engine and write
the reproduction report (issue 12).

Each selected experiment's configs at the chosen scale run into ``OUT/<experiment>/...``
with :func:`cpoison.api.runner.run_experiment`, so every part is a normal run
folder: a second invocation resumes it (finished cells are skipped), ``cpoison report`` on
it rebuilds its own report, and all parts share the artifact store (a surrogate or victim
that two experiments need is trained once). Every config, and every grid cell of it, is
validated before anything runs. A part that fails at run time (a user error found by the
engine's pre-flight, such as too few targets of a benign set size) is recorded and the
others still run; the report names it and the command exits 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from cpoison.engine.grid import expand_grid
from cpoison.errors import ConfigError, CpoisonError
from cpoison.io import atomic_write_json
from cpoison.reproduce import report
from cpoison.reproduce.experiments import check_scale, runs_needed, select

log = logging.getLogger(__name__)


def reproduce(
    experiments: list[str] | None, scale: str, out: str | Path, *,
    overrides: list[str] | None = None, report_only: bool = False, command: str = "",
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Run ``experiments`` (ids E1..E7; all when empty) at ``scale`` into ``out`` and write
    ``out/report.html`` and ``out/report.md``. ``run_kwargs`` go to
    :func:`~cpoison.api.runner.run_experiment` (store, executor, device, ...);
    ``overrides`` (``KEY=VALUE``) apply to every config (e.g. ``n_victims=1``).
    Returns the manifest written to ``out/reproduce.json``."""
    from cpoison.api.runner import run_experiment
    from cpoison.engine.driver import check_output_folder

    check_scale(scale)
    chosen = select(experiments)
    out = Path(out)
    todo = runs_needed(chosen, scale)
    configs = {}
    for part in todo:  # every config and grid cell checked before anything runs
        config = part.load(overrides)
        expand_grid(config)
        configs[part.config_name] = config
    check_output_folder(out)
    manifest_path = out / "reproduce.json"
    manifest: dict[str, Any] = {"scale": scale, "experiments": chosen, "command": command,
                                "parts": {}, "failures": {}}
    if manifest_path.is_file():
        import json

        old = json.loads(manifest_path.read_text())
        if old.get("scale") not in (None, scale):
            raise ConfigError(f"{out} holds a reproduction at scale {old['scale']!r}, not "
                              f"{scale!r}; use another --out")
        manifest["parts"] = old.get("parts", {})
        if report_only:  # the report names the command that ran the experiments
            manifest.update(command=old.get("command", command),
                            experiments=old.get("experiments", chosen),
                            failures=old.get("failures", {}))
    if not report_only:
        for part in todo:
            start = time.perf_counter()
            folder = part.folder(out)
            log.info("%s: %s -> %s", part.label, part.config_name, folder)
            try:
                summary = run_experiment(configs[part.config_name], folder, **run_kwargs)
            except CpoisonError as err:
                log.error("%s failed: %s", part.label, err)
                manifest["failures"][part.label] = str(err)
                continue
            manifest["parts"][part.label] = {
                "config": part.config_name, "folder": str(folder.relative_to(out)),
                "seconds": round(time.perf_counter() - start, 1),
                "trained_models": summary.get("trained_models"),
            }
    atomic_write_json(manifest_path, manifest)
    page, md = report.write(out, scale)
    manifest.update(report_html=str(page), report_md=str(md))
    return manifest
