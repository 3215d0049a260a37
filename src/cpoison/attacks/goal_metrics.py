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

import math
from collections.abc import Mapping

import torch

from cpoison.attacks.goals import Goal
from cpoison.conformal import coverage, mean_size

__all__ = ["goal_metrics"]


def _share_with(sets: torch.Tensor, label: int) -> float:
    """Share of sets (bool [N, K]) that hold ``label`` (NaN for no set)."""
    return float(sets[:, label].double().mean()) if sets.shape[0] else math.nan


def _coverage(sets: torch.Tensor, labels: torch.Tensor) -> float:
    return coverage(sets, labels) if sets.shape[0] else math.nan


def _pair(
    row: dict[str, float], name: str, benign: float, victim: float
) -> None:
    row[f"{name}_benign"] = benign
    row[f"{name}_victim"] = victim


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
    b_t, v_t, y_t = benign_sets["targets"], victim_sets["targets"], labels["targets"]
    row: dict[str, float] = {}
    if goal.kind in ("overconfidence", "underconfidence"):
        bs, vs = mean_size(b_t), mean_size(v_t)
        _pair(row, "target_size", bs, vs)
        change = (bs - vs) if goal.kind == "overconfidence" else (vs - bs)
        row["goal_effect"] = change / bs if bs > 0 else math.nan
        return row
    if goal.kind == "unequal-coverage":
        c = goal.subgroup_class if goal.subgroup_class is not None else target_class
        if c is None:
            c = int(torch.mode(y_t).values) if y_t.numel() else -1
        row["subgroup_class"] = float(c)
        _pair(row, "subgroup_target_coverage", _coverage(b_t, y_t), _coverage(v_t, y_t))
        row["goal_effect"] = (row["subgroup_target_coverage_benign"]
                              - row["subgroup_target_coverage_victim"])
        if "others" in benign_sets:
            b_o, v_o, y_o = benign_sets["others"], victim_sets["others"], labels["others"]
            _pair(row, "subgroup_coverage", _coverage(b_o, y_o), _coverage(v_o, y_o))
        if "evaluation" in benign_sets:
            b_e, v_e, y_e = (benign_sets["evaluation"], victim_sets["evaluation"],
                             labels["evaluation"])
            _pair(row, "marginal_coverage", _coverage(b_e, y_e), _coverage(v_e, y_e))
            rest = y_e != c
            _pair(row, "rest_coverage", _coverage(b_e[rest], y_e[rest]),
                  _coverage(v_e[rest], y_e[rest]))
            if "others" in benign_sets:
                for side in ("benign", "victim"):
                    row[f"coverage_gap_{side}"] = (row[f"marginal_coverage_{side}"]
                                                   - row[f"subgroup_coverage_{side}"])
        return row
    label = goal.label
    assert label is not None  # the Goal validator requires it for these kinds
    _pair(row, "label_share", _share_with(b_t, label), _share_with(v_t, label))
    rise = row["label_share_victim"] - row["label_share_benign"]
    row["goal_effect"] = rise if goal.kind == "add-label" else -rise
    _pair(row, "true_label_coverage", _coverage(b_t, y_t), _coverage(v_t, y_t))
    for group in ("others", "evaluation"):
        if group in benign_sets:
            _pair(row, f"label_share_{group}", _share_with(benign_sets[group], label),
                  _share_with(victim_sets[group], label))
    return row
