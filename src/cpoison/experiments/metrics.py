"""Per-victim attack figures (SPEC 3.3) from a paired benign / poisoned evaluation."""

from __future__ import annotations

import math
from typing import Any

import torch

from cpoison.conformal import coverage, mean_size
from cpoison.experiments.evaluation import EvalViews, ModelEval


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def victim_row(
    benign: ModelEval, victim: ModelEval, score: str, views: EvalViews, labels: torch.Tensor
) -> dict[str, Any]:
    """All figures for one score of one victim pair (mean target set sizes, ratios,
    coverage on targets / other class images / evaluation set, consistency, accuracy)."""
    b, v = benign.sets[score], victim.sets[score]
    y_t, y_o, y_e = labels[views.targets], labels[views.others], labels[views.evaluation]
    bs, vs = mean_size(b["targets"]), mean_size(v["targets"])
    red = _ratio(bs - vs, bs)
    row: dict[str, Any] = {
        "benign_set_size": bs,
        "victim_set_size": vs,
        "reduction_ratio": red,
        "expansion_ratio": _ratio(vs - bs, bs),
        "normalized_reduction": red / (1 - 1 / bs) if bs > 1 else math.nan,
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
    if views.others.numel():
        obs, ovs = mean_size(b["others"]), mean_size(v["others"])
        row.update(others_size_benign=obs, others_size_victim=ovs,
                   others_reduction_ratio=_ratio(obs - ovs, obs),
                   others_coverage_benign=coverage(b["others"], y_o),
                   others_coverage_victim=coverage(v["others"], y_o))
    return row
