"""A tiny attack experiment on scikit-learn's digits (MLP preset, two victims, five crafting
iterations): a full run takes a few seconds on one thread."""

from __future__ import annotations

import copy
import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cpoison.api.runner import run_experiment
from cpoison.attacks import PoisonSet
from cpoison.engine.artifacts import ArtifactStore
from cpoison.experiments.config import ExperimentConfig, validate_config

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": "digits",
    "preset": "cpu",
    "seed": 0,
    "alpha": 0.1,
    "scores": ["hps", "aps"],
    "goal": {"kind": "overconfidence"},
    "targets": {"target_class": 3, "n_targets": 10},
    "budget": 0.05,
    "eps": "16/255",
    "n_victims": 2,
    "n_repeats": 1,
    "attacks": [
        {"name": "ours", "loss": "l3", "crafting": {"iterations": 5, "restarts": 1}},
        {"name": "randun"},
    ],
}
LABELS = ("ours-l3-o1-hps", "randun")
TIMINGS = {"craft_seconds", "wall_seconds", "environment", "trained_models"}


def tiny_raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TINY)
    raw.update(changes)
    return raw


def tiny_config(**changes: Any) -> ExperimentConfig:
    return validate_config(tiny_raw(**changes))


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models train 10-100x faster on one intra-op thread on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class Run:
    out: Path
    cache: Path
    summary: dict[str, Any]


def run_tiny(root: Path, config: ExperimentConfig | None = None) -> Run:
    """Run the tiny config into ``root/out`` with a fresh model cache ``root/cache``."""
    out, cache = root / "out", root / "cache"
    with one_thread():
        summary = run_experiment(config or tiny_config(), out, store=cache, progress=False)
    return Run(out, cache, summary)


def comparable(value: Any) -> Any:
    """``value`` without timings, with NaN made comparable."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def stored_rows(out: Path) -> list[dict[str, Any]]:
    """Every per-victim row of ``out/results.sqlite`` (read with plain sqlite3), in
    (repeat, attack, victim, score, grid values) order, with that key added."""
    conn = sqlite3.connect(out / "results.sqlite")
    try:
        cur = conn.execute("SELECT rows FROM cells")
        rows = [row for (data,) in cur.fetchall() for row in json.loads(data)]
    finally:
        conn.close()
    for row in rows:  # a grid point's values (budget, eps, alpha) keep the order total
        row["_key"] = [row["repeat"], row["attack"], row["victim"], row["score"],
                       row.get("budget"), row.get("eps"), row.get("alpha"),
                       str(row.get("defense"))]
    return sorted(rows, key=lambda r: r["_key"])


def stored_poisons(store: Path, label: str) -> list[PoisonSet]:
    """The poison sets of attack ``label`` in the artifact store ``store``."""
    sets = []
    for sidecar in sorted((store / "poisons").glob("*.json")):
        if json.loads(sidecar.read_text())["meta"].get("attack") == label:
            sets.append(ArtifactStore(store).load_poisons(sidecar.stem))
    return sets
