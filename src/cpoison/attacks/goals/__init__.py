"""Attack goals (SPEC 4.1, paper Sec. 4.1): which labels to push out of, pull into and keep
in the targets' prediction sets, one file per kind (:mod:`.overconfidence`,
:mod:`.underconfidence`, :mod:`.unequal_coverage`, :mod:`.add_label`, :mod:`.remove_label`),
each holding its loss terms, its rules for targets and bases, and its metrics.

| kind | push out | pull in | keep | margin (y*_v argmax) |
|---|---|---|---|---|
| overconfidence | every y != y*_v | - | y*_v | yes |
| underconfidence | - | Y_in = C(X_v) + Y_a | y*_v (``true_label: pull``: in Y_in) | yes |
| unequal-coverage | y*_v | - | - | yes |
| add-label | - | ``label`` | y*_v | yes |
| remove-label | ``label`` | - | y*_v | yes |

The functions below are the goal-agnostic entry points the rest of cpoison uses.
"""

from __future__ import annotations

import torch

from cpoison.attacks.goals.base import GoalKind, Masks
from cpoison.attacks.goals.model import Goal, check_goal
from cpoison.attacks.goals.registry import GOALS, goal_kind, register_goal

__all__ = ["GOALS", "GOAL_KINDS", "Goal", "GoalKind", "check_goal", "goal_eligibility",
           "goal_kind", "goal_masks", "goal_objective", "labels_to_add", "register_goal"]

GOAL_KINDS: tuple[str, ...] = tuple(GOALS)
"""The goal kinds shipped with cpoison (SPEC 4.1); :data:`GOALS` also holds registered ones."""


def goal_masks(goal: Goal, target_y: torch.Tensor, num_classes: int,
               labels_in: torch.Tensor | None = None, true_label: str = "keep") -> Masks:
    """(push out, pull in, keep) bool masks [V, K] of the goal (table above)."""
    return goal_kind(goal).masks(goal, target_y, num_classes, labels_in, true_label)


def goal_eligibility(goal: Goal, surrogate_sets: torch.Tensor) -> torch.Tensor | None:
    """Which test images can serve as the goal's targets (bool [N]) from the surrogate's
    sets at theta*; None: no rule beyond SPEC 4's. The engine ANDs it with its own."""
    return goal_kind(goal).eligibility(goal, surrogate_sets)


def labels_to_add(goal: Goal, logits: torch.Tensor) -> torch.Tensor:
    """Y_a as a bool mask [V, K]: the explicit list, or the surrogate's ranks 2..m;
    for add-label, the named label."""
    return goal_kind(goal).labels_to_add(goal, logits)


def goal_objective(goal: Goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
    """The goal's discrete objective on the targets' sets (bool [V, K]), lower is better
    (used to select poisons on the attacker's side, SPEC 5.4)."""
    return goal_kind(goal).objective(goal, sets.cpu(), target_y.cpu())
