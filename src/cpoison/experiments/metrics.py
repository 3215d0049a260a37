"""Per-victim attack figures (SPEC 3.3) from a paired benign / poisoned evaluation.

The normalized reduction divides the reduction by the largest one possible (every target's
set a singleton: benign size - 1). When the benign sets are already singletons that bound is
0; so that no victim is dropped from the means (a NaN would silently leave them), the bound
is floored at 1 / V, the reduction of one label on one of the V targets: a pair with
nothing to shrink that shrinks nothing scores 0, and one whose sets grow scores below 0."""

from __future__ import annotations

import math
from typing import Any

import torch

from cpoison.attacks.goal_metrics import goal_metrics
from cpoison.attacks.goals import Goal, goal_kind
from cpoison.conformal import coverage, mean_size, summarize
from cpoison.experiments.evaluation import EvalViews, ModelEval


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def normalized_reduction(benign_size: float, victim_size: float, n_targets: int) -> float:
    """(benign - victim) / max(benign - 1, 1 / V): the share of the largest possible
    reduction that was achieved (module docstring)."""
    return (benign_size - victim_size) / max(benign_size - 1.0, 1.0 / max(n_targets, 1))


def _set_facts(prefix: str, sets: torch.Tensor, labels: torch.Tensor,
               num_classes: int) -> dict[str, Any]:
    facts = summarize(sets, labels, num_classes)
    return {f"{prefix}_{k}": facts[k] for k in (
        "empty_share", "full_share", "class_conditional_coverage", "size_histogram")}


def victim_row(
    benign: ModelEval, victim: ModelEval, score: str, views: EvalViews, labels: torch.Tensor,
    num_classes: int, goal: Goal | None = None, target_class: int | None = None,
) -> dict[str, Any]:
    """All figures for one score of one victim pair (mean target set sizes, ratios,
    coverage on targets / other class images / evaluation set, consistency, accuracy).

    For the goals with their own metric (unequal-coverage, add-label, remove-label; SPEC
    4.1) the row also holds :func:`cpoison.attacks.goal_metrics.goal_metrics`'s figures
    (``goal_effect`` and the goal's coverage or label shares on the targets, the class's
    other images and the evaluation set). Over- and underconfidence rows are unchanged:
    their goal metric is ``reduction_ratio`` / ``expansion_ratio`` (the same numbers)."""
    b, v = benign.sets[score], victim.sets[score]
    y_t, y_o, y_e = labels[views.targets], labels[views.others], labels[views.evaluation]
    bs, vs = mean_size(b["targets"]), mean_size(v["targets"])
    red = _ratio(bs - vs, bs)
    row: dict[str, Any] = {
        "benign_set_size": bs,
        "victim_set_size": vs,
        "reduction_ratio": red,
        "expansion_ratio": _ratio(vs - bs, bs),
        "normalized_reduction": normalized_reduction(bs, vs, int(views.targets.numel())),
        "consistency": float(
            (benign.predictions[views.targets] == victim.predictions[views.targets])
            .float().mean()
        ),
        "target_coverage_benign": coverage(b["targets"], y_t),
        "target_coverage_victim": coverage(v["targets"], y_t),
        "coverage_benign": coverage(b["evaluation"], y_e),
        "coverage_victim": coverage(v["evaluation"], y_e),
        "eval_size_benign": mean_size(b["evaluation"]),
        "eval_size_victim": mean_size(v["evaluation"]),
        "accuracy_benign": benign.accuracy,
        "accuracy_victim": victim.accuracy,
        "target_singletons_victim": float((v["targets"].sum(1) == 1).float().mean()),
        "target_accuracy_benign": float((benign.predictions[views.targets] == y_t).float().mean()),
        "target_accuracy_victim": float((victim.predictions[views.targets] == y_t).float().mean()),
    }
    row.update(_set_facts("eval_benign", b["evaluation"], y_e, num_classes))
    row.update(_set_facts("eval_victim", v["evaluation"], y_e, num_classes))
    row.update(_set_facts("target_benign", b["targets"], y_t, num_classes))
    row.update(_set_facts("target_victim", v["targets"], y_t, num_classes))
    if views.others.numel():
        obs, ovs = mean_size(b["others"]), mean_size(v["others"])
        row.update(others_size_benign=obs, others_size_victim=ovs,
                   others_reduction_ratio=_ratio(obs - ovs, obs),
                   others_coverage_benign=coverage(b["others"], y_o),
                   others_coverage_victim=coverage(v["others"], y_o))
    if goal is not None and goal_kind(goal).own_metrics:
        groups = {"targets": y_t, "others": y_o, "evaluation": y_e}
        row.update(goal_metrics(goal, {g: b[g] for g in groups}, {g: v[g] for g in groups},
                                groups, target_class))
    return row
