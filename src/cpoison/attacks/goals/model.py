"""The goal of an experiment (SPEC 4.1): its kind's name and the kind's parameters."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cpoison.attacks.goals.registry import GOALS, goal_kind
from cpoison.errors import ConfigError


class Goal(BaseModel):
    """``overconfidence`` shrinks each target's set to {y*_v}; ``underconfidence`` widens it
    with Y_in = C(X_v) plus Y_a. Y_a is ``add_labels`` when given, else the labels the
    surrogate ranks 2..``add_top``. ``beta`` caps the margin (stealth) term of Eq. 7.

    ``unequal-coverage`` pushes the true label out of the sets of one class's images (the
    subgroup ``subgroup_class``; None: the experiment's target class); ``add-label`` pulls
    the named ``label`` into the targets' sets while y*_v stays; ``remove-label`` pushes
    ``label`` out of them while y*_v stays. Each kind is a file of
    :mod:`cpoison.attacks.goals` with its loss terms, rules and metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("overconfidence", description="a goal kind: overconfidence, "
                      "underconfidence, unequal-coverage, add-label, remove-label")
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

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GOALS:
            raise ValueError(f"unknown goal kind {value!r}; choose from {sorted(GOALS)}")
        return value

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Goal:
        kind = goal_kind(self.kind)
        if kind.label_field and self.label is None:
            raise ValueError(f"goal.label is required for goal.kind={self.kind!r} "
                             f"(the class index of the label to {self.kind.split('-')[0]})")
        if not kind.label_field and self.label is not None:
            users = " / ".join(n for n, k in GOALS.items() if k.label_field)
            raise ValueError(f"goal.label is only used by {users}, not by "
                             f"goal.kind={self.kind!r}")
        if not kind.subgroup_field and self.subgroup_class is not None:
            users = " / ".join(n for n, k in GOALS.items() if k.subgroup_field)
            raise ValueError(f"goal.subgroup_class is only used by {users}, not by "
                             f"goal.kind={self.kind!r}")
        return self

    def target_class(self) -> int | None:
        """The class the targets must be drawn from, when the goal fixes it
        (unequal-coverage with ``subgroup_class``), else None."""
        return goal_kind(self).target_class(self)


def check_goal(goal: Goal, num_classes: int, target_class: int | None = None) -> None:
    """Check the goal's class indices against the dataset (SPEC 4.1, SPEC 10: one message
    naming the field), before any training.

    Raises:
        ConfigError: ``goal.label`` / ``goal.subgroup_class`` / ``goal.add_labels`` outside
            0..K-1, or what the kind itself refuses for this target class (add-label /
            remove-label naming the targets' own class; unequal-coverage whose subgroup is
            not the target class).
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
    goal_kind(goal).check(goal, num_classes, target_class)
