"""The verdicts on the paper's Sec. 5 claims (issue 12) from hand-made summary rows: held
when our numbers say so, not held when they contradict it, not run without the runs, and
the numbers that decide each verdict are printed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpoison.reproduce.claims import CLAIMS, HELD, NO_ROOM, NOT_HELD, NOT_RUN, decide
from cpoison.reproduce.experiments import Part
from cpoison.reproduce.results import RunResult


def _row(attack: str, loss: str | None, budget: float, red: float, order: int | None = 1,
         score: str = "hps", **extra: Any) -> dict[str, Any]:
    return {"attack": attack, "loss": loss, "order": order if loss else None, "score": score,
            "budget": budget, "eps": 16 / 255, "point": {"budget": budget},
            "reduction_ratio": {"mean": red, "se": 0.01},
            "benign_set_size": {"mean": 2.0, "se": None}, **extra}


def _run(exp: str, rows: list[dict[str, Any]], goal: str = "overconfidence") -> RunResult:
    return RunResult(Part(exp, "", f"reproduce/test/{exp}.yaml"), Path("."),
                     {"goal": {"kind": goal}, "dataset": "fashion-mnist"}, {"rows": rows})


def _verdict(runs: dict[str, list[RunResult]], claim_id: str) -> tuple[str, str]:
    for claim, verdict in decide(runs):
        if claim.id == claim_id:
            return verdict.status, verdict.numbers
    raise KeyError(claim_id)


def test_every_claim_is_not_run_without_runs() -> None:
    verdicts = decide({})
    assert len(verdicts) == len(CLAIMS) >= 13
    assert {v.status for _, v in verdicts} == {NOT_RUN}


def test_l3_over_l2_held_and_not_held() -> None:
    rows = [_row("ours-l2", "l2", 0.005, 0.20), _row("ours-l3", "l3", 0.005, 0.23),
            _row("randun", None, 0.005, 0.01)]
    status, numbers = _verdict({"E5": [_run("E5", rows)]}, "C10")
    assert status == HELD and "+0.030" in numbers
    rows[1] = _row("ours-l3", "l3", 0.005, 0.18)
    status, numbers = _verdict({"E5": [_run("E5", rows)]}, "C10")
    assert status == NOT_HELD and "-0.020" in numbers
    assert _verdict({"E5": [_run("E5", rows)]}, "C9")[0] == HELD  # both beat RandUn


def test_baselines_beaten_per_score_and_budget() -> None:
    rows = [_row("ours", "l3", b, 0.4) for b in (0.01, 0.02)]
    rows += [_row("randun", None, b, 0.1) for b in (0.01, 0.02)]
    rows += [_row("randga", None, 0.01, 0.1), _row("randga", None, 0.02, 0.5)]
    status, numbers = _verdict({"E1": [_run("E1", rows)]}, "C1")
    assert status == NOT_HELD and "RandGa 0.50" in numbers and "(not beaten)" in numbers
    assert _verdict({"E1": [_run("E1", rows)]}, "C2")[0] == NOT_RUN  # no underconfidence run


def test_defenses_keep_the_attack_effective() -> None:
    rows = [_row("ours", "l3", 0.02, 0.40, defense="none"),
            _row("ours", "l3", 0.02, 0.30, defense="maxup"),
            _row("ours", "l3", 0.02, 0.10, defense="epic")]
    status, numbers = _verdict({"E3": [_run("E3", rows)]}, "C6")
    assert status == NOT_HELD and "epic HPS: 0.10" in numbers
    status, _ = _verdict({"E3": [_run("E3", rows[:2])]}, "C6")
    assert status == HELD


def test_metapoison_slower_and_weaker() -> None:
    rows = [_row("first", "l3", 0.02, 0.3, craft_seconds=7.0),
            _row("second", "l3", 0.02, 0.2, order=2, craft_seconds=6.0),
            _row("metapoison", "metapoison", 0.02, 0.25, order=None, craft_seconds=47.0)]
    runs = {"E4": [_run("E4", rows)]}
    assert _verdict(runs, "C8")[0] == HELD
    status, numbers = _verdict(runs, "C7")
    assert status == NOT_HELD and "MetaPoison 0.25" in numbers


def test_singleton_benign_sets_leave_reduction_claims_undecided() -> None:
    """A run whose targets' benign sets are singletons can reduce nothing: its reduction
    comparisons are neither held nor refuted."""
    single = {"benign_set_size": {"mean": 1.0, "se": 0.0}}
    rows = [_row("ours", "l3", 0.02, 0.0, defense="none", **single),
            _row("ours", "l3", 0.02, 0.0, defense="maxup", **single)]
    status, numbers = _verdict({"E3": [_run("E3", rows)]}, "C6")
    assert status == NO_ROOM and "benign size 1.00" in numbers
    rows = [_row("first", "l3", 0.02, 0.0, craft_seconds=7.0, **single),
            _row("metapoison", "metapoison", 0.02, 0.0, order=None, craft_seconds=47.0,
                 **single)]
    runs = {"E4": [_run("E4", rows)]}
    assert _verdict(runs, "C7")[0] == NO_ROOM
    assert _verdict(runs, "C8")[0] == HELD  # crafting time does not need room
