"""Add a label (SPEC 4.1): pull one named label into the targets' sets while y*_v stays.
Targets: those whose surrogate set lacks the label. Bases: images of the label to add
(images of the target class with their own label can only raise p(y*); measured
cos(G(delta), g) on digits 0.94 vs -0.38)."""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import LabelGoal, Masks


class AddLabel(LabelGoal):
    name = "add-label"
    poison_class = "labels-to-add"
    sign = -1.0
    verb = "enters"
    columns = (("goal_effect", "share rise"),) + LabelGoal.columns[1:]

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep") -> Masks:
        named, true = self.named(goal, target_y, num_classes)
        return torch.zeros_like(true), named, true

    def eligibility(self, goal, surrogate_sets: torch.Tensor) -> torch.Tensor | None:
        return ~surrogate_sets[:, goal.label]

    def eligibility_text(self, goal, score: str) -> str | None:
        return (f"whose surrogate {score.upper()} set lacks label {goal.label} (goal "
                f"{self.name}; try a smaller alpha or another target class)")

    def labels_to_add(self, goal, logits: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        mask[:, goal.label] = True
        return mask

    def aim(self, goal, class_name: str) -> str:
        return f"put label {class_name} into the targets' sets while their true label stays"
