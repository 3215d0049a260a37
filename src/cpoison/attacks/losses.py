"""The relaxed attack loss l2 (paper Eq. 7, SPEC 4.2).

The attacker's calibration scores S_(1) <= ... <= S_(n) are computed through the model, so
gradients flow through the conformal threshold as well as through the targets' scores.

Every goal (SPEC 4.1, :mod:`cpoison.attacks.goals`) uses the same three hinges of Eq. 7
(:class:`LossShape` names the variants of SPEC 5.4: calibration scores detached, one hinge at
the set's boundary, a soft set size, and y*_v kept rather than pulled in underconfidence):

* push label y out of C(X_v): sum_{i >= k} max(S_(i) - S(X_v, y), 0) (the i = k term is
  SPEC 4.1's max(Q - S(X_v, y), 0); the rest of the tail asks for a margin above Q, so the
  label stays out under the victim's own threshold, which differs from the attacker's);
* pull label y into C(X_v): sum_{i <= k} max(S(X_v, y) - S_(i), 0);
* keep label y in C(X_v): max(S(X_v, y) - Q, 0);

plus the stealth margin sum_v max(max_{y != y*_v} z_y - z_{y*_v}, -beta). A hinge is zero
once its label is beyond every calibration score of its side of Q.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from cpoison.attacks.goals import Goal, goal_masks
from cpoison.conformal import RSCP, ConformalScore
from cpoison.conformal.quantile import conformal_rank
from cpoison.seeding import make_generator

Scorer = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def logit_scorer(score: ConformalScore) -> Scorer:
    """(model, x, u) -> (logits, scores [N, K]) for a score on logits (HPS, APS, RAPS)."""

    def scorer(model: nn.Module, x: torch.Tensor, u: torch.Tensor):
        logits = model(x)
        return logits, score(logits, u=u)

    return scorer


def smoothed_scorer(rscp: RSCP, n_samples: int, seed: int) -> Scorer:
    """(model, x, u) -> (logits, RSCP smoothed scores) with the same noise at every call, so
    the crafting objective is a fixed function of the parameters."""

    def scorer(model: nn.Module, x: torch.Tensor, u: torch.Tensor):
        gen = make_generator(seed + x.shape[0], x.device)
        return model(x), rscp.smoothed_scores_grad(model, x, gen, n_samples)

    return scorer


def quantile_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)) clipped to n: the 1-based rank of Q among D^ca scores."""
    return min(max(conformal_rank(n, alpha), 1), n)


@dataclass
class LossData:
    """Everything l2 is evaluated on: the attacker's calibration fold and the targets, with
    fixed uniform draws ``*_u`` for randomized scores (drawn once per crafting run)."""

    cal_x: torch.Tensor
    cal_y: torch.Tensor
    cal_u: torch.Tensor
    target_x: torch.Tensor
    target_y: torch.Tensor
    target_u: torch.Tensor
    y_in: torch.Tensor | None = None  # bool [V, K], underconfidence only


@dataclass(frozen=True)
class LossShape:
    """How the goal's labels enter the loss (SPEC 4.2 and its variants, SPEC 5.4).

    ``calibration``: ``through`` lets gradients flow through the attacker's calibration
    scores (Eq. 7 as written); ``detached`` fixes them (and Q) at the model's current
    parameters, so the gradient only moves the targets' scores, as the victims, who
    calibrate on their own clean data, see it.

    ``hinge``: ``eq7`` sums each label's hinges against every calibration score on its side
    of Q (Eq. 7); ``boundary`` uses one hinge at the set's boundary with a margin ``margin``
    (push out: max(Q + m - S, 0); pull in and keep: max(S - Q + m, 0)); ``soft`` uses the
    soft set size sigmoid((Q - S) / T) with temperature ``temperature`` (push out: the
    label's soft membership; pull in and keep: its soft non-membership).

    ``true_label`` (underconfidence): ``keep`` keeps y*_v in the set with the keep hinge;
    ``pull`` puts it among the labels pulled in (which raises p(y*_v), against the goal).
    """

    calibration: str = "through"
    hinge: str = "eq7"
    margin: float = 0.05
    temperature: float = 0.1
    true_label: str = "pull"


