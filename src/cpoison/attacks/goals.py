"""Attack goals (SPEC 4.1, paper Sec. 4.1): which labels to push out of or pull into the
targets' prediction sets."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field


class Goal(BaseModel):
    """``overconfidence`` shrinks each target's set to {y*_v}; ``underconfidence`` widens it
    with Y_in = C(X_v) plus Y_a. Y_a is ``add_labels`` when given, else the labels the
    surrogate ranks 2..``add_top``. ``beta`` caps the margin (stealth) term of Eq. 7."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["overconfidence", "underconfidence"] = "overconfidence"
    beta: float = Field(1.0, ge=0)
    add_top: int = Field(3, ge=2, description="m: Y_a = labels ranked 2..m by the surrogate")
    add_labels: tuple[int, ...] | None = None


def labels_to_add(goal: Goal, logits: torch.Tensor) -> torch.Tensor:
    """Y_a as a bool mask [V, K]: the explicit list, or the surrogate's ranks 2..m."""
    v, k = logits.shape
    mask = torch.zeros(v, k, dtype=torch.bool, device=logits.device)
    if goal.add_labels is not None:
        mask[:, list(goal.add_labels)] = True
        return mask
    ranks = logits.argsort(dim=1, descending=True, stable=True)[:, 1 : min(goal.add_top, k)]
    mask.scatter_(1, ranks, True)
    return mask
