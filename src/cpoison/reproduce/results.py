"""Reading a reproduction's runs back: each part's run folder (``summary.json``,
``config.resolved.yaml`` and the per-victim cells of ``results.sqlite``, as
:func:`cpoison.engine.driver.run` writes them) and helpers to pick rows and figures out of
it (SPEC 6 statistics: mean and standard error; the claims are decided on the cells)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from cpoison.reproduce.experiments import Part


@dataclass
class RunResult:
    """One finished (or partly finished) run of a part: its resolved config, its summary
    and its ``cells`` (one row per poisoned victim and score, as the run's database or a
    folder of exported cells holds them; the paired statistics of the claims use these)."""

    part: Part
    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)

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
        """``Fashion-MNIST, 4 victims x 5 repeats, ...``: what stands behind the numbers."""
        v, r = self.config.get("n_victims"), self.config.get("n_repeats")
        return (f"{dataset_name(self.dataset)}, preset {self.config.get('preset')}, "
                f"{v} victim{'s' if v != 1 else ''} x {r} repeat{'s' if r != 1 else ''}, "
                f"alpha {self.config.get('alpha')}; targets: {target_selection(self.config)}")

    @property
    def selection(self) -> str:
        """The short form of the run's target selection (:func:`short_selection`)."""
        return short_selection(self.config)


DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "tiny-imagenet": "Tiny-ImageNet", "mnist": "MNIST",
                 "digits": "digits"}


def dataset_name(name: str) -> str:
    """A dataset's name as a paper writes it (``fashion-mnist`` -> ``Fashion-MNIST``)."""
    return DATASET_NAMES.get(name, name)


def _set_rule(targets: dict[str, Any], grid: dict[str, Any]) -> tuple[str, str]:
    """(long, short) description of the targets' surrogate set-size rule."""
    score = str(targets.get("set_size_score") or "hps").upper()
    sizes = grid.get("targets.set_size")
    if sizes:
        listed = ", ".join(str(s) for s in sizes)
        return (f"whose surrogate {score} set holds exactly {listed} labels (one grid "
                "point each)", f"set = {listed}")
    if targets.get("set_size") is not None:
        size = int(targets["set_size"])
        return (f"whose surrogate {score} set holds exactly {size} "
                f"label{'s' if size != 1 else ''}", f"set = {size}")
    if targets.get("min_set_size") is not None:
        size = int(targets["min_set_size"])
        return (f"whose surrogate {score} set holds >= {size} labels (targets with room)",
                f"set >= {size}")
    return "of any surrogate set size", "any set"


def target_selection(config: dict[str, Any]) -> str:
    """How a run drew its targets, in words: ``50 test images of a random class per repeat
    whose surrogate HPS set holds >= 2 labels (targets with room), classified correctly``."""
    targets = config.get("targets") or {}
    cls = targets.get("target_class")
    which = "a random class per repeat" if cls is None else f"class {cls}"
    excluded = targets.get("exclude_classes")
    if cls is None and excluded:
        which += f" (never {', '.join(str(c) for c in excluded)})"
    rule, _ = _set_rule(targets, config.get("grid") or {})
    correct = ", classified correctly by the surrogate" if targets.get(
        "correct_only", True) else ""
    return f"{targets.get('n_targets', 50)} test images of {which} {rule}{correct}"


def short_selection(config: dict[str, Any]) -> str:
    """The target selection in a few characters for a table column: ``set >= 2``."""
    return _set_rule(config.get("targets") or {}, config.get("grid") or {})[1]


def load_cells(folder: Path) -> list[dict[str, Any]]:
    """The per-victim rows of the cells a run folder planned (its ``results.sqlite``); empty
    when the folder has no database."""
    from cpoison.experiments.store import ResultStore

    path = folder / "results.sqlite"
    if not path.is_file():
        return []
    db = ResultStore(path)
    try:
        plan = db.fact("plan")
        return db.rows(plan) if plan else db.rows()
    finally:
        db.close()


def load_run(part: Part, out: Path) -> RunResult | None:
    """The part's run under ``out``, or None when it has no summary yet (not run)."""
    folder = part.folder(out)
    summary, config = folder / "summary.json", folder / "config.resolved.yaml"
    if not summary.is_file() or not config.is_file():
        return None
    data = json.loads(summary.read_text())
    if not data.get("rows"):
        return None
    return RunResult(part, folder, yaml.safe_load(config.read_text()) or {}, data,
                     load_cells(folder))


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
