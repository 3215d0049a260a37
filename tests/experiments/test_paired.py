"""Paired comparisons: differences on the same victims (two attacks, two grid points of one
attack, one attack's own effect), per-repeat means, one-sided t."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cpoison.experiments.paired import (
    effect_intervals,
    one_sided_interval,
    paired_comparisons,
    paired_differences,
    point_differences,
    verdict,
)


def _rows(effects: dict[str, list[list[float]]]) -> list[dict]:
    """attack -> [repeat][victim] reduction ratios, as per-victim result rows."""
    rows = []
    for attack, repeats in effects.items():
        for r, victims in enumerate(repeats):
            for v, value in enumerate(victims):
                rows.append({"attack": attack, "score": "hps", "repeat": r, "victim": v,
                             "point": {}, "reduction_ratio": value})
    return rows


def test_one_sided_interval_is_students_t() -> None:
    out = one_sided_interval([0.1, 0.3, 0.2, 0.4])
    se = 0.12909944487358055 / 2
    assert out["mean"] == pytest.approx(0.25) and out["se"] == pytest.approx(se)
    assert out["lower"] == pytest.approx(0.25 - stats.t.ppf(0.95, 3) * se)
    assert one_sided_interval([0.2])["lower"] is None


def test_differences_are_paired_per_victim_and_averaged_per_repeat() -> None:
    # victim-to-victim spread is large, the paired difference is constant
    rows = _rows({"ours": [[0.5, 0.1], [0.6, 0.2], [0.4, 0.0]],
                  "randun": [[0.4, 0.0], [0.5, 0.1], [0.3, -0.1]]})
    d = paired_differences(rows, "ours", "randun", "reduction_ratio")[("[]", "hps", "none")]
    assert d["mean"] == pytest.approx(0.1) and d["se"] == pytest.approx(0.0, abs=1e-12)
    assert d["units"] == "repeats" and d["n"] == 3 and d["victims"] == 6


def test_comparison_takes_the_better_baseline_and_decides() -> None:
    rows = _rows({"ours": [[0.30, 0.32], [0.28, 0.35], [0.31, 0.30]],
                  "randun": [[0.10, 0.12], [0.09, 0.11], [0.10, 0.13]],
                  "randga": [[0.20, 0.22], [0.18, 0.21], [0.19, 0.20]],
                  "weak": [[0.18, 0.22], [0.20, 0.19], [0.21, 0.20]]})
    out = {c["attack"]: c for c in paired_comparisons(rows, "reduction_ratio")}
    assert out["ours"]["baseline"] == "randga" and out["ours"]["verdict"] == "held"
    assert out["weak"]["verdict"] == "indistinguishable"
    assert verdict({"mean": -0.2, "se": 0.01, "lower": -0.22}) == "not held"
    assert verdict({"mean": None}) == "not run"


def test_two_grid_points_of_one_attack_are_paired_by_score_repeat_victim() -> None:
    """eps 32/255 against 8/255: each victim's large offset is shared by both points, so the
    paired difference is exact; rows of another attack or score never pair."""
    rows = []
    offsets = [[0.3, -0.2], [0.1, -0.4], [0.5, 0.0]]
    for eps, gain in (("8/255", 0.0), ("32/255", 0.05)):
        for r, victims in enumerate(offsets):
            for v, offset in enumerate(victims):
                for score in ("hps", "raps"):
                    rows.append({"attack": "ours", "score": score, "repeat": r, "victim": v,
                                 "point": {"eps": eps, "budget": 0.02},
                                 "reduction_ratio": 0.2 + offset + gain})
                rows.append({"attack": "randun", "score": "hps", "repeat": r, "victim": v,
                             "point": {"eps": eps, "budget": 0.02}, "reduction_ratio": 9.0})
    out = point_differences(rows, "ours", "reduction_ratio", "eps", "32/255", "8/255")
    assert set(out) == {("[('budget', 0.02)]", "hps", "none"),
                        ("[('budget', 0.02)]", "raps", "none")}
    d = out[("[('budget', 0.02)]", "hps", "none")]
    assert d["mean"] == pytest.approx(0.05) and d["se"] == pytest.approx(0.0, abs=1e-12)
    assert (d["n"], d["repeats"], d["victims"], d["units"]) == (3, 3, 6, "repeats")
    assert verdict(d) == "held"
    # a share of the smaller point: 32/255 keeps at least 40 % of 8/255's reduction
    kept = point_differences(rows, "ours", "reduction_ratio", "eps", "32/255", "8/255",
                             weight=0.4)
    assert kept[("[('budget', 0.02)]", "hps", "none")]["mean"] == pytest.approx(
        np.mean([0.25 + o - 0.4 * (0.2 + o) for vs in offsets for o in vs]))


def test_a_defense_against_none_is_a_pair_of_grid_points() -> None:
    rows = []
    for defense, effect in (("none", 0.4), ("maxup", 0.3)):
        for r in range(3):
            for v in range(2):
                rows.append({"attack": "ours", "score": "hps", "repeat": r, "victim": v,
                             "defense": defense, "point": {"defense": defense},
                             "reduction_ratio": effect + 0.01 * r})
    out = point_differences(rows, "ours", "reduction_ratio", "defense", "maxup", "none")
    assert list(out) == [("[]", "hps", "maxup")]
    assert out[("[]", "hps", "maxup")]["mean"] == pytest.approx(-0.1)


def test_effect_intervals_of_one_attack() -> None:
    rows = _rows({"ours": [[0.3, 0.5], [0.2, 0.4], [0.35, 0.45]]})
    d = effect_intervals(rows, "ours", "reduction_ratio")[("[]", "hps", "none")]
    assert d["mean"] == pytest.approx(np.mean([0.4, 0.3, 0.4]))
    assert d["lower"] == pytest.approx(
        d["mean"] - stats.t.ppf(0.95, 2) * np.std([0.4, 0.3, 0.4], ddof=1) / np.sqrt(3))
    # a function of a row: the level as a margin
    margin = effect_intervals(rows, "ours", lambda r: r["reduction_ratio"] - 0.5)
    assert margin[("[]", "hps", "none")]["mean"] == pytest.approx(d["mean"] - 0.5)
    assert verdict(margin[("[]", "hps", "none")]) == "not held"
