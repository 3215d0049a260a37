"""Each goal's own figures from a benign and a poisoned victim's prediction sets (SPEC 4.1,
SPEC 3.3).

:func:`goal_metrics` takes the sets of the evaluation groups of SPEC 2 (``"targets"``, and
when present ``"others"``, the class's test images that are not targets, and
``"evaluation"``, the test set minus the targets), benign and poisoned, with the true labels
of each group, and returns flat ``str -> float`` figures for a result row. Every goal
returns ``goal_effect``: one number, larger when the attack did more of what it wanted
(0 when nothing moved), so a summary can rank attacks of any goal:

| kind | goal_effect |
|---|---|
| overconfidence | reduction ratio of the targets' mean set size, (b - v) / b |
| underconfidence | expansion ratio of the targets' mean set size, (v - b) / b |
| unequal-coverage | the subgroup targets' coverage drop, benign - victim |
| add-label | rise of the share of targets whose set holds the label, victim - benign |
| remove-label | fall of that share, benign - victim |

NaN stands for a figure without data (an empty group, a zero benign size).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cpoison.attacks.goals import Goal, goal_kind

__all__ = ["goal_metrics"]


def goal_metrics(
    goal: Goal,
    benign_sets: Mapping[str, torch.Tensor],
    victim_sets: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor],
    target_class: int | None = None,
) -> dict[str, float]:
    """The goal's own figures, benign vs poisoned (SPEC 4.1; table in the module docstring).

    Args:
        goal: the attack goal.
        benign_sets: group name -> bool sets [N_g, K] of the benign victim. ``"targets"`` is
            required; ``"others"`` and ``"evaluation"`` are used when present.
        victim_sets: the same groups for the poisoned victim (same images, same order).
        labels: group name -> true labels [N_g].
        target_class: the targets' class (the unequal-coverage subgroup when
            ``goal.subgroup_class`` is None; else read from the targets' labels).

    Returns:
        ``goal_effect`` plus, per kind:

        * unequal-coverage: ``subgroup_target_coverage_{benign,victim}`` (the targets),
          ``subgroup_coverage_{benign,victim}`` (the subgroup's unseen images, the
          ``others`` group: class-conditional coverage), ``marginal_coverage_*`` (the
          evaluation set), ``rest_coverage_*`` (its images outside the subgroup),
          ``coverage_gap_*`` = marginal - subgroup (unseen images), ``subgroup_class``.
        * add-label / remove-label: ``label_share_{benign,victim}`` (share of the targets'
          sets holding ``goal.label``), ``label_share_others_*`` (on the class's unseen
          images), ``label_share_evaluation_*`` (on the evaluation set), and
          ``true_label_coverage_*`` (y*_v stays: coverage of the targets).
        * overconfidence / underconfidence: ``target_size_{benign,victim}``.

    Raises:
        KeyError: a group missing from ``victim_sets`` / ``labels``, or no ``"targets"``.
        ValueError: benign and poisoned sets of a group with different shapes.
    """
    for group, sets in benign_sets.items():
        if victim_sets[group].shape != sets.shape:
            raise ValueError(f"group {group!r}: benign sets {tuple(sets.shape)} but poisoned "
                             f"sets {tuple(victim_sets[group].shape)}")
    return goal_kind(goal).metrics(goal, benign_sets, victim_sets, labels, target_class)
