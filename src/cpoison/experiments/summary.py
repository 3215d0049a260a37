"""Aggregation (SPEC 6): per repeat, average over victims; report mean +/- standard error
across repeats, or across victims when there is a single repeat (``se_over`` says which).
Every summary row says how many victims and repeats stand behind it (``n_victims``,
``n_repeats``); rows are grouped by grid point, attack, score and defense (SPEC 7)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

METRICS = (
    "benign_set_size", "victim_set_size", "reduction_ratio", "expansion_ratio",
    "normalized_reduction", "consistency", "coverage_benign", "coverage_victim",
    "target_coverage_benign", "target_coverage_victim", "eval_size_benign", "eval_size_victim",
    "accuracy_benign", "accuracy_victim", "target_singletons_victim", "others_size_benign",
    "others_size_victim", "others_reduction_ratio", "target_accuracy_benign",
    "target_accuracy_victim",
)
METRICS += (
    "eval_benign_empty_share", "eval_victim_empty_share", "eval_benign_full_share",
    "eval_victim_full_share", "target_victim_empty_share", "target_victim_full_share",
)
# The goals' own figures (SPEC 4.1, cpoison.attacks.goal_metrics; unequal-coverage,
# add-label and remove-label rows only).
GOAL_METRICS = ("goal_effect",) + tuple(
    f"{name}_{side}" for name in (
        "subgroup_target_coverage", "subgroup_coverage", "marginal_coverage", "rest_coverage",
        "coverage_gap", "label_share", "label_share_others", "label_share_evaluation",
        "true_label_coverage") for side in ("benign", "victim"))
METRICS += GOAL_METRICS
# Per-class and per-size lists: averaged element-wise over every victim of the group.
LIST_METRICS = (
    "eval_benign_class_conditional_coverage", "eval_victim_class_conditional_coverage",
    "eval_benign_size_histogram", "eval_victim_size_histogram",
    "target_benign_size_histogram", "target_victim_size_histogram",
)
# Defense figures (SPEC 7): the shares of poisons and of clean points a defense removed,
# and RPS's certificate of the targets' sets (rows without them are skipped).
METRICS += (
    "poisons_removed_share", "clean_removed_share", "clean_removed_share_benign",
    "certified_train_radius_benign", "certified_train_radius_victim",
    "certified_calib_radius_benign", "certified_calib_radius_victim",
    "certified_against_poisons_benign", "certified_against_poisons_victim",
)
KEYS = ("attack", "goal", "score", "budget", "eps", "loss", "order", "craft_score", "setting",
        "defense")


def mean_se(values: list[float]) -> dict[str, float | None]:
    """{"mean", "se"} ignoring NaN; se is None with fewer than two values."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "se": None}
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else None
    return {"mean": float(arr.mean()), "se": se}


def summarize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per (grid point, attack, score, defense), in first-seen order (rows
    stored before defenses existed count as defense ``none``). A score no victim of the
    group could be evaluated with under its defense (RSCP under RPS) keeps its row, marked
    ``unsupported``, without figures."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        point = repr(sorted((row.get("point") or {}).items()))
        groups[(point, row["attack"], row["score"], row.get("defense") or "none")].append(row)
    out = []
    for members in groups.values():
        repeats = sorted({m["repeat"] for m in members})
        summary: dict[str, Any] = {k: members[0].get(k) for k in KEYS}
        summary["defense"] = summary["defense"] or "none"
        summary["point"] = members[0].get("point") or {}
        if all(m.get("unsupported") for m in members):
            summary["unsupported"] = True
            summary["unsupported_reason"] = members[0].get("unsupported_reason")
        for metric in METRICS:
            per_victim = [m.get(metric) for m in members]
            if all(v is None for v in per_victim):
                continue
            if len(repeats) > 1:
                per_repeat = [
                    mean_se([m.get(metric) for m in members if m["repeat"] == r])["mean"]
                    for r in repeats
                ]
                summary[metric] = mean_se(per_repeat)
            else:
                summary[metric] = mean_se(per_victim)
        for metric in LIST_METRICS:
            lists = [m[metric] for m in members if m.get(metric) is not None]
            if lists:
                summary[metric] = [
                    mean_se([v for v in column if v is not None])["mean"]
                    for column in zip(*lists)
                ]
        crafts = {(m["repeat"]): m.get("craft_seconds") for m in members}
        summary["craft_seconds"] = mean_se([v for v in crafts.values() if v is not None])["mean"]
        summary["n_victims"] = len({(m["repeat"], m["victim"]) for m in members})
        summary["n_repeats"] = len(repeats)
        summary["se_over"] = "repeats" if len(repeats) > 1 else "victims"
        summary["target_classes"] = sorted({m["target_class"] for m in members})
        out.append(summary)
    return out
