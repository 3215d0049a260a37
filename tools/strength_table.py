"""The strength report's table from a run's summary.json: per grid point and attack, per
score the reduction ratio, the normalized reduction, the paired difference to the better
random baseline on the same victims (mean +/- s.e., one-sided 95 % lower bound, verdict),
coverage benign / poisoned and consistency; crafting time.

Usage: python tools/strength_table.py RUN_OR_SUMMARY_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pm(cell: dict | None) -> str:
    if not cell or cell.get("mean") is None:
        return "-"
    se = cell.get("se")
    return f"{cell['mean']:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def main(argv: list[str] | None = None) -> None:
    path = Path((argv or sys.argv[1:])[0])
    summary = json.loads((path / "summary.json" if path.is_dir() else path).read_text())
    paired = {(p["attack"], p["score"], p["point"]): p for p in summary.get("paired", [])}
    print("| grid point | attack | score | reduction | normalized | minus better baseline "
          "(paired) | 95 % lower bound | verdict | coverage benign / poisoned | consistency "
          "| n | craft s |")
    print("|---" * 12 + "|")
    for r in summary["rows"]:
        point = repr(sorted((r.get("point") or {}).items()))
        bases = ", ".join(f"{k}={v}" for k, v in (r.get("point") or {}).items())
        p = paired.get((r["attack"], r["score"], point))
        diff = lower = verdict = "-"
        if p and p.get("mean") is not None:
            diff = f"{p['mean']:+.3f}" + (f" ± {p['se']:.3f}" if p.get("se") else "")
            lower = f"{p['lower']:+.3f}" if p.get("lower") is not None else "-"
            verdict = f"{p['verdict']} (vs {p['baseline']})"
        cov = f"{pm(r.get('coverage_benign'))} / {pm(r.get('coverage_victim'))}"
        craft = r.get("craft_seconds")
        print(f"| {bases} | {r['attack']} | {r['score']} | {pm(r.get('reduction_ratio'))} | "
              f"{pm(r.get('normalized_reduction'))} | {diff} | {lower} | {verdict} | {cov} | "
              f"{pm(r.get('consistency'))} | {r['n_victims']} x {r['n_repeats']} | "
              f"{craft:.1f} |" if craft is not None else "- |")


if __name__ == "__main__":
    main()
