"""Attack goals (SPEC 4.1, paper Sec. 4.1): which labels to push out of, pull into and keep
in the targets' prediction sets.

Every goal is a choice, per target v, of labels to *push out* of C(X_v), labels to *pull
in* and labels to *keep* (:func:`goal_masks`), plus the Eq. 7 stealth margin that keeps
y*_v the argmax. The relaxed loss (:func:`cpoison.attacks.losses.relaxed_loss`) turns the
three masks into Eq. 7's hinges through any score.

| kind | push out | pull in | keep | margin (y*_v argmax) |
|---|---|---|---|---|
| overconfidence | every y != y*_v | - | y*_v | yes |
| underconfidence | - | Y_in = C(X_v) + Y_a + {y*_v} | - | yes |
| unequal-coverage | y*_v | - | - | yes |
| add-label | - | ``label`` | y*_v | yes |
| remove-label | ``label`` | - | y*_v | yes |

Unequal coverage (the subgroup is one class, ``subgroup_class``; its test images are the
targets, so an experiment's target class *is* the subgroup): pushing the true label out is
the goal itself, so "y*_v stays in the set" cannot be its stealth term. Its stealth is the
prediction margin only: y*_v stays the argmax, so the subgroup's top-1 accuracy and the
victim's prediction consistency do not betray the attack; the subgroup loses coverage
through sets that no longer hold the (still predicted) true label, which for HPS means
empty sets. Marginal coverage >= 1 - alpha needs no loss term: the victim recalibrates on
its own clean calibration set, so split CP stays marginally valid for any trained model
(the subgroup's lost coverage is paid for by the other classes); it is *reported*
(:func:`cpoison.attacks.goal_metrics.goal_metrics`), not optimised. Scores: through HPS
the push-out of y*_v moves p(y*_v) down as wanted; through APS / RAPS the score of the
top-ranked label is u * p(y*_v), so its push-out gradient makes the model *more* confident
and the victim's recalibration undoes it (measured on digits: no coverage drop through
APS / RAPS / NLL, 0.93 -> 0.53 through HPS); craft unequal coverage through HPS.

Poison bases (measured cos(G(delta), g) on digits, tests/attacks/test_goal_kinds.py):
images of the target class with their own label can only raise p(y*_v), so
unequal-coverage needs bases from the *other* classes and add-label bases of the label to
add (:func:`labels_to_add` returns it, for ``poison_class='labels-to-add'``);
remove-label works with target-class bases.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cpoison.errors import ConfigError

__all__ = ["GOAL_KINDS", "Goal", "check_goal", "goal_eligibility", "goal_masks", "goal_objective",
           "labels_to_add"]

GoalKind = Literal[
    "overconfidence", "underconfidence", "unequal-coverage", "add-label", "remove-label"
]
GOAL_KINDS: tuple[str, ...] = (
    "overconfidence", "underconfidence", "unequal-coverage", "add-label", "remove-label"
)
"""Every goal kind (SPEC 4.1)."""

_LABEL_KINDS = ("add-label", "remove-label")


class Goal(BaseModel):
    """``overconfidence`` shrinks each target's set to {y*_v}; ``underconfidence`` widens it
    with Y_in = C(X_v) plus Y_a. Y_a is ``add_labels`` when given, else the labels the
    surrogate ranks 2..``add_top``. ``beta`` caps the margin (stealth) term of Eq. 7.

    ``unequal-coverage`` pushes the true label out of the sets of one class's images (the
    subgroup ``subgroup_class``; None: the experiment's target class); ``add-label`` pulls
    the named ``label`` into the targets' sets while y*_v stays; ``remove-label`` pushes
    ``label`` out of them while y*_v stays (SPEC 4.1; see the module docstring for each
    goal's push / pull / keep labels and stealth terms)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: GoalKind = "overconfidence"
    beta: float = Field(1.0, ge=0)
    add_top: int = Field(3, ge=2, description="m: Y_a = labels ranked 2..m by the surrogate")
    add_labels: tuple[int, ...] | None = None
    label: int | None = Field(
        None, ge=0, description="add-label / remove-label: the label to add or remove"
    )
    subgroup_class: int | None = Field(
        None, ge=0, description="unequal-coverage: the class whose coverage falls "
        "(None: the target class)"
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Goal:
        if self.kind in _LABEL_KINDS and self.label is None:
            raise ValueError(f"goal.label is required for goal.kind={self.kind!r} "
                             "(the class index of the label to "
                             f"{'add' if self.kind == 'add-label' else 'remove'})")
        if self.kind not in _LABEL_KINDS and self.label is not None:
            raise ValueError(f"goal.label is only used by add-label / remove-label, not by "
                             f"goal.kind={self.kind!r}")
        if self.kind != "unequal-coverage" and self.subgroup_class is not None:
            raise ValueError(f"goal.subgroup_class is only used by unequal-coverage, not by "
                             f"goal.kind={self.kind!r}")
        return self

    def target_class(self) -> int | None:
        """The class the targets must be drawn from, when the goal fixes it
        (unequal-coverage with ``subgroup_class``), else None."""
        return self.subgroup_class if self.kind == "unequal-coverage" else None


def check_goal(goal: Goal, num_classes: int, target_class: int | None = None) -> None:
    """Check the goal's class indices against the dataset (SPEC 4.1, SPEC 10: one message
    naming the field), before any training.

    Args:
        goal: the goal.
        num_classes: K, the number of classes of the dataset.
        target_class: the class the targets are drawn from, when known.

    Raises:
        ConfigError: ``goal.label`` / ``goal.subgroup_class`` / ``goal.add_labels`` outside
            0..K-1; add-label / remove-label naming the targets' own class (y*_v cannot be
            added nor removed while it stays in the set); unequal-coverage whose subgroup is
            not the target class.
    """
    rng = f"0..{num_classes - 1}"
    if goal.label is not None and not 0 <= goal.label < num_classes:
        raise ConfigError(f"goal.label {goal.label} is not a class of the dataset ({rng})")
    if goal.subgroup_class is not None and not 0 <= goal.subgroup_class < num_classes:
        raise ConfigError(
            f"goal.subgroup_class {goal.subgroup_class} is not a class of the dataset ({rng})"
        )
    wrong = [y for y in goal.add_labels or () if not 0 <= y < num_classes]
    if wrong:
        raise ConfigError(f"goal.add_labels {wrong} are not classes of the dataset ({rng})")
    if target_class is None:
        return
    if goal.kind in _LABEL_KINDS and goal.label == target_class:
        raise ConfigError(
            f"goal.label {goal.label} is the targets' own class; {goal.kind} needs another "
            "label (the true label stays in the set)"
        )
    if goal.kind == "unequal-coverage" and goal.subgroup_class not in (None, target_class):
        raise ConfigError(
            f"goal.subgroup_class {goal.subgroup_class} differs from the target class "
            f"{target_class}; unequal-coverage draws its targets from the subgroup"
        )


def goal_eligibility(goal: Goal, surrogate_sets: torch.Tensor) -> torch.Tensor | None:
    """Which test images can serve as targets of the goal (bool [N]), from the surrogate's
    prediction sets at theta* with the attacker's threshold (bool [N, K]); None: no
    constraint beyond SPEC 4's (correctly classified images of the target class).

    remove-label needs targets whose set holds the label (else nothing can be removed and
    the goal's metric cannot move); add-label needs targets whose set lacks it. On a
    well-trained model most sets are singletons, so without this rule remove-label targets
    rarely hold the label. The engine ANDs this with its own eligibility.
    """
    if goal.kind == "remove-label":
        return surrogate_sets[:, goal.label].clone()
    if goal.kind == "add-label":
        return ~surrogate_sets[:, goal.label]
    return None


def labels_to_add(goal: Goal, logits: torch.Tensor) -> torch.Tensor:
    """Y_a as a bool mask [V, K]: the explicit list, or the surrogate's ranks 2..m;
    for add-label, the named label."""
    v, k = logits.shape
    mask = torch.zeros(v, k, dtype=torch.bool, device=logits.device)
    if goal.kind == "add-label":
        mask[:, goal.label] = True
        return mask
    if goal.add_labels is not None:
        mask[:, list(goal.add_labels)] = True
        return mask
    ranks = logits.argsort(dim=1, descending=True, stable=True)[:, 1 : min(goal.add_top, k)]
    mask.scatter_(1, ranks, True)
    return mask


def goal_masks(
    goal: Goal, target_y: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(push out, pull in, keep) bool masks [V, K] of the goals that need no surrogate
    (unequal-coverage, add-label, remove-label; SPEC 4.1 table in the module docstring).

    The named label is dropped for a target whose true label it is (the keep term wins);
    :func:`check_goal` with the target class rejects that configuration up front.

    Raises:
        ValueError: for overconfidence / underconfidence (their masks live in
            :func:`cpoison.attacks.losses.relaxed_loss` and ``loss_data``), or a label
            outside 0..K-1.
    """
    v = target_y.shape[0]
    true = torch.zeros(v, num_classes, dtype=torch.bool, device=target_y.device)
    true.scatter_(1, target_y[:, None], True)
    none = torch.zeros_like(true)
    if goal.kind == "unequal-coverage":
        return true, none, none
    if goal.kind in _LABEL_KINDS:
        assert goal.label is not None
        if not 0 <= goal.label < num_classes:
            raise ValueError(f"goal.label {goal.label} is not one of {num_classes} classes")
        named = none.clone()
        named[:, goal.label] = True
        named &= ~true
        if goal.kind == "add-label":
            return none, named, true
        return named, none, true
    raise ValueError(f"goal {goal.kind!r} has no surrogate-free masks")


def goal_objective(goal: Goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
    """The goal's discrete objective on the targets' sets (bool [V, K]), lower is better
    (SPEC 4.2's l1, used to select poisons on the attacker's side, SPEC 5.4):
    overconfidence the mean set size, underconfidence minus it, unequal coverage the
    targets' coverage, add-label minus the share of sets holding the label, remove-label
    that share."""
    sets = sets.bool().cpu()
    target_y = target_y.cpu()
    if goal.kind == "overconfidence":
        return float(sets.sum(1).float().mean())
    if goal.kind == "underconfidence":
        return -float(sets.sum(1).float().mean())
    if goal.kind == "unequal-coverage":
        return float(sets.gather(1, target_y[:, None]).float().mean())
    share = float(sets[:, goal.label].float().mean())
    return -share if goal.kind == "add-label" else share
