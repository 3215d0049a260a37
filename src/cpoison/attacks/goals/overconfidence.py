"""Overconfidence (paper Sec. 4.1, SPEC 4.1): shrink each target's set to {y*_v}: push out
every other label, keep y*_v; measured by the reduction ratio of the targets' set size."""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import Masks, SetSizeGoal, true_mask


class Overconfidence(SetSizeGoal):
    name = "overconfidence"
    effect_metric = "reduction_ratio"
    needs_room = True
    default_selection = "gradient-norm"  # chosen by pre-registered tuning
    sign = 1.0

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep") -> Masks:
        true = true_mask(target_y, num_classes)
        return ~true, torch.zeros_like(true), true

    def aim(self, goal, class_name: str) -> str:
        return ("shrink the prediction sets of chosen test images (targets) to their "
                "predicted label (overconfidence)")
