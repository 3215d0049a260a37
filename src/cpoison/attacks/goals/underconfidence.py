"""Underconfidence (paper Sec. 4.1, SPEC 4.1): widen each target's set: pull in Y_in = the
labels its surrogate set holds plus Y_a (``add_labels``, else the surrogate's ranks 2..m);
y*_v is kept with the keep hinge (``true_label: keep``) or pulled in with them (``pull``,
Eq. 7 as written, which raises p(y*) against the goal). Measured by the expansion ratio."""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import Masks, SetSizeGoal, true_mask


class Underconfidence(SetSizeGoal):
    name = "underconfidence"
    effect_metric = "expansion_ratio"
    needs_labels_in = True
    sign = -1.0
    verb = "widen"

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep") -> Masks:
        if labels_in is None:
            raise ValueError("underconfidence needs the labels to pull in (y_in)")
        true = true_mask(target_y, num_classes)
        none = torch.zeros_like(true)
        if true_label == "keep":
            return none, labels_in & ~true, true
        return none, labels_in | true, none

    def aim(self, goal, class_name: str) -> str:
        return "widen the prediction sets of chosen test images (targets) (underconfidence)"
