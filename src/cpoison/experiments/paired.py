"""Paired comparisons (SPEC 6): an attack against a baseline on the same victims.

Every cell pairs a poisoned victim with its benign twin (same initial weights and data
order), and every attack of a repeat is evaluated on the same benign victims, so two attacks
can be compared victim by victim: the per-victim difference of their effect (e.g. the
reduction ratio) removes the victim-to-victim variation both share. The differences are
averaged per repeat (repeats are the independent draws: target class, targets, surrogate and
victims), and a one-sided interval is put across repeats with Student's t (scipy.stats):
with few repeats the t quantile is the honest width, and the paired mean of independent
repeats is close to normal by the central limit theorem. With a single repeat the victims
are the units (they share the repeat's targets and poisons, so that interval is narrower
than one across repeats would be; ``units`` says which).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

BASELINES = ("randun", "randga")
"""Labels of the random-noise baselines an attack is compared with by default."""


def one_sided_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, standard error and the one-sided ``level`` lower bound of the mean of
    ``values`` (Student's t with n - 1 degrees of freedom); ``lower`` is None for n < 2."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return {"mean": None, "se": None, "lower": None, "n": 0}
    mean = float(arr.mean())
    if n < 2:
        return {"mean": mean, "se": None, "lower": None, "n": n}
    se = float(arr.std(ddof=1) / math.sqrt(n))
    lower = mean - float(stats.t.ppf(level, n - 1)) * se
    return {"mean": mean, "se": se, "lower": lower, "n": n}


def verdict(interval: dict[str, Any], threshold: float = 0.0) -> str:
    """``held`` when the one-sided lower bound is above ``threshold``; ``not held`` when the
    mirrored upper bound is below it; else ``indistinguishable`` (``not run`` without data)."""
    if interval.get("mean") is None:
        return "not run"
    if interval.get("lower") is None:
        return "indistinguishable"
    upper = 2 * interval["mean"] - interval["lower"]
    if interval["lower"] > threshold:
        return "held"
    if upper < threshold:
        return "not held"
    return "indistinguishable"


def _unit_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (repr(sorted((row.get("point") or {}).items())), row["score"],
            row.get("defense") or "none", row["repeat"], row["victim"])


def paired_differences(rows: list[dict[str, Any]], attack: str, baseline: str,
                       metric: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(point, score, defense) -> the per-repeat means of ``attack - baseline`` on
    ``metric`` over the victims both were evaluated on, and their one-sided interval
    (``units``: repeats, or victims when there is one repeat)."""
    a = {_unit_key(r): r.get(metric) for r in rows if r["attack"] == attack}
    b = {_unit_key(r): r.get(metric) for r in rows if r["attack"] == baseline}
    per: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    for key, value in a.items():
        other = b.get(key)
        if value is None or other is None or math.isnan(value) or math.isnan(other):
            continue
        per[key[:3]][key[3]].append(value - other)
    out = {}
    for group, by_repeat in per.items():
        if len(by_repeat) > 1:
            values, units = [float(np.mean(v)) for v in by_repeat.values()], "repeats"
        else:
            values, units = next(iter(by_repeat.values())), "victims"
        out[group] = {**one_sided_interval(values), "units": units,
                      "victims": sum(len(v) for v in by_repeat.values())}
    return out


def paired_comparisons(rows: list[dict[str, Any]], metric: str,
                       baselines: Sequence[str] = BASELINES) -> list[dict[str, Any]]:
    """Each non-baseline attack against the better baseline (the one with the larger mean
    ``metric`` on the same victims) per (point, score, defense): the paired difference, its
    one-sided 95 % lower bound and the verdict of "the attack beats the baselines"."""
    present = [b for b in baselines if any(r["attack"] == b for r in rows)]
    if not present:
        return []
    attacks = list(dict.fromkeys(r["attack"] for r in rows if r["attack"] not in present))
    out = []
    for attack in attacks:
        diffs = {b: paired_differences(rows, attack, b, metric) for b in present}
        groups = dict.fromkeys(g for d in diffs.values() for g in d)
        for group in groups:
            candidates = {b: d[group] for b, d in diffs.items() if group in d}
            # the better baseline: the smallest mean difference (ours minus it)
            best = min(candidates, key=lambda b: candidates[b]["mean"])
            interval = candidates[best]
            out.append({"attack": attack, "point": group[0], "score": group[1],
                        "defense": group[2], "baseline": best, "metric": metric, **interval,
                        "verdict": verdict(interval)})
    return out
