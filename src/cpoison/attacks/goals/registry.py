"""Goal kinds by name (SPEC 4.1): adding one is a file beside this one and a line here
(or :func:`register_goal` from outside the package)."""

from __future__ import annotations

from cpoison.attacks.goals.add_label import AddLabel
from cpoison.attacks.goals.base import Goal, GoalKind
from cpoison.attacks.goals.overconfidence import Overconfidence
from cpoison.attacks.goals.remove_label import RemoveLabel
from cpoison.attacks.goals.underconfidence import Underconfidence
from cpoison.attacks.goals.unequal_coverage import UnequalCoverage

GOALS: dict[str, GoalKind] = {kind.name: kind for kind in (
    Overconfidence(), Underconfidence(), UnequalCoverage(), AddLabel(), RemoveLabel(),
)}


def register_goal(kind: GoalKind) -> None:
    """Make a goal kind available to configs under ``kind.name``."""
    if not kind.name:
        raise ValueError("a goal kind needs a name")
    GOALS[kind.name] = kind


def goal_kind(goal: Goal | str) -> GoalKind:
    """The kind of ``goal`` (a :class:`Goal` or a kind's name)."""
    name = goal if isinstance(goal, str) else goal.kind
    try:
        return GOALS[name]
    except KeyError:
        raise ValueError(f"unknown goal kind {name!r}; choose from {sorted(GOALS)}") from None
