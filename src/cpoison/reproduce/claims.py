"""The claims of the paper's Sec. 5, each decided from a reproduction's numbers: held, not
held, or not run at this scale, with the numbers that decide it (SPEC 9, issue 12).

A claim is decided on the means (± standard errors are printed beside them, so a reader
sees when a decision rests on a difference within the noise). Where the paper's words are
qualitative ("high consistency", "remain effective") the rule that makes them a test is
stated in the claim's ``rule``; the paper's own numbers it rests on are quoted in ``paper``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cpoison.reproduce.results import (
    RunResult,
    by_budget,
    fmt,
    mean,
    method,
    methods,
    one,
    pick,
    point,
    scores,
)

HELD, NOT_HELD, NOT_RUN = "held", "not held", "not run at this scale"
#: the targets' benign sets (almost) all singletons: no reduction is possible, so a claim
#: about reduction ratios can be neither held nor refuted by that run
NO_ROOM = "undecided: no room"
# benign set size up to which a row leaves no room (1 - 1/size <= 0.0196)
_NO_ROOM_SIZE = 1.02


def no_room(row: dict | None) -> bool:
    """Whether a summary row's targets have (almost) only singleton benign sets."""
    size = mean(row, "benign_set_size") if row is not None else None
    return size is not None and size <= _NO_ROOM_SIZE

Runs = dict[str, list[RunResult]]


@dataclass(frozen=True)
class Verdict:
    status: str
    numbers: str


@dataclass(frozen=True)
class Claim:
    """One claim of Sec. 5: where the paper makes it, its words (shortened), the paper's
    numbers, the rule that decides it here, and the decision function."""

    id: str
    experiment: str
    where: str
    text: str
    paper: str
    rule: str
    decide: Callable[[Runs], Verdict]


def _pct(b: float) -> str:
    return f"{100 * b:g} %"


def _over(runs: Runs, experiment: str = "E1") -> list[RunResult]:
    return [r for r in runs.get(experiment, []) if r.goal == "overconfidence"]


def _beats_baselines(runs: Runs, goal: str, metric: str) -> Verdict:
    found = [r for r in runs.get("E1", []) if r.goal == goal]
    parts, ok, seen = [], True, False
    for run in found:
        for score in scores(run.rows):
            for b in by_budget(run.rows):
                ours = [x for x in pick(run.rows, score=score, budget=b)
                        if x.get("loss") in ("l2", "l3")]
                base = [x for x in pick(run.rows, score=score, budget=b)
                        if method(x) in ("RandUn", "RandGa")]
                if not ours or not base or mean(ours[0], metric) is None:
                    continue
                seen = True
                best = max(base, key=lambda x: mean(x, metric) or -1e9)
                good = (mean(ours[0], metric) or 0) > (mean(best, metric) or 0)
                ok &= good
                parts.append(f"{run.dataset} {score.upper()} {_pct(b)}: ours "
                             f"{fmt(ours[0], metric)} vs {method(best)} {fmt(best, metric)}"
                             + ("" if good else " (not beaten)"))
    if not seen:
        return Verdict(NOT_RUN, "no run with this goal")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def c_fig1_over(runs: Runs) -> Verdict:
    return _beats_baselines(runs, "overconfidence", "reduction_ratio")


def c_fig1_under(runs: Runs) -> Verdict:
    return _beats_baselines(runs, "underconfidence", "expansion_ratio")


NEAR_MAX = 0.75


def c_fig1_near_max(runs: Runs) -> Verdict:
    parts, ok, seen = [], True, False
    for run in _over(runs):
        budgets = by_budget(run.rows)
        if not budgets:
            continue
        b = max(budgets)
        for score in scores(run.rows):
            ours = [x for x in pick(run.rows, score=score, budget=b)
                    if x.get("loss") in ("l2", "l3")]
            if not ours:
                continue
            red, size = mean(ours[0], "reduction_ratio"), mean(ours[0], "benign_set_size")
            if red is None or not size:
                continue
            seen = True
            best = 1 - 1 / max(size, 1.0)
            share = red / best if best > 0 else 0.0
            ok &= best > 0 and share >= NEAR_MAX
            parts.append(f"{run.dataset} {score.upper()} {_pct(b)}: reduction "
                         f"{fmt(ours[0], 'reduction_ratio')} of largest possible {best:.2f} "
                         f"(benign size {size:.2f}) = {share:.0%}")
    if not seen:
        return Verdict(NOT_RUN, "no overconfidence run of E1")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


