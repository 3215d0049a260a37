"""What a goal kind is (SPEC 4.1): its loss terms (labels to push out, pull in and keep), its
rule for targets and poison bases, its metrics and its words. One file per kind beside this
one, one line in :mod:`cpoison.attacks.goals.registry`; nothing else looks at a goal's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

import torch

from cpoison.conformal import coverage, mean_size


class Goal(Protocol):
    """What a kind reads of a goal (:class:`cpoison.attacks.goals.model.Goal`)."""

    kind: str
    beta: float
    add_top: int
    add_labels: tuple[int, ...] | None
    label: int | None
    subgroup_class: int | None

Masks = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(push out, pull in, keep) bool [V, K]."""
Figure = Callable[..., str]
"""(row key, pct=False) -> the row's figure formatted as mean +/- s.e."""


def true_mask(target_y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """bool [V, K]: y*_v of each target."""
    true = torch.zeros(target_y.shape[0], num_classes, dtype=torch.bool,
                       device=target_y.device)
    true.scatter_(1, target_y[:, None], True)
    return true


def pair(row: dict[str, float], name: str, benign: float, victim: float) -> None:
    row[f"{name}_benign"] = benign
    row[f"{name}_victim"] = victim


def coverage_or_nan(sets: torch.Tensor, labels: torch.Tensor) -> float:
    return coverage(sets, labels) if sets.shape[0] else math.nan


class GoalKind:
    """Defaults shared by the kinds; a kind overrides what differs.

    ``poison_class``: where its poison bases come from when a config does not say
    (``target``, ``other``, ``labels-to-add``); ``effect_metric``: the summary column that
    measures it; ``protocol_version``: part of its poisons' keys (targets and bases chosen by
    the goal); ``label_field`` / ``subgroup_field``: whether ``goal.label`` /
    ``goal.subgroup_class`` belong to it; ``needs_labels_in``: its loss needs Y_in, the
    labels the surrogate's sets hold plus the labels to add; ``target_rule``: its targets are
    chosen by :meth:`eligibility` on the surrogate's sets."""

    name: str = ""
    poison_class: str = "target"
    effect_metric: str = "goal_effect"
    protocol_version: int | None = None
    label_field: bool = False
    subgroup_field: bool = False
    needs_labels_in: bool = False
    target_rule: bool = False  # :meth:`eligibility` needs the surrogate's sets
    needs_room: bool = False  # nothing to do where the targets' sets are single labels
    own_metrics: bool = True  # metrics beyond the set-size figures every row has
    columns: tuple[tuple[str, str], ...] = ()  # (row key, title) of its report table
    # poison base selection an audit uses when not told (the tuned default where one was
    # tuned: overconfidence; elsewhere each target's nearest images)
    default_selection: str = "nearest"

    # -- loss terms (SPEC 4.2) -------------------------------------------------------------
    def masks(self, goal: Goal, target_y: torch.Tensor, num_classes: int,
              labels_in: torch.Tensor | None = None, true_label: str = "keep") -> Masks:
        """The labels to push out of, pull into and keep in each target's set."""
        raise NotImplementedError

    # -- targets and bases -----------------------------------------------------------------
    def eligibility(self, goal: Goal, surrogate_sets: torch.Tensor) -> torch.Tensor | None:
        """Which test images may be its targets (bool [N]) from the surrogate's sets at
        theta* with the attacker's threshold; None: no rule of its own."""
        return None

    def eligibility_text(self, goal: Goal, score: str) -> str | None:
        """The rule of :meth:`eligibility` in words (for the message when none qualifies)."""
        return None

    def target_class(self, goal: Goal) -> int | None:
        """The class the targets must come from, when the goal fixes it."""
        return None

    def excluded_target_classes(self, goal: Goal) -> set[int]:
        """Classes a random target class must not be."""
        return set()

    def labels_to_add(self, goal: Goal, logits: torch.Tensor) -> torch.Tensor:
        """Y_a as bool [V, K]: ``goal.add_labels``, else the surrogate's ranks 2..m."""
        v, k = logits.shape
        mask = torch.zeros(v, k, dtype=torch.bool, device=logits.device)
        if goal.add_labels is not None:
            mask[:, list(goal.add_labels)] = True
            return mask
        ranks = logits.argsort(dim=1, descending=True, stable=True)[:, 1:min(goal.add_top, k)]
        mask.scatter_(1, ranks, True)
        return mask

    def check(self, goal: Goal, num_classes: int, target_class: int | None) -> None:
        """Kind-specific checks against the dataset and target class (ConfigError)."""

    # -- metrics ---------------------------------------------------------------------------
    def objective(self, goal: Goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
        """Its discrete objective on the targets' sets, lower is better (SPEC 4.2's l1;
        selection on the attacker's side, SPEC 5.4)."""
        raise NotImplementedError

    def metrics(self, goal: Goal, benign_sets: Mapping[str, torch.Tensor],
                victim_sets: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor],
                target_class: int | None = None) -> dict[str, float]:
        """Its own figures, benign vs poisoned, with ``goal_effect`` (larger: more done)."""
        raise NotImplementedError

    # -- words -----------------------------------------------------------------------------
    def aim(self, goal: Goal, class_name: str) -> str:
        """What the attacker tries, in a sentence's words (``class_name``: goal.label's)."""
        raise NotImplementedError

    def effect_phrase(self, goal: Goal, class_name: str, fig: Figure) -> str:
        """What the attack did to the targets, in words; ``fig(key, pct)`` formats a row's
        figure (mean +/- s.e.)."""
        raise NotImplementedError


class SetSizeGoal(GoalKind):
    """Over- and underconfidence: the targets' mean set size moves (shrink: sign +1)."""

    sign = 1.0
    own_metrics = False
    verb = "shrink"

    def effect_phrase(self, goal: Goal, class_name: str, fig: Figure) -> str:
        noun = self.effect_metric.split("_")[0]
        return (f"the targets' sets {self.verb} from {fig('benign_set_size')} to "
                f"{fig('victim_set_size')} labels on average ({noun} "
                f"{fig(self.effect_metric, pct=True)})")

    def objective(self, goal: Goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
        return self.sign * float(sets.bool().sum(1).float().mean())

    def metrics(self, goal: Goal, benign_sets: Mapping[str, torch.Tensor],
                victim_sets: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor],
                target_class: int | None = None) -> dict[str, float]:
        row: dict[str, float] = {}
        bs, vs = mean_size(benign_sets["targets"]), mean_size(victim_sets["targets"])
        pair(row, "target_size", bs, vs)
        row["goal_effect"] = self.sign * (bs - vs) / bs if bs > 0 else math.nan
        return row


class LabelGoal(GoalKind):
    """Add-label and remove-label: one named label enters or leaves the targets' sets while
    y*_v stays (sign +1: the share of sets holding it should fall)."""

    sign = 1.0
    label_field = True
    target_rule = True
    protocol_version = 1
    verb = "leaves"
    columns = (("goal_effect", "share fall"), ("label_share_benign", "share benign"),
               ("label_share_victim", "share victim"),
               ("label_share_evaluation_victim", "share eval. victim"),
               ("true_label_coverage_victim", "true label kept"))

    def effect_phrase(self, goal: Goal, class_name: str, fig: Figure) -> str:
        return (f"label {class_name} {self.verb} the targets' sets: held by "
                f"{fig('label_share_benign', pct=True)} -> "
                f"{fig('label_share_victim', pct=True)} of them; the true label stays in "
                f"{fig('true_label_coverage_victim', pct=True)}")

    def check(self, goal: Goal, num_classes: int, target_class: int | None) -> None:
        from cpoison.errors import ConfigError

        if target_class is not None and goal.label == target_class:
            raise ConfigError(
                f"goal.label {goal.label} is the targets' own class; {self.name} needs "
                "another label (the true label stays in the set)")

    def excluded_target_classes(self, goal: Goal) -> set[int]:
        return {int(goal.label)} if goal.label is not None else set()

    def named(self, goal: Goal, target_y: torch.Tensor, num_classes: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the named label, y*) as bool [V, K]; the named label is dropped for a target
        whose true label it is (the keep term wins)."""
        assert goal.label is not None
        if not 0 <= goal.label < num_classes:
            raise ValueError(f"goal.label {goal.label} is not one of {num_classes} classes")
        true = true_mask(target_y, num_classes)
        named = torch.zeros_like(true)
        named[:, goal.label] = True
        return named & ~true, true

    def objective(self, goal: Goal, sets: torch.Tensor, target_y: torch.Tensor) -> float:
        return self.sign * float(sets.bool()[:, goal.label].float().mean())

    def metrics(self, goal: Goal, benign_sets: Mapping[str, torch.Tensor],
                victim_sets: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor],
                target_class: int | None = None) -> dict[str, float]:
        label = goal.label
        assert label is not None

        def share(sets: torch.Tensor) -> float:
            return float(sets[:, label].double().mean()) if sets.shape[0] else math.nan

        b_t, v_t, y_t = benign_sets["targets"], victim_sets["targets"], labels["targets"]
        row: dict[str, float] = {}
        pair(row, "label_share", share(b_t), share(v_t))
        row["goal_effect"] = -self.sign * (row["label_share_victim"]
                                           - row["label_share_benign"])
        pair(row, "true_label_coverage", coverage_or_nan(b_t, y_t), coverage_or_nan(v_t, y_t))
        for group in ("others", "evaluation"):
            if group in benign_sets:
                pair(row, f"label_share_{group}", share(benign_sets[group]),
                     share(victim_sets[group]))
        return row
