"""The claims of the paper's Sec. 5, each decided from a reproduction's per-victim cells by
paired statistics (SPEC 6, 9; issues 12 and 20).

Every claim is a statement about differences measured on the same victims:

* an attack's effect: each poisoned victim against its benign twin (same initial weights and
  data order), i.e. the reduction (or expansion) ratio of its targets' sets, or the change
  of coverage ``coverage_victim - coverage_benign``;
* ours against a baseline (RandUn, RandGa, MetaPoison, l2): the two attacks' effects on the
  same benign victims, cell by cell;
* one attack at two grid points (a larger against a smaller bound, a defense against none):
  paired by (score, repeat, victim), whose benign twins are the same.

The per-victim differences are averaged per repeat and a one-sided 95 % interval is put
across repeats with Student's t (:mod:`cpoison.experiments.paired`): repeats are the
independent draws (target class, targets, surrogate, victims), victims of one repeat share
its targets and poisons. A claim *holds* when the interval lies on the claimed side of its
threshold, is *not held* when the mirrored bound lies on the other side, and is
*indistinguishable* otherwise. A claim about reducing sets has *no room* when the targets'
benign sets are (almost) all singletons: nothing can be removed, so the run decides nothing.
A claim made over several cells (budgets, scores, defenses) holds when every cell holds and
is not held when one cell is not held; the report shows the deciding cell (the weakest one)
and lists the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpoison.experiments.paired import (
    effect_intervals,
    paired_differences,
    point_differences,
    upper_bound,
    verdict,
)
from cpoison.reproduce.results import (
    RunResult,
    as_number,
    by_budget,
    dataset_name,
    method,
    methods,
    pick,
    scores,
    target_selection,
)

HELD, NOT_HELD, INDISTINGUISHABLE = "held", "not held", "indistinguishable"
#: the targets' benign sets (almost) all singletons: no reduction is possible, so a claim
#: about reduction ratios can be neither held nor refuted by that run
NO_ROOM = "no room"
NOT_RUN = "not run"
VERDICTS = (HELD, NOT_HELD, INDISTINGUISHABLE, NO_ROOM, NOT_RUN)
# benign set size up to which a cell leaves no room (1 - 1/size <= 0.0196)
_NO_ROOM_SIZE = 1.02
LEVEL = 0.95

Runs = dict[str, list[RunResult]]
Interval = dict[str, Any]


def no_room(rows: Iterable[dict[str, Any]]) -> bool:
    """Whether the targets of ``rows`` (per-victim cells or summary rows) have (almost) only
    singleton benign sets: their mean benign set size is at most 1.02."""
    sizes = []
    for row in rows:
        value = row.get("benign_set_size")
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, (int, float)):
            sizes.append(float(value))
    return bool(sizes) and float(np.mean(sizes)) <= _NO_ROOM_SIZE


@dataclass(frozen=True)
class Cell:
    """One decided comparison of a claim: where (dataset, score, budget, ...), what was
    compared, its one-sided interval and verdict, the consistency of the attack's victims
    (for claims about an attack's effect) and the targets' selection."""

    where: str
    compared: str
    interval: Interval
    status: str
    threshold: float = 0.0
    within: float | None = None  # equivalence margin: held when |difference| < within
    consistency: float | None = None
    selection: str = ""

    def margin(self) -> float:
        """How far the interval lies on the claimed side (negative: on the other side)."""
        lower, upper = self.interval.get("lower"), upper_bound(self.interval)
        if lower is None or upper is None:
            return float("-inf")
        if self.within is not None:
            return min(lower + self.within, self.within - upper)
        return float(lower) - self.threshold

    def n(self) -> str:
        """``4 x 5``: victims per repeat x repeats (pairs / repeats when they differ)."""
        victims, repeats = self.interval.get("victims", 0), self.interval.get("repeats", 0)
        if not repeats:
            return "-"
        if victims % repeats:
            return f"{victims} pairs / {repeats}"
        return f"{victims // repeats} x {repeats}"

    def bound(self) -> str:
        """The decisive bound: the one-sided lower bound, or [lower, upper] of an
        equivalence claim."""
        lower, upper = self.interval.get("lower"), upper_bound(self.interval)
        if lower is None or upper is None:
            return "-"
        if self.within is not None:
            return f"[{lower:+.3f}, {upper:+.3f}]"
        return f"{lower:+.3f}"

    def difference(self) -> str:
        """``+0.162 ± 0.012`` (``-`` without numbers)."""
        mean, se = self.interval.get("mean"), self.interval.get("se")
        if mean is None:
            return "-"
        return f"{mean:+.3f}" + (f" ± {se:.3f}" if se is not None else "")

    def text(self) -> str:
        """One line: where, what, difference, bound, n and verdict."""
        if self.status == NO_ROOM:
            return f"{self.where}: no room ({self.compared})"
        side = ("|difference| < " + f"{self.within:g}" if self.within is not None
                else f"lower bound > {self.threshold:g}")
        return (f"{self.where}: {self.compared} = {self.difference()}, bound "
                f"{self.bound()} ({side}), n {self.n()} ({self.interval.get('units')}), "
                f"{self.status}")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, its deciding cell and every cell it rests on."""

    status: str
    numbers: str
    decisive: Cell | None = None
    cells: tuple[Cell, ...] = ()
    selection: str = ""
    selection_long: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of Sec. 5: where the paper makes it, its words (shortened), the paper's
    numbers, the rule that decides it here, whether it is about the attack's effect
    (consistency is shown beside it), and the decision function."""

    id: str
    experiment: str
    where: str
    text: str
    paper: str
    rule: str
    decide: Callable[[Runs], Verdict]
    effect: bool = True


# -- helpers --------------------------------------------------------------------------------

def _pct(b: float) -> str:
    return f"{100 * b:g} %"


def _single(intervals: dict[Any, Interval]) -> Interval | None:
    """The one interval of a pre-filtered comparison (None when nothing was paired)."""
    found = [i for i in intervals.values() if i.get("mean") is not None]
    return found[0] if len(found) == 1 else None


def _consistency(rows: list[dict[str, Any]]) -> float | None:
    """Mean prediction consistency of the victims of ``rows`` (per repeat, then across)."""
    per: dict[Any, list[float]] = {}
    for row in rows:
        value = row.get("consistency")
        if isinstance(value, (int, float)):
            per.setdefault(row.get("repeat"), []).append(float(value))
    if not per:
        return None
    return float(np.mean([np.mean(v) for v in per.values()]))


def _labels(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Display name (``ours (l3)``, ``RandUn``, ``MetaPoison``) -> attack label."""
    return {method(r): str(r["attack"]) for r in rows}


def _ours(rows: list[dict[str, Any]]) -> list[str]:
    return [name for name in methods(rows) if name.startswith("ours")]


def _cell(where: str, compared: str, interval: Interval | None, rows: list[dict[str, Any]],
          run: RunResult, *, threshold: float = 0.0, room: bool = True,
          effect: bool = True) -> Cell | None:
    """A decided cell (None when nothing was paired); ``room=False`` marks it no room."""
    if interval is None:
        return None
    status = verdict(interval, threshold) if room else NO_ROOM
    return Cell(where, compared, interval, status, threshold,
                consistency=_consistency(rows) if effect else None,
                selection=run.selection)


def _combine(cells: list[Cell], runs: list[RunResult], missing: str) -> Verdict:
    """A claim's verdict from its cells: not held when one cell is not held, held when all
    are, else indistinguishable; no room when no cell had room; not run without cells."""
    selection = "; ".join(dict.fromkeys(r.selection for r in runs))
    long = "; ".join(dict.fromkeys(target_selection(r.config) for r in runs))
    if not cells:
        return Verdict(NOT_RUN, missing, selection=selection, selection_long=long)
    numbers = "; ".join(c.text() for c in cells)
    decided = [c for c in cells if c.status != NO_ROOM]
    if not decided:
        return Verdict(NO_ROOM, numbers, cells[0], tuple(cells), selection, long)
    against = [c for c in decided if c.status == NOT_HELD]
    if against:
        status, pool = NOT_HELD, against
    elif all(c.status == HELD for c in decided):
        status, pool = HELD, decided
    else:
        status, pool = INDISTINGUISHABLE, [c for c in decided if c.status != HELD]
    decisive = min(pool, key=Cell.margin)
    return Verdict(status, numbers, decisive, tuple(cells), selection, long)


# -- E1 / E2 --------------------------------------------------------------------------------

def _goal_runs(runs: Runs, goal: str, experiment: str = "E1") -> list[RunResult]:
    return [r for r in runs.get(experiment, []) if r.goal == goal]


def _beats_baselines(runs: Runs, goal: str, metric: str) -> Verdict:
    """Ours minus the better of RandUn and RandGa (the smaller paired mean) on ``metric``,
    per dataset, score and budget."""
    found = _goal_runs(runs, goal)
    cells = []
    for run in found:
        for score in scores(run.cells):
            for b in by_budget(run.cells):
                rows = pick(run.cells, score=score, budget=b)
                labels = _labels(rows)
                bases = [labels[n] for n in ("RandUn", "RandGa") if n in labels]
                for name in _ours(rows):
                    diffs = {base: _single(paired_differences(rows, labels[name], base,
                                                              metric)) for base in bases}
                    diffs = {k: v for k, v in diffs.items() if v is not None}
                    if not diffs:
                        continue
                    best = min(diffs, key=lambda k: diffs[k]["mean"])
                    shown = {label: n for n, label in labels.items()}[best]
                    mine = [r for r in rows if r["attack"] == labels[name]]
                    room = goal != "overconfidence" or not no_room(mine)
                    cell = _cell(f"{dataset_name(run.dataset)} {score.upper()} {_pct(b)}",
                                 f"{name} - {shown}", diffs[best], mine, run, room=room)
                    if cell is not None:
                        cells.append(cell)
    return _combine(cells, found, f"no {goal} run of E1")


def c_fig1_over(runs: Runs) -> Verdict:
    return _beats_baselines(runs, "overconfidence", "reduction_ratio")


def c_fig1_under(runs: Runs) -> Verdict:
    return _beats_baselines(runs, "underconfidence", "expansion_ratio")


NEAR_MAX = 0.75


def _near_max(row: dict[str, Any]) -> float | None:
    """Reduction ratio minus NEAR_MAX x the largest the benign sets allow (1 - 1/size)."""
    red, size = row.get("reduction_ratio"), row.get("benign_set_size")
    if not isinstance(red, (int, float)) or not isinstance(size, (int, float)) or size <= 0:
        return None
    return float(red) - NEAR_MAX * max(0.0, 1.0 - 1.0 / float(size))


def c_fig1_near_max(runs: Runs) -> Verdict:
    found = _goal_runs(runs, "overconfidence")
    cells = []
    for run in found:
        budgets = by_budget(run.cells)
        if not budgets:
            continue
        b = max(budgets)
        for score in scores(run.cells):
            rows = pick(run.cells, score=score, budget=b)
            labels = _labels(rows)
            for name in _ours(rows):
                mine = [r for r in rows if r["attack"] == labels[name]]
                cell = _cell(f"{dataset_name(run.dataset)} {score.upper()} {_pct(b)}",
                             f"{name}: reduction - {NEAR_MAX:g} x (1 - 1/benign size)",
                             _single(effect_intervals(mine, labels[name], _near_max)), mine,
                             run, room=not no_room(mine))
                if cell is not None:
                    cells.append(cell)
    return _combine(cells, found, "no overconfidence run of E1")


CONSISTENCY = 0.9
COVERAGE_GAP = 0.02


def _consistency_margin(row: dict[str, Any]) -> float | None:
    value = row.get("consistency")
    return float(value) - CONSISTENCY if isinstance(value, (int, float)) else None


def c_fig2_consistency(runs: Runs) -> Verdict:
    found = _goal_runs(runs, "overconfidence")
    cells = []
    for run in found:
        first = (scores(run.cells) or ["hps"])[0]  # consistency is the victim's, any score
        for b in by_budget(run.cells):
            rows = pick(run.cells, score=first, budget=b)
            labels = _labels(rows)
            for name in _ours(rows):
                mine = [r for r in rows if r["attack"] == labels[name]]
                cell = _cell(f"{dataset_name(run.dataset)} {_pct(b)}",
                             f"{name}: consistency - {CONSISTENCY:g}",
                             _single(effect_intervals(mine, labels[name],
                                                      _consistency_margin)),
                             mine, run, effect=False)
                if cell is not None:
                    cells.append(cell)
    return _combine(cells, found, "no overconfidence run of E1")


def _coverage_change(row: dict[str, Any]) -> float | None:
    cb, cv = row.get("coverage_benign"), row.get("coverage_victim")
    if not isinstance(cb, (int, float)) or not isinstance(cv, (int, float)):
        return None
    return float(cv) - float(cb)


def _equivalence(interval: Interval, gap: float) -> str:
    """Two one-sided tests: held when both one-sided bounds lie inside (-gap, gap), not
    held when the interval lies wholly outside, else indistinguishable."""
    if interval.get("mean") is None:
        return NOT_RUN
    lower, upper = interval.get("lower"), upper_bound(interval)
    if lower is None or upper is None:
        return INDISTINGUISHABLE
    if -gap < lower and upper < gap:
        return HELD
    if lower > gap or upper < -gap:
        return NOT_HELD
    return INDISTINGUISHABLE


def c_fig2_coverage(runs: Runs) -> Verdict:
    found = _goal_runs(runs, "overconfidence")
    cells = []
    for run in found:
        for score in scores(run.cells):
            for b in by_budget(run.cells):
                rows = pick(run.cells, score=score, budget=b)
                labels = _labels(rows)
                for name in _ours(rows):
                    mine = [r for r in rows if r["attack"] == labels[name]]
                    interval = _single(effect_intervals(mine, labels[name], _coverage_change))
                    if interval is None:
                        continue
                    cells.append(Cell(
                        f"{dataset_name(run.dataset)} {score.upper()} {_pct(b)}",
                        f"{name}: coverage victim - benign", interval,
                        _equivalence(interval, COVERAGE_GAP), within=COVERAGE_GAP,
                        selection=run.selection))
    return _combine(cells, found, "no overconfidence run of E1")


# -- E3: defenses ---------------------------------------------------------------------------

RETAINED = 0.4


def c_table1(runs: Runs) -> Verdict:
    """Per score with room: the undefended reduction is positive, and under each defense
    the reduction minus RETAINED x the undefended one on the same (repeat, victim) is."""
    found = runs.get("E3", [])
    cells = []
    for run in found:
        for score in scores(run.cells):
            rows = pick(run.cells, score=score)
            labels = _labels(rows)
            for name in _ours(rows):
                label = labels[name]
                none = [r for r in pick(rows, defense="none") if r["attack"] == label]
                room = not no_room(none)
                cell = _cell(f"{score.upper()} none", f"{name}: reduction",
                             _single(effect_intervals(none, label, "reduction_ratio")),
                             none, run, room=room)
                if cell is None:
                    continue
                cells.append(cell)
                defenses = dict.fromkeys((r.get("defense") or "none") for r in rows)
                for defense in defenses:
                    mine = [r for r in pick(rows, defense=defense) if r["attack"] == label
                            and not r.get("unsupported")]
                    if defense == "none" or not mine:
                        continue
                    diff = _single(point_differences(rows, label, "reduction_ratio",
                                                     "defense", defense, "none",
                                                     weight=RETAINED))
                    cell = _cell(f"{score.upper()} {defense}",
                                 f"{name}: reduction under {defense} - {RETAINED:g} x none",
                                 diff, mine, run, room=room)
                    if cell is not None:
                        cells.append(cell)
    return _combine(cells, found, "no defended run of E3")


# -- E4: MetaPoison -------------------------------------------------------------------------

def _table2(runs: Runs, metric: str) -> Verdict:
    found = runs.get("E4", [])
    cells = []
    for run in found:
        first = (scores(run.cells) or ["hps"])[0]
        for b in by_budget(run.cells):
            rows = pick(run.cells, score=first, budget=b)
            labels = _labels(rows)
            meta = labels.get("MetaPoison")
            if meta is None:
                continue
            for name in _ours(rows):
                mine = [r for r in rows if r["attack"] == labels[name]]
                if metric == "reduction_ratio":
                    cell = _cell(f"{first.upper()} {_pct(b)}", f"{name} - MetaPoison",
                                 _single(paired_differences(rows, labels[name], meta,
                                                            metric)),
                                 mine, run, room=not no_room(mine))
                else:
                    cell = _cell(f"{_pct(b)}", f"MetaPoison - {name}, seconds",
                                 _single(paired_differences(rows, meta, labels[name],
                                                            "craft_seconds")),
                                 mine, run, effect=False)
                if cell is not None:
                    cells.append(cell)
    return _combine(cells, found, "no run of E4 with MetaPoison")


def c_table2_reduction(runs: Runs) -> Verdict:
    return _table2(runs, "reduction_ratio")


def c_table2_time(runs: Runs) -> Verdict:
    return _table2(runs, "craft_seconds")


# -- E5: l2 and l3 --------------------------------------------------------------------------

def _e5(runs: Runs, versus: str) -> Verdict:
    """``versus`` "RandUn": l2 and l3 minus RandUn; "l2": l3 minus l2, per budget."""
    found = runs.get("E5", [])
    cells = []
    for run in found:
        for score in scores(run.cells):
            for b in by_budget(run.cells):
                rows = pick(run.cells, score=score, budget=b)
                labels = _labels(rows)
                if versus == "RandUn":
                    pairs = [(n, "RandUn") for n in ("ours (l2)", "ours (l3)")]
                else:
                    pairs = [("ours (l3)", "ours (l2)")]
                for name, other in pairs:
                    if name not in labels or other not in labels:
                        continue
                    mine = [r for r in rows if r["attack"] == labels[name]]
                    cell = _cell(f"{score.upper()} {_pct(b)}", f"{name} - {other}",
                                 _single(paired_differences(rows, labels[name],
                                                            labels[other],
                                                            "reduction_ratio")),
                                 mine, run, room=not no_room(mine))
                    if cell is not None:
                        cells.append(cell)
    return _combine(cells, found, "no run of E5")


def c_fig3_randun(runs: Runs) -> Verdict:
    return _e5(runs, "RandUn")


def c_fig3_l3(runs: Runs) -> Verdict:
    return _e5(runs, "l2")


# -- E6 / E7: against a grid key ------------------------------------------------------------

def _grid_values(rows: list[dict[str, Any]], key: str) -> list[Any]:
    """The raw values of grid key ``key`` in ``rows``, sorted by their number."""
    seen = dict.fromkeys((r.get("point") or {}).get(key) for r in rows)
    values = [v for v in seen if as_number(v) is not None]
    return sorted(values, key=lambda v: as_number(v) or 0.0)


def _show(key: str, value: Any) -> str:
    x = as_number(value)
    if key == "eps" and x is not None:
        return f"eps {255 * x:g}/255"
    return f"set size {value}" if key == "targets.set_size" else f"{key} {value}"


def _effects(runs: Runs, experiment: str, key: str,
             keep: Callable[[Any], bool] = lambda _v: True) -> Verdict:
    """Ours' reduction ratio > 0 at each value of grid key ``key`` kept by ``keep``."""
    found = runs.get(experiment, [])
    cells = []
    for run in found:
        for score in scores(run.cells):
            rows = pick(run.cells, score=score)
            labels = _labels(rows)
            for value in _grid_values(rows, key):
                if not keep(value):
                    continue
                at = [r for r in rows if (r.get("point") or {}).get(key) == value]
                for name in _ours(at):
                    mine = [r for r in at if r["attack"] == labels[name]]
                    cell = _cell(f"{_show(key, value)} {score.upper()}",
                                 f"{name}: reduction",
                                 _single(effect_intervals(mine, labels[name],
                                                          "reduction_ratio")),
                                 mine, run, room=not no_room(mine))
                    if cell is not None:
                        cells.append(cell)
    return _combine(cells, found, f"no run of {experiment}")


def c_fig4(runs: Runs) -> Verdict:
    return _effects(runs, "E6", "targets.set_size")


def c_fig5_trend(runs: Runs) -> Verdict:
    """Ours at the largest bound minus ours at the smallest, paired by (score, repeat,
    victim)."""
    found = runs.get("E7", [])
    cells = []
    for run in found:
        for score in scores(run.cells):
            rows = pick(run.cells, score=score)
            values = _grid_values(rows, "eps")
            if len(values) < 2:
                continue
            labels = _labels(rows)
            for name in _ours(rows):
                mine = [r for r in rows if r["attack"] == labels[name]
                        and (r.get("point") or {}).get("eps") == values[-1]]
                cell = _cell(f"{score.upper()}",
                             f"{name}: {_show('eps', values[-1])} - {_show('eps', values[0])}",
                             _single(point_differences(rows, labels[name], "reduction_ratio",
                                                       "eps", values[-1], values[0])),
                             mine, run, room=not no_room(mine))
                if cell is not None:
                    cells.append(cell)
    return _combine(cells, found, "no run of E7 with two or more bounds")


def c_fig5_small(runs: Runs) -> Verdict:
    def is_16(value: Any) -> bool:
        x = as_number(value)
        return x is not None and abs(255 * x - 16) < 1e-6

    return _effects(runs, "E7", "eps", is_16)


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "E1", "Sec. 5.1, Fig. 1a-b",
          "Our attacks significantly outperform RandUn and RandGa in set size reduction ratio "
          "across poison budgets (overconfidence).",
          "CIFAR-10 at 2 %: 0.48 (HPS), 0.54 (RAPS) vs baselines below 0.32",
          "ours minus the better baseline (reduction ratio, same victims): lower bound > 0 "
          "at every dataset, score and budget", c_fig1_over),
    Claim("C2", "E1", "Sec. 5.1, Fig. 1c",
          "Our attacks outperform RandUn and RandGa in set size expansion ratio across "
          "poison budgets (underconfidence).",
          "Tiny-ImageNet (values only in the figure)",
          "ours minus the better baseline (expansion ratio, same victims): lower bound > 0 "
          "at every score and budget", c_fig1_under),
    Claim("C3", "E1", "Sec. 5.1, Fig. 1a",
          "At 2 % the attack comes close to the largest reduction the benign sets allow.",
          "HPS benign 2.0, reduction 0.48 of at most 0.50; RAPS benign 2.84, reduction 0.54 "
          "of at most 0.64",
          f"at the largest budget, reduction minus {NEAR_MAX:g} x (1 - 1/benign size) per "
          "victim: lower bound > 0 for every score (the paper: 96 % HPS, 84 % RAPS)",
          c_fig1_near_max),
    Claim("C4", "E2", "Sec. 5.1, Fig. 2",
          "The attacks achieve a high prediction consistency with the benign model.",
          "CIFAR-10, HPS (values only in the figure)",
          f"consistency of each poisoned victim with its benign twin minus {CONSISTENCY}: "
          "lower bound > 0 at every budget", c_fig2_consistency, effect=False),
    Claim("C5", "E2", "Sec. 5.1, Fig. 2",
          "Victims keep empirical coverage similar to the benign model's.",
          "CIFAR-10, HPS (values only in the figure)",
          "coverage of each poisoned victim minus its benign twin's: both one-sided 95 % "
          f"bounds within ±{COVERAGE_GAP} at every score and budget (two one-sided tests)",
          c_fig2_coverage, effect=False),
    Claim("C6", "E3", "Sec. 5.2, Table 1",
          "The attacks remain effective under MaxUp, adversarial poisoning and EPIC.",
          "0.24-0.49 under the defenses vs 0.46-0.54 without (e.g. HPS MaxUp 0.34 vs 0.46)",
          f"undefended reduction > 0, and per defense the reduction minus {RETAINED:g} x the "
          "undefended one on the same (repeat, victim): lower bound > 0 (the paper's lowest "
          "share: 49 %, RSCP under adversarial poisoning)", c_table1),
    Claim("C7", "E4", "Sec. 5.3, Table 2",
          "First- and second-order attacks achieve a higher reduction ratio than "
          "MetaPoison.",
          "first 0.36-0.46, second 0.38-0.48, MetaPoison lower",
          "each of ours minus MetaPoison (same victims): lower bound > 0 at every budget",
          c_table2_reduction),
    Claim("C8", "E4", "Sec. 5.3, Table 2",
          "... and need much less running time than MetaPoison.",
          "first 12.8-19.3 min, second 96-369 min, MetaPoison 233-495 min",
          "MetaPoison's crafting time minus ours' (same repeat): lower bound > 0 at every "
          "budget", c_table2_time, effect=False),
    Claim("C9", "E5", "Sec. 5.3, Fig. 3",
          "Our attacks (l2 and l3) reach significantly higher reduction ratios than RandUn "
          "in the black-box setting.",
          "values only in the figure",
          "l2 and l3 each minus RandUn (same victims): lower bound > 0 at every budget",
          c_fig3_randun),
    Claim("C10", "E5", "Sec. 5.3, Fig. 3",
          "l3 achieves a higher reduction ratio than l2 at 0.5 % and 1 %.",
          "+0.01 at 0.5 %, +0.02 at 1 %",
          "l3 minus l2 (same victims): lower bound > 0 at every budget", c_fig3_l3),
    Claim("C11", "E6", "Sec. 5.3, Fig. 4",
          "The attacks consistently reduce the set size across benign set sizes.",
          "values only in the figure",
          "reduction ratio (each poisoned victim against its benign twin): lower bound > 0 "
          "at every benign set size", c_fig4),
    Claim("C12", "E7", "Sec. 5.3, Fig. 5",
          "Larger perturbation bounds generally give higher reduction ratios.",
          "values only in the figure",
          "reduction at the largest bound minus at the smallest, paired by (score, repeat, "
          "victim): lower bound > 0", c_fig5_trend),
    Claim("C13", "E7", "Sec. 5.3, Fig. 5",
          "Even with a small bound (16/255) the attack is effective.",
          "values only in the figure",
          "reduction ratio at 16/255: lower bound > 0", c_fig5_small),
)


def decide(runs: Runs) -> list[tuple[Claim, Verdict]]:
    """Every claim with its verdict on ``runs`` (experiment id -> its loaded runs)."""
    return [(c, c.decide(runs)) for c in CLAIMS]


__all__ = ["CLAIMS", "HELD", "INDISTINGUISHABLE", "LEVEL", "NOT_HELD", "NOT_RUN", "NO_ROOM",
           "VERDICTS", "Cell", "Claim", "Verdict", "decide", "no_room"]