CONSISTENCY = 0.9
COVERAGE_GAP = 0.02


def c_fig2_consistency(runs: Runs) -> Verdict:
    parts, ok, seen = [], True, False
    for run in _over(runs):
        for r in pick(run.rows, score=(scores(run.rows) or ["hps"])[0]):
            if r.get("loss") not in ("l2", "l3") or mean(r, "consistency") is None:
                continue
            seen = True
            ok &= (mean(r, "consistency") or 0) >= CONSISTENCY
            parts.append(f"{run.dataset} {_pct(float(r['budget']))}: "
                         f"{fmt(r, 'consistency', 3)}")
    if not seen:
        return Verdict(NOT_RUN, "no overconfidence run of E1")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def c_fig2_coverage(runs: Runs) -> Verdict:
    parts, ok, seen = [], True, False
    for run in _over(runs):
        for r in run.rows:
            if r.get("loss") not in ("l2", "l3"):
                continue
            cb, cv = mean(r, "coverage_benign"), mean(r, "coverage_victim")
            if cb is None or cv is None:
                continue
            seen = True
            ok &= abs(cv - cb) <= COVERAGE_GAP
            parts.append(f"{run.dataset} {r['score'].upper()} {_pct(float(r['budget']))}: "
                         f"{cb:.3f} vs {cv:.3f}")
    if not seen:
        return Verdict(NOT_RUN, "no overconfidence run of E1")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


RETAINED = 0.4


def c_table1(runs: Runs) -> Verdict:
    parts, ok, seen, skipped = [], True, False, []
    for run in runs.get("E3", []):
        for score in scores(run.rows):
            base = one(run.rows, score=score, defense="none")
            if no_room(base):
                skipped.append(f"{score.upper()}: benign size {mean(base, 'benign_set_size'):.2f}")
                continue
            undefended = mean(base, "reduction_ratio")
            for r in pick(run.rows, score=score):
                defense = r.get("defense") or "none"
                if defense == "none" or r.get("unsupported"):
                    continue
                red = mean(r, "reduction_ratio")
                if red is None or undefended is None:
                    continue
                seen = True
                good = undefended > 0 and red >= RETAINED * undefended
                ok &= good
                parts.append(f"{defense} {score.upper()}: {fmt(r, 'reduction_ratio')} "
                             f"(none {undefended:.2f})")
    if skipped:
        parts.append("no room: " + ", ".join(skipped))
    if not seen:
        return Verdict(NO_ROOM if skipped else NOT_RUN,
                       "; ".join(parts) or "no defended run of E3")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def _table2(runs: Runs, metric: str) -> Verdict:
    parts, ok, seen, skipped = [], True, False, []
    for run in runs.get("E4", []):
        for b in by_budget(run.rows):
            rows = pick(run.rows, budget=b, score=(scores(run.rows) or ["hps"])[0])
            meta = one(rows, method="MetaPoison")
            ours = [r for r in rows if r.get("loss") in ("l2", "l3")]
            if meta is None or not ours:
                continue
            if metric == "reduction_ratio" and no_room(meta):
                skipped.append(f"{_pct(b)}: benign size {mean(meta, 'benign_set_size'):.2f}")
                continue
            for r in ours:
                if metric == "reduction_ratio":
                    a, m = mean(r, metric), mean(meta, metric)
                    if a is None or m is None:
                        continue
                    good = a > m
                    parts.append(f"{_pct(b)} {method(r)} {fmt(r, metric)} vs MetaPoison "
                                 f"{fmt(meta, metric)}")
                else:
                    a, m = r.get("craft_seconds"), meta.get("craft_seconds")
                    if a is None or m is None:
                        continue
                    good = a < m
                    parts.append(f"{_pct(b)} {method(r)} {a:.1f} s vs MetaPoison {m:.1f} s")
                seen = True
                ok &= good
    if skipped:
        parts.append("no room: " + ", ".join(skipped))
    if not seen:
        return Verdict(NO_ROOM if skipped else NOT_RUN,
                       "; ".join(parts) or "no run of E4 with MetaPoison")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def c_table2_reduction(runs: Runs) -> Verdict:
    return _table2(runs, "reduction_ratio")


def c_table2_time(runs: Runs) -> Verdict:
    return _table2(runs, "craft_seconds")


