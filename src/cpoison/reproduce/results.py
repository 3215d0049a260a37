"""Reading a reproduction's runs back: each part's run folder (``summary.json`` and
``config.resolved.yaml``, as :func:`cpoison.engine.driver.run` writes them) and helpers to
pick rows and figures out of it (SPEC 6 statistics: mean and standard error)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from cpoison.reproduce.experiments import Part


@dataclass
class RunResult:
    """One finished (or partly finished) run of a part: its resolved config and summary."""

    part: Part
    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.summary.get("rows", []))

    @property
    def goal(self) -> str:
        return str((self.config.get("goal") or {}).get("kind", "overconfidence"))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "?"))

    def where(self) -> str:
        """``fashion-mnist, 2 victims x 2 repeats``: what stands behind the numbers."""
        v, r = self.config.get("n_victims"), self.config.get("n_repeats")
        return (f"{self.dataset}, preset {self.config.get('preset')}, "
                f"{v} victim{'s' if v != 1 else ''} x {r} repeat{'s' if r != 1 else ''}, "
                f"alpha {self.config.get('alpha')}")


def load_run(part: Part, out: Path) -> RunResult | None:
    """The part's run under ``out``, or None when it has no summary yet (not run)."""
    folder = part.folder(out)
    summary, config = folder / "summary.json", folder / "config.resolved.yaml"
    if not summary.is_file() or not config.is_file():
        return None
    data = json.loads(summary.read_text())
    if not data.get("rows"):
        return None
    return RunResult(part, folder, yaml.safe_load(config.read_text()) or {}, data)


def value(row: dict[str, Any] | None, metric: str) -> tuple[float | None, float | None]:
    """(mean, se) of a summary metric; (None, None) when absent."""
    if row is None:
        return None, None
    cell = row.get(metric)
    if isinstance(cell, dict):
        return cell.get("mean"), cell.get("se")
    if isinstance(cell, (int, float)):
        return float(cell), None
    return None, None


def mean(row: dict[str, Any] | None, metric: str) -> float | None:
    return value(row, metric)[0]


def fmt(row: dict[str, Any] | None, metric: str, digits: int = 2) -> str:
    """``0.46 ± 0.02`` (``-`` when absent)."""
    m, se = value(row, metric)
    if m is None:
        return "-"
    return f"{m:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def method(row: dict[str, Any]) -> str:
    """Display name of a row's attack: ``ours (l3)``, ``ours (l3, 2nd order)``,
    ``MetaPoison``, ``RandUn``, ``RandGa`` (by its objective, not its label)."""
    loss, order = row.get("loss"), row.get("order")
    if loss == "metapoison":
        return "MetaPoison"
    if loss in ("l2", "l3"):
        return f"ours ({loss}, 2nd order)" if order == 2 else f"ours ({loss})"
    if loss == "misclassification":
        return "misclassification"
    return {"randun": "RandUn", "randga": "RandGa"}.get(str(row["attack"]), str(row["attack"]))


def is_ours(row: dict[str, Any]) -> bool:
    return row.get("loss") in ("l2", "l3")


def is_baseline(row: dict[str, Any]) -> bool:
    return row.get("loss") is None and method(row) in ("RandUn", "RandGa")


def as_number(value: Any) -> float | None:
    """A grid value as a number (``"16/255"`` included); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        return None


def point(row: dict[str, Any], key: str) -> Any:
    """A row's value of a grid key; ``budget`` and ``eps`` fall back to the row's own."""
    value_ = (row.get("point") or {}).get(key)
    if value_ is None and key in row:
        value_ = row[key]
    return value_


def by_budget(rows: list[dict[str, Any]]) -> list[float]:
    return sorted({float(r["budget"]) for r in rows if r.get("budget") is not None})


def pick(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Rows whose fields (``method=``, ``score=``, ``budget=``, ``defense=``) all match."""
    out = []
    for r in rows:
        ok = True
        for key, want in match.items():
            have = method(r) if key == "method" else r.get(key)
            if key == "budget" and have is not None:
                ok &= abs(float(have) - float(want)) < 1e-12
            elif key == "defense":
                ok &= (have or "none") == want
            else:
                ok &= have == want
        if ok:
            out.append(r)
    return out


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    found = pick(rows, **match)
    return found[0] if found else None


def methods(rows: list[dict[str, Any]]) -> list[str]:
    """Display names of the attacks in ``rows``, in first-seen order."""
    return list(dict.fromkeys(method(r) for r in rows))


def scores(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["score"]) for r in rows))
