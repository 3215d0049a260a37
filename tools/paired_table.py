"""Print each attack's paired difference to the better random baseline, pooled over run
folders (e.g. one run per tuning class): per run, the mean over its victims of the
per-victim difference on the same benign twins; then mean +/- s.e. over the runs' victims.

Usage: python tools/paired_table.py RUN [RUN ...] [--metric reduction_ratio]
       [--scores hps,aps]

``RUN`` may join several run folders with commas (``runs/a,runs/b``): their rows are merged,
so attacks of one run are compared with the baselines of another on the same victims (runs
of one config family share victims, benign models and cells through the artifact store).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from cpoison.experiments.paired import BASELINES
from cpoison.experiments.store import ResultStore


def victim_rows(run: str) -> list[dict]:
    rows: list[dict] = []
    for folder in run.split(","):
        db = ResultStore(Path(folder) / "results.sqlite")
        try:
            rows += db.rows()
        finally:
            db.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--metric", default="reduction_ratio")
    parser.add_argument("--scores", default="hps,aps,raps")
    args = parser.parse_args(argv)
    scores = args.scores.split(",")
    effect: dict[tuple[str, str], list[float]] = {}
    diffs: dict[tuple[str, str], list[float]] = {}
    craft: dict[str, list[float]] = {}
    for run in args.runs:
        rows = victim_rows(run)
        by = {(r["attack"], r["score"], r["repeat"], r["victim"]): r for r in rows}
        for (attack, score, repeat, victim), r in by.items():
            if score not in scores:
                continue
            value = r.get(args.metric)
            effect.setdefault((attack, score), []).append(value)
            if r.get("craft_seconds") is not None and score == scores[0]:
                craft.setdefault(attack, []).append(r["craft_seconds"])
            if attack in BASELINES:
                continue
            base = [by[(b, score, repeat, victim)].get(args.metric) for b in BASELINES
                    if (b, score, repeat, victim) in by]
            if base and value is not None and not math.isnan(value):
                diffs.setdefault((attack, score), []).append(value - max(base))

    def pm(values: list[float]) -> str:
        arr = np.array([v for v in values if v is not None and not math.isnan(v)])
        if not arr.size:
            return "-"
        se = arr.std(ddof=1) / math.sqrt(arr.size) if arr.size > 1 else float("nan")
        return f"{arr.mean():+.3f} ± {se:.3f}"

    attacks = list(dict.fromkeys(a for a, _ in effect))
    head = "| attack | " + " | ".join(
        f"{s} {args.metric} | {s} minus better baseline" for s in scores)
    print(head + " | mean diff (scores) | craft s |")
    print("|---" * (2 + 2 * len(scores) + 1) + "|")
    for attack in attacks:
        cells = []
        means = []
        for s in scores:
            cells += [pm(effect.get((attack, s), [])), pm(diffs.get((attack, s), []))]
            d = [v for v in diffs.get((attack, s), []) if not math.isnan(v)]
            if d:
                means.append(float(np.mean(d)))
        mean = f"{np.mean(means):+.3f}" if means else "-"
        c = craft.get(attack)
        print(f"| {attack} | " + " | ".join(cells)
              + f" | {mean} | {np.mean(c):.1f} |" if c else f"| {attack} | "
              + " | ".join(cells) + f" | {mean} | - |")


if __name__ == "__main__":
    main()