EQ7 = LossShape()
"""Eq. 7 exactly as the paper writes it."""


def relaxed_loss(
    model: nn.Module, scorer: Scorer, goal: Goal, data: LossData, alpha: float,
    shape: LossShape = EQ7,
) -> torch.Tensor:
    """l2 of Eq. 7 (a scalar to minimise) for the model's current parameters, in the
    variant ``shape`` (default: Eq. 7 as written)."""
    if shape.calibration == "detached":
        with torch.no_grad():
            _, cal_scores = scorer(model, data.cal_x, data.cal_u)
    else:
        _, cal_scores = scorer(model, data.cal_x, data.cal_u)
    cal = cal_scores.gather(1, data.cal_y[:, None]).squeeze(1).sort().values
    k = quantile_rank(cal.numel(), alpha)
    logits, scores = scorer(model, data.target_x, data.target_u)  # [V, K]
    true = torch.zeros_like(scores, dtype=torch.bool)
    true.scatter_(1, data.target_y[:, None], True)
    z_true = logits.gather(1, data.target_y[:, None]).squeeze(1)
    z_other = logits.masked_fill(true, float("-inf")).max(dim=1).values
    margin = torch.clamp(z_other - z_true, min=-goal.beta).sum()
    push, pull, keep = goal_masks(goal, data.target_y, scores.shape[1], data.y_in,
                                  shape.true_label)
    if shape.hinge == "eq7":
        return hinge_terms(scores, cal, k, push, pull, keep) + margin
    return boundary_terms(scores, cal[k - 1], push, pull, keep, shape) + margin


def hinge_terms(
    scores: torch.Tensor, cal: torch.Tensor, k: int, push: torch.Tensor, pull: torch.Tensor,
    keep: torch.Tensor,
) -> torch.Tensor:
    """The Eq. 7 hinges (SPEC 4.2, module docstring) summed over the labels of each mask.

    Args:
        scores: the targets' scores S(X_v, y), [V, K].
        cal: the attacker's sorted calibration scores S_(1) <= ... <= S_(n), [n].
        k: the 1-based rank of Q = S_(k).
        push, pull, keep: bool [V, K] masks of the labels to push out, pull in and keep.
    """
    push_out = torch.relu(cal[k - 1 :][None, None, :] - scores[:, :, None]).sum(-1)
    pull_in = torch.relu(scores[:, :, None] - cal[:k][None, None, :]).sum(-1)
    keep_in = torch.relu(scores - cal[k - 1])
    return (push_out.masked_fill(~push, 0.0).sum() + pull_in.masked_fill(~pull, 0.0).sum()
            + keep_in.masked_fill(~keep, 0.0).sum())


def boundary_terms(
    scores: torch.Tensor, q: torch.Tensor, push: torch.Tensor, pull: torch.Tensor,
    keep: torch.Tensor, shape: LossShape,
) -> torch.Tensor:
    """The ``boundary`` and ``soft`` variants of the hinges (:class:`LossShape`): one term
    per label at the threshold Q instead of Eq. 7's sums over calibration scores."""
    if shape.hinge == "soft":
        inside = torch.sigmoid((q - scores) / shape.temperature)  # soft membership
        out_term, in_term = inside, 1 - inside
    elif shape.hinge == "boundary":
        out_term = torch.relu(q + shape.margin - scores)
        in_term = torch.relu(scores - q + shape.margin)
    else:
        raise ValueError(f"unknown hinge {shape.hinge!r}")
    return (out_term.masked_fill(~push, 0.0).sum()
            + in_term.masked_fill(~(pull | keep), 0.0).sum())
