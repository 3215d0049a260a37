"""Does a defense halve the attack's effect? Paired per victim, from a run's cells.

For each defense of a run with a ``defense`` grid and each score: the per-victim
``reduction with the defense - 0.5 x reduction without it`` (the same victim index, seeds
and poisons: :func:`cpoison.experiments.paired.point_differences`), averaged per repeat,
with a one-sided 95 % Student t interval across repeats. The defense halves the reduction
when the whole interval is below zero; the clean-accuracy change is the benign victims'
accuracy under the defense minus without it, in points (mean over victims).

Usage: python tools/defense_halving.py RUN [--attack LABEL] [--metric reduction_ratio]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from cpoison.experiments.paired import point_differences
from cpoison.experiments.store import ResultStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--attack", default=None)
    parser.add_argument("--metric", default="reduction_ratio")
    args = parser.parse_args()
    db = ResultStore(Path(args.run) / "results.sqlite")
    try:
        rows = [{**row, "point": cell["point"]} for cell in db.cells() for row in cell["rows"]]
    finally:
        db.close()
    attack = args.attack or rows[0]["attack"]
    defenses = list(dict.fromkeys(r.get("defense") or "none" for r in rows))
    print("| defense | score | with - 0.5 x without (paired) | 95 % upper bound | halves? | "
          "clean acc. change (pts) | n |")
    print("|---|---|---|---|---|---|---|")
    for defense in defenses:
        if defense == "none":
            continue
        acc = [r["accuracy_benign"] for r in rows if (r.get("defense") or "none") == defense
               and r.get("accuracy_benign") is not None]
        acc0 = [r["accuracy_benign"] for r in rows if (r.get("defense") or "none") == "none"
                and r.get("accuracy_benign") is not None]
        change = 100 * (statistics.fmean(acc) - statistics.fmean(acc0))
        diffs = point_differences(rows, attack, args.metric, "defense", defense, "none",
                                  weight=0.5)
        for (_, score, _), iv in sorted(diffs.items(), key=lambda kv: kv[0][1]):
            if iv.get("mean") is None:
                continue
            upper = 2 * iv["mean"] - iv["lower"] if iv.get("lower") is not None else None
            halves = "yes" if upper is not None and upper < 0 else "no"
            repeats = iv.get("repeats") or iv["n"]
            bound = "-" if upper is None else f"{upper:+.3f}"
            se = "-" if iv.get("se") is None else f"{iv['se']:.3f}"
            print(f"| {defense} | {score} | {iv['mean']:+.3f} ± {se} | {bound} | {halves} | "
                  f"{change:+.2f} | {iv['victims'] // repeats} x {repeats} |")


if __name__ == "__main__":
    main()
