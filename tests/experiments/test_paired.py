"""Paired comparisons: differences on the same victims, per-repeat means, one-sided t."""

from __future__ import annotations

import pytest
from scipy import stats

from cpoison.experiments.paired import (
    one_sided_interval,
    paired_comparisons,
    paired_differences,
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
