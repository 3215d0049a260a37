"""Unequal coverage (SPEC 4.1): the sets of one class's images (the subgroup,
``subgroup_class``; None: the target class) miss their true label while marginal coverage
stays >= 1 - alpha (the victim recalibrates on clean data, so it needs no loss term).

Loss: push y*_v out; stealth is the prediction margin only (y*_v stays the argmax), so the
subgroup loses coverage through sets that no longer hold the still-predicted label (empty
sets for HPS). Through APS / RAPS the top label's score is u * p(y*), whose push-out
gradient makes the model more confident and the victim's recalibration undoes it (measured
on digits: no coverage drop through APS / RAPS / NLL, 0.93 -> 0.53 through HPS); craft it
through HPS. Bases: images of the target class with their own label can only raise p(y*),
so they come from the other classes (measured cos(G(delta), g) on digits 0.54 vs -0.03)."""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import GoalKind, Masks, coverage_or_nan, pair, true_mask
from cpoison.errors import ConfigError


class UnequalCoverage(GoalKind):
    name = "unequal-coverage"
    poison_class = "other"
    protocol_version = 1
    subgroup_field = True
    columns = (("goal_effect", "coverage drop (targets)"),
               ("subgroup_target_coverage_victim", "target cov. victim"),
               ("subgroup_coverage_benign", "class cov. benign"),
               ("subgroup_coverage_victim", "class cov. victim"),
               ("marginal_coverage_victim", "marginal cov. victim"),
               ("coverage_gap_victim", "gap victim"))

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep") -> Masks:
        true = true_mask(target_y, num_classes)
        none = torch.zeros_like(true)
        return true, none, none

    def target_class(self, goal) -> int | None:
        return goal.subgroup_class

    def check(self, goal, num_classes: int, target_class: int | None) -> None:
        if target_class is not None and goal.subgroup_class not in (None, target_class):
            raise ConfigError(
                f"goal.subgroup_class {goal.subgroup_class} differs from the target class "
                f"{target_class}; unequal-coverage draws its targets from the subgroup")

    def objective(self, goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
        return float(sets.bool().cpu().gather(1, target_y.cpu()[:, None]).float().mean())

    def metrics(self, goal, benign_sets, victim_sets, labels, target_class=None):
        b_t, v_t, y_t = benign_sets["targets"], victim_sets["targets"], labels["targets"]
        row: dict[str, float] = {}
        c = goal.subgroup_class if goal.subgroup_class is not None else target_class
        if c is None:
            c = int(torch.mode(y_t).values) if y_t.numel() else -1
        row["subgroup_class"] = float(c)
        pair(row, "subgroup_target_coverage", coverage_or_nan(b_t, y_t),
             coverage_or_nan(v_t, y_t))
        row["goal_effect"] = (row["subgroup_target_coverage_benign"]
                              - row["subgroup_target_coverage_victim"])
        if "others" in benign_sets:
            b_o, v_o, y_o = benign_sets["others"], victim_sets["others"], labels["others"]
            pair(row, "subgroup_coverage", coverage_or_nan(b_o, y_o),
                 coverage_or_nan(v_o, y_o))
        if "evaluation" in benign_sets:
            b_e, v_e, y_e = (benign_sets["evaluation"], victim_sets["evaluation"],
                             labels["evaluation"])
            pair(row, "marginal_coverage", coverage_or_nan(b_e, y_e),
                 coverage_or_nan(v_e, y_e))
            rest = y_e != c
            pair(row, "rest_coverage", coverage_or_nan(b_e[rest], y_e[rest]),
                 coverage_or_nan(v_e[rest], y_e[rest]))
            if "others" in benign_sets:
                for side in ("benign", "victim"):
                    row[f"coverage_gap_{side}"] = (row[f"marginal_coverage_{side}"]
                                                   - row[f"subgroup_coverage_{side}"])
        return row

    def effect_phrase(self, goal, class_name: str, fig) -> str:
        return (f"the subgroup's targets lose coverage: "
                f"{fig('subgroup_target_coverage_benign')} -> "
                f"{fig('subgroup_target_coverage_victim')} (drop "
                f"{fig('goal_effect', pct=True)}); the class's other test images: "
                f"{fig('subgroup_coverage_benign')} -> {fig('subgroup_coverage_victim')}; "
                f"marginal coverage {fig('marginal_coverage_benign')} -> "
                f"{fig('marginal_coverage_victim')}")

    def aim(self, goal, class_name: str) -> str:
        return ("make the sets of one class's images miss their true label (unequal "
                "coverage for that class) while marginal coverage stays")
