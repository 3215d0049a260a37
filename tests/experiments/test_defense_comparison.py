"""Each defense against none (SPEC 7): the share of the effect a defense leaves, its clean
accuracy cost, and the "halves at <= 1 point" verdict, matched on attack, score and the other
grid values."""

from __future__ import annotations

from cpoison.experiments.defense_comparison import compare_to_none
from cpoison.experiments.report import comparison_table


def _row(defense, reduction, acc, budget=0.02, score="hps", unsupported=False):
    row = {"defense": defense, "attack": "ours", "score": score, "n_victims": 4,
           "point": {"defense": defense, "budget": budget},
           "reduction_ratio": {"mean": reduction, "se": 0.01},
           "accuracy_benign": {"mean": acc, "se": 0.001}}
    if unsupported:
        row["unsupported"] = True
    return row


def test_share_left_cost_and_verdict_are_matched_per_grid_point() -> None:
    rows = [_row("none", 0.40, 0.900), _row("none", 0.20, 0.900, budget=0.01),
            _row("a", 0.10, 0.895), _row("b", 0.10, 0.880), _row("c", 0.30, 0.900),
            _row("a", 0.15, 0.895, budget=0.01), _row("d", 0.1, 0.9, score="rscp"),
            _row("e", None, 0.9, unsupported=True)]
    records = {(r["defense"], dict(r["point"])["budget"]): r
               for r in compare_to_none(rows, "reduction_ratio")}
    assert set(records) == {("a", "0.02"), ("b", "0.02"), ("c", "0.02"), ("a", "0.01")}
    a = records[("a", "0.02")]
    assert abs(a["left"] - 0.25) < 1e-12 and abs(a["accuracy_change"] + 0.5) < 1e-9
    assert a["halves"] is True
    assert records[("b", "0.02")]["halves"] is False  # halves, but costs 2 points
    assert records[("c", "0.02")]["halves"] is False  # costs nothing, leaves 75 %
    assert abs(records[("a", "0.01")]["left"] - 0.75) < 1e-12  # matched on its own budget
    text = comparison_table(rows, "reduction_ratio")
    assert ("| budget=0.02 | a | ours | hps | 0.400 ± 0.010 | 0.100 ± 0.010 | 0.25 | -0.50 "
            "| yes | 4 |") in text


def test_no_none_twin_gives_no_table() -> None:
    assert comparison_table([_row("a", 0.1, 0.9)], "reduction_ratio") == ""
    # an undefended effect of zero leaves no share to report
    rec = compare_to_none([_row("none", 0.0, 0.9), _row("a", 0.0, 0.9)], "reduction_ratio")
    assert rec[0]["left"] is None and rec[0]["halves"] is False
