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

Three kinds of pairs share that machinery:

* :func:`paired_differences`: two attacks on the same victims (ours minus a baseline);
* :func:`point_differences`: one attack at two grid points (a larger against a smaller
  perturbation bound, a defense against none), paired by (score, repeat, victim): the
  victims of a repeat are the same benign twins at every point of a grid that leaves the
  data, the targets and the victims alone;
* :func:`effect_intervals`: one attack's own per-cell effect, which already is a paired
  difference (the poisoned victim against its benign twin: the reduction ratio, or the
  change of coverage ``coverage_victim - coverage_benign``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

BASELINES = ("randun", "randga")
"""Labels of the random-noise baselines an attack is compared with by default."""

Value = Callable[[dict[str, Any]], float | None]
"""A per-row quantity: a metric, or a function of a row's metrics."""


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


def upper_bound(interval: dict[str, Any]) -> float | None:
    """The mirrored one-sided upper bound ``2 mean - lower`` (None without a lower bound)."""
    if interval.get("mean") is None or interval.get("lower") is None:
        return None
    return 2 * float(interval["mean"]) - float(interval["lower"])


def verdict(interval: dict[str, Any], threshold: float = 0.0) -> str:
    """``held`` when the one-sided lower bound is above ``threshold``; ``not held`` when the
    mirrored upper bound is below it; else ``indistinguishable`` (``not run`` without data)."""
    if interval.get("mean") is None:
        return "not run"
    upper = upper_bound(interval)
    if upper is None:
        return "indistinguishable"
    if interval["lower"] > threshold:
        return "held"
    if upper < threshold:
        return "not held"
    return "indistinguishable"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(
        value)


def _getter(metric: str | Value) -> Value:
    if callable(metric):
        return metric
    return lambda row: row.get(metric)


def repeat_interval(per_unit: dict[tuple[Any, Any], float]) -> dict[str, Any]:
    """The one-sided interval of per-(repeat, victim) values: averaged per repeat and put
    across repeats, or across victims when there is a single repeat (``units`` says which);
    ``repeats`` and ``victims`` (pairs in all) say how many stand behind it."""
    by_repeat: dict[Any, list[float]] = defaultdict(list)
    for (repeat, _victim), value in per_unit.items():
        by_repeat[repeat].append(value)
    if len(by_repeat) > 1:
        values, units = [float(np.mean(v)) for v in by_repeat.values()], "repeats"
    else:
        values, units = next(iter(by_repeat.values()), []), "victims"
    return {**one_sided_interval(values), "units": units, "repeats": len(by_repeat),
            "victims": sum(len(v) for v in by_repeat.values())}


def _point_key(point: dict[str, Any], drop: str | None = None) -> str:
    """The grid point as a key, without ``drop`` (and its dotted sub-keys)."""
    return repr(sorted((k, v) for k, v in point.items()
                       if drop is None or (k != drop and not k.startswith(drop + "."))))


def _unit_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (_point_key(row.get("point") or {}), row["score"],
            row.get("defense") or "none", row["repeat"], row["victim"])


def _intervals(pairs: dict[tuple[Any, ...], float]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Group ``(group..., repeat, victim) -> value`` by its group and put intervals on it."""
    per: dict[tuple[Any, ...], dict[tuple[Any, Any], float]] = defaultdict(dict)
    for key, value in pairs.items():
        per[key[:-2]][key[-2:]] = value
    return {group: repeat_interval(units) for group, units in per.items()}


def paired_differences(rows: list[dict[str, Any]], attack: str, baseline: str,
                       metric: str | Value) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(point, score, defense) -> the per-repeat means of ``attack - baseline`` on
    ``metric`` (a row field, or a function of a row) over the victims both were evaluated
    on, and their one-sided interval (``units``: repeats, or victims when there is one
    repeat)."""
    get = _getter(metric)
    a = {_unit_key(r): get(r) for r in rows if r["attack"] == attack}
    b = {_unit_key(r): get(r) for r in rows if r["attack"] == baseline}
    pairs = {key: float(value) - float(b[key]) for key, value in a.items()
             if _finite(value) and _finite(b.get(key))}
    return _intervals(pairs)  # type: ignore[return-value]


def point_differences(rows: list[dict[str, Any]], attack: str, metric: str | Value,
                      key: str, high: Any, low: Any, weight: float = 1.0,
                      ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """One attack at two values of the grid key ``key``: (other grid values, score,
    defense) -> the per-repeat means of ``metric at high - weight * metric at low``, paired
    by (score, repeat, victim), and their one-sided interval. With ``key="defense"`` the
    defense is the compared value (the group's defense is then ``high``); ``weight`` < 1
    asks whether ``high`` keeps at least that share of ``low`` (a defense that leaves 40 %
    of the undefended reduction: ``weight=0.4``)."""
    get = _getter(metric)

    def where(row: dict[str, Any]) -> Any:
        if key == "defense":  # the row names its defense; the grid may give parameters
            return row.get("defense") or "none"
        return (row.get("point") or {}).get(key)

    def pair_key(row: dict[str, Any]) -> tuple[Any, ...]:
        defense = high if key == "defense" else row.get("defense") or "none"
        return (_point_key(row.get("point") or {}, key), row["score"], defense,
                row["repeat"], row["victim"])

    mine = [r for r in rows if r["attack"] == attack]
    a = {pair_key(r): get(r) for r in mine if where(r) == high}
    b = {pair_key(r): get(r) for r in mine if where(r) == low}
    pairs = {k: float(v) - weight * float(b[k]) for k, v in a.items()
             if _finite(v) and _finite(b.get(k))}
    return _intervals(pairs)  # type: ignore[return-value]


def effect_intervals(rows: list[dict[str, Any]], attack: str, metric: str | Value,
                     ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(point, score, defense) -> the per-repeat means of one attack's per-cell ``metric``
    (a poisoned victim against its benign twin, e.g. the reduction ratio) and their
    one-sided interval."""
    get = _getter(metric)
    pairs = {_unit_key(r): float(v) for r in rows if r["attack"] == attack
             and _finite(v := get(r))}
    return _intervals(pairs)  # type: ignore[return-value]


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