def c_fig3_randun(runs: Runs) -> Verdict:
    parts, ok, seen = [], True, False
    for run in runs.get("E5", []):
        for b in by_budget(run.rows):
            rows = pick(run.rows, budget=b)
            rand = one(rows, method="RandUn")
            for r in rows:
                if r.get("loss") not in ("l2", "l3") or rand is None:
                    continue
                a, z = mean(r, "reduction_ratio"), mean(rand, "reduction_ratio")
                if a is None or z is None:
                    continue
                seen = True
                ok &= a > z
                parts.append(f"{_pct(b)} {method(r)} {fmt(r, 'reduction_ratio')} vs RandUn "
                             f"{fmt(rand, 'reduction_ratio')}")
    if not seen:
        return Verdict(NOT_RUN, "no run of E5")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def c_fig3_l3(runs: Runs) -> Verdict:
    parts, ok, seen = [], True, False
    for run in runs.get("E5", []):
        for b in by_budget(run.rows):
            l2 = one(run.rows, method="ours (l2)", budget=b)
            l3 = one(run.rows, method="ours (l3)", budget=b)
            a, c = mean(l3, "reduction_ratio"), mean(l2, "reduction_ratio")
            if a is None or c is None:
                continue
            seen = True
            ok &= a > c
            parts.append(f"{_pct(b)}: l3 {fmt(l3, 'reduction_ratio')} - l2 "
                         f"{fmt(l2, 'reduction_ratio')} = {a - c:+.3f}")
    if not seen:
        return Verdict(NOT_RUN, "no run of E5")
    return Verdict(HELD if ok else NOT_HELD, "; ".join(parts))


def _series(runs: Runs, experiment: str, key: str) -> list[tuple[float, dict[str, object]]]:
    from cpoison.reproduce.results import as_number

    out = []
    for run in runs.get(experiment, []):
        for r in run.rows:
            x = as_number(point(r, key))
            if r.get("loss") in ("l2", "l3") and x is not None and mean(
                    r, "reduction_ratio") is not None:
                out.append((x, r))
    return sorted(out, key=lambda t: (t[0], str(t[1]["score"])))


def c_fig4(runs: Runs) -> Verdict:
    pts = _series(runs, "E6", "targets.set_size")
    if not pts:
        return Verdict(NOT_RUN, "no run of E6")
    ok = all((mean(r, "reduction_ratio") or 0) > 0 for _, r in pts)
    return Verdict(HELD if ok else NOT_HELD, "; ".join(
        f"set size {x:g} {str(r['score']).upper()}: benign {fmt(r, 'benign_set_size')} -> "
        f"victim {fmt(r, 'victim_set_size')}, reduction {fmt(r, 'reduction_ratio')}"
        for x, r in pts))


def c_fig5_trend(runs: Runs) -> Verdict:
    pts = _series(runs, "E7", "eps")
    if len({x for x, _ in pts}) < 2:
        return Verdict(NOT_RUN, "no run of E7 with two or more bounds")
    first, last = pts[0], pts[-1]
    ok = (mean(last[1], "reduction_ratio") or 0) > (mean(first[1], "reduction_ratio") or 0)
    return Verdict(HELD if ok else NOT_HELD, "; ".join(
        f"eps {255 * x:g}/255: {fmt(r, 'reduction_ratio')}" for x, r in pts))


