"""Each defense against no defense (SPEC 7; issue 11's question): how much of the attack's
effect a defense leaves, and what it costs in clean accuracy.

For every row under a defense, the row of the same attack, score and other grid values
without defense gives the reference. The table shows the attack's effect (the reduction, or
for underconfidence the expansion, ratio) under both, the share the defense leaves
(defended / undefended mean), the change in the benign victims' clean accuracy (the cost of
the defense alone, in points), and whether the defense at least halves the effect while
costing at most ``max_cost`` points. :func:`cpoison.experiments.report.comparison_table`
writes it as the report's "Each defense against none".
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_to_none"]


def _context(row: dict[str, Any]) -> tuple[Any, ...]:
    point = {k: v for k, v in (row.get("point") or {}).items()
             if k != "defense" and not k.startswith("defense.")}
    return row["attack"], row["score"], tuple(sorted((k, repr(v)) for k, v in point.items()))


def _mean(row: dict[str, Any], key: str) -> float | None:
    cell = row.get(key)
    return cell.get("mean") if isinstance(cell, dict) else None


def compare_to_none(rows: list[dict[str, Any]], metric: str,
                    max_cost: float = 1.0) -> list[dict[str, Any]]:
    """One record per defended summary row with a ``none`` twin: ``defense``, ``attack``,
    ``score``, ``point`` (the other grid values), ``effect_none`` / ``effect`` (the
    ``metric`` cells, mean and s.e.), ``left`` (defended / undefended mean, ``None`` when
    the undefended effect is not positive), ``accuracy_change`` (benign clean accuracy
    under the defense minus without, in points) and ``halves`` (``left <= 0.5`` and a cost
    of at most ``max_cost`` points)."""
    none = {_context(r): r for r in rows if (r.get("defense") or "none") == "none"}
    out = []
    for row in rows:
        if (row.get("defense") or "none") == "none" or row.get("unsupported"):
            continue
        ref = none.get(_context(row))
        if ref is None or ref.get("unsupported"):
            continue
        base, eff = _mean(ref, metric), _mean(row, metric)
        left = eff / base if base is not None and eff is not None and base > 0 else None
        acc_ref, acc = _mean(ref, "accuracy_benign"), _mean(row, "accuracy_benign")
        change = 100 * (acc - acc_ref) if acc is not None and acc_ref is not None else None
        out.append({
            "defense": row["defense"], "attack": row["attack"], "score": row["score"],
            "point": _context(row)[2], "effect_none": ref.get(metric),
            "effect": row.get(metric), "left": left, "accuracy_change": change,
            "halves": (left is not None and change is not None and left <= 0.5
                       and change >= -max_cost),
            "n_victims": row.get("n_victims"),
        })
    return out
