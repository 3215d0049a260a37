"""Crafting cost and effect, the paper's Table 2 in small (SPEC 9, E4).

Runs ``configs/cpu/table2.yaml`` (same targets, poison bases, budget and victims for every
attack) through the normal protocol, then prints

1. method, reduction ratio (mean +/- s.e.), crafting seconds, time relative to first order,
   for first order, second order and MetaPoison;
2. ours (first order) against misclassification poisoning at the same budget: reduction
   ratio, evaluation coverage, prediction consistency, share of targets misclassified;
3. every attack of the config: reduction ratio per score, crafting seconds and time relative
   to first order (``configs/cpu/crafting-ensembles.yaml``: K = 1, 2, 4 surrogates with and
   without retraining while crafting, against MetaPoison with as many surrogates).

Usage: python benchmarks/crafting.py [--config PATH] [--out DIR] [--set key=value ...]
       [--store DIR] [--quick]

``--quick`` runs the same attacks at a tiny size, in seconds (a smoke test, not a
measurement): scikit-learn's digits (preset ``cpu``), 10 targets of class 3, 5 % budget, one
victim pair, 3 crafting iterations (MetaPoison: 3 craft steps).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from cpoison.experiments.config import (
    ExperimentConfig,
    apply_overrides,
    read_config,
    validate_config,
)
from cpoison.experiments.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]

QUICK = {"dataset": "digits", "preset": "cpu", "targets": {"target_class": 3, "n_targets": 10},
         "budget": 0.05, "n_victims": 1, "n_repeats": 1}
QUICK_ITERATIONS = 3


def quick(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` at the ``--quick`` size: every attack's crafting cut to a few iterations."""
    raw = {**raw, **QUICK}
    raw.pop("grid", None)
    for attack in raw.get("attacks", []):
        if attack.get("name") == "metapoison":
            attack["craft_steps"] = QUICK_ITERATIONS
            attack["n_surrogates"] = min(attack.get("n_surrogates", 4), 2)
        elif attack.get("name") not in ("randun", "randga"):
            attack["crafting"] = {**attack.get("crafting", {}),
                                  "iterations": QUICK_ITERATIONS, "restarts": 1}
    return raw


def build_config(path: str, overrides: list[str], tiny: bool) -> ExperimentConfig:
    raw = read_config(path)
    if tiny:
        raw = quick(raw)
    return validate_config(apply_overrides(raw, overrides), str(path))


def _pm(cell: dict | None, digits: int = 3) -> str:
    if not cell or cell.get("mean") is None:
        return "-"
    se = cell.get("se")
    return f"{cell['mean']:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu" / "table2.yaml"))
    parser.add_argument("--out", default="runs/table2")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--store", "--cache-dir", dest="store", default=None,
                        help="artifact store (default $CPOISON_CACHE or ~/.cache/cpoison)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny size on digits, in seconds (a smoke test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = build_config(args.config, args.overrides, args.quick)
    summary = run_experiment(config, args.out, store=args.store, progress=False)
    rows = {r["attack"]: r for r in summary["rows"] if r["score"] == config.scores[0]}
    first = rows.get("first-order", {}).get("craft_seconds")
    print(f"\nTable 2 ({config.dataset}, {config.scores[0]}, budget {config.budget:.1%}, "
          f"{config.n_victims} victims x {config.n_repeats} repeats)")
    print(f"{'method':<18} {'reduction ratio':>18} {'craft s':>9} {'x first order':>14}")
    for name in ("first-order", "second-order", "metapoison"):
        if name not in rows:
            continue
        r = rows[name]
        rel = r["craft_seconds"] / first if first else float("nan")
        print(f"{name:<18} {_pm(r['reduction_ratio']):>18} {r['craft_seconds']:>9.1f} "
              f"{rel:>14.2f}")
    print(f"\n{'attack':<18} {'reduction ratio':>18} {'coverage':>16} {'consistency':>16} "
          f"{'misclassified':>16}")
    for name in ("first-order", "misclassification"):
        if name not in rows:
            continue
        r = rows[name]
        acc = r.get("target_accuracy_victim") or {}
        mis = {"mean": 1 - acc["mean"], "se": acc.get("se")} if acc.get("mean") is not None \
            else None
        print(f"{name:<18} {_pm(r['reduction_ratio']):>18} {_pm(r['coverage_victim']):>16} "
              f"{_pm(r['consistency']):>16} {_pm(mis):>16}")
    print(f"\nevery attack ({', '.join(config.scores)})")
    print(f"{'attack':<18} " + " ".join(f"{s:>18}" for s in config.scores)
          + f" {'craft s':>9} {'x first order':>14}")
    by_score = {(r["attack"], r["score"]): r for r in summary["rows"]}
    for name in dict.fromkeys(r["attack"] for r in summary["rows"]):
        craft = rows.get(name, {}).get("craft_seconds") or 0.0
        rel = craft / first if first else float("nan")
        cells = " ".join(f"{_pm(by_score.get((name, s), {}).get('reduction_ratio')):>18}"
                         for s in config.scores)
        print(f"{name:<18} {cells} {craft:>9.1f} {rel:>14.2f}")
    print(f"\nwall time {summary['wall_seconds']:.0f} s; report in {args.out}/report.md")


if __name__ == "__main__":
    main()
