"""Remove a label (SPEC 4.1): push one named label out of the targets' sets while y*_v
stays. Targets: those whose surrogate set holds the label (on a well-trained model most
sets are singletons, so without this rule few targets would have it to lose). Bases:
target-class images (measured cos(G(delta), g) on digits 0.97)."""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import LabelGoal, Masks


class RemoveLabel(LabelGoal):
    name = "remove-label"
    sign = 1.0

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep") -> Masks:
        named, true = self.named(goal, target_y, num_classes)
        return named, torch.zeros_like(true), true

    def eligibility(self, goal, surrogate_sets: torch.Tensor) -> torch.Tensor | None:
        return surrogate_sets[:, goal.label].clone()

    def eligibility_text(self, goal, score: str) -> str | None:
        return (f"whose surrogate {score.upper()} set holds label {goal.label} (goal "
                f"{self.name}; try a smaller alpha or another target class)")

    def aim(self, goal, class_name: str) -> str:
        return (f"take label {class_name} out of the targets' sets while their true label "
                "stays")