def c_fig5_small(runs: Runs) -> Verdict:
    pts = [(x, r) for x, r in _series(runs, "E7", "eps") if abs(255 * x - 16) < 1e-6]
    if not pts:
        return Verdict(NOT_RUN, "no run of E7 at 16/255")
    ok = all((mean(r, "reduction_ratio") or 0) > 0 for _, r in pts)
    return Verdict(HELD if ok else NOT_HELD, "; ".join(
        f"eps 16/255 {str(r['score']).upper()}: {fmt(r, 'reduction_ratio')}" for _, r in pts))


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "E1", "Sec. 5.1, Fig. 1a-b",
          "Our attacks significantly outperform RandUn and RandGa in set size reduction ratio "
          "across poison budgets (overconfidence).",
          "CIFAR-10 at 2 %: 0.48 (HPS), 0.54 (RAPS) vs baselines below 0.32",
          "ours' mean reduction ratio above the better baseline's at every dataset, score "
          "and budget", c_fig1_over),
    Claim("C2", "E1", "Sec. 5.1, Fig. 1c",
          "Our attacks outperform RandUn and RandGa in set size expansion ratio across "
          "poison budgets (underconfidence).",
          "Tiny-ImageNet (values only in the figure)",
          "ours' mean expansion ratio above the better baseline's at every score and budget",
          c_fig1_under),
    Claim("C3", "E1", "Sec. 5.1, Fig. 1a",
          "At 2 % the attack comes close to the largest reduction the benign sets allow.",
          "HPS benign 2.0, reduction 0.48 of at most 0.50; RAPS benign 2.84, reduction 0.54 "
          "of at most 0.64",
          f"at the largest budget, ours' reduction >= {NEAR_MAX:.0%} of 1 - 1/benign size "
          "for every score (the paper: 96 % HPS, 84 % RAPS)", c_fig1_near_max),
    Claim("C4", "E2", "Sec. 5.1, Fig. 2",
          "The attacks achieve a high prediction consistency with the benign model.",
          "CIFAR-10, HPS (values only in the figure)",
          f"consistency >= {CONSISTENCY} on the evaluation set at every budget",
          c_fig2_consistency),
    Claim("C5", "E2", "Sec. 5.1, Fig. 2",
          "Victims keep empirical coverage similar to the benign model's.",
          "CIFAR-10, HPS (values only in the figure)",
          f"|coverage victim - coverage benign| <= {COVERAGE_GAP} at every score and budget",
          c_fig2_coverage),
    Claim("C6", "E3", "Sec. 5.2, Table 1",
          "The attacks remain effective under MaxUp, adversarial poisoning and EPIC.",
          "0.24-0.49 under the defenses vs 0.46-0.54 without (e.g. HPS MaxUp 0.34 vs 0.46)",
          f"every defended reduction ratio >= {RETAINED:.0%} of the undefended one, which "
          "is positive (the paper's lowest share: 49 %, RSCP under adversarial poisoning)",
          c_table1),
    Claim("C7", "E4", "Sec. 5.3, Table 2",
          "First- and second-order attacks achieve a higher reduction ratio than "
          "MetaPoison.",
          "first 0.36-0.46, second 0.38-0.48, MetaPoison lower",
          "each of ours' mean reduction ratios above MetaPoison's at the same budget",
          c_table2_reduction),
    Claim("C8", "E4", "Sec. 5.3, Table 2",
          "... and need much less running time than MetaPoison.",
          "first 12.8-19.3 min, second 96-369 min, MetaPoison 233-495 min",
          "crafting time of each of ours below MetaPoison's at the same budget",
          c_table2_time),
    Claim("C9", "E5", "Sec. 5.3, Fig. 3",
          "Our attacks (l2 and l3) reach significantly higher reduction ratios than RandUn "
          "in the black-box setting.",
          "values only in the figure",
          "ours' mean reduction ratio above RandUn's at every budget, for l2 and l3",
          c_fig3_randun),
    Claim("C10", "E5", "Sec. 5.3, Fig. 3",
          "l3 achieves a higher reduction ratio than l2 at 0.5 % and 1 %.",
          "+0.01 at 0.5 %, +0.02 at 1 %",
          "mean l3 - l2 > 0 at every budget", c_fig3_l3),
    Claim("C11", "E6", "Sec. 5.3, Fig. 4",
          "The attacks consistently reduce the set size across benign set sizes.",
          "values only in the figure",
          "mean reduction ratio > 0 at every benign set size", c_fig4),
    Claim("C12", "E7", "Sec. 5.3, Fig. 5",
          "Larger perturbation bounds generally give higher reduction ratios.",
          "values only in the figure",
          "mean reduction ratio at the largest bound above the one at the smallest",
          c_fig5_trend),
    Claim("C13", "E7", "Sec. 5.3, Fig. 5",
          "Even with a small bound (16/255) the attack is effective.",
          "values only in the figure",
          "mean reduction ratio at 16/255 > 0", c_fig5_small),
)


def decide(runs: Runs) -> list[tuple[Claim, Verdict]]:
    """Every claim with its verdict on ``runs`` (experiment id -> its loaded runs)."""
    return [(c, c.decide(runs)) for c in CLAIMS]


__all__ = ["CLAIMS", "HELD", "NOT_HELD", "NOT_RUN", "NO_ROOM", "Claim", "Verdict", "decide",
           "methods", "no_room"]
