"""No defense (SPEC 7 baseline): plain training and split conformal prediction."""

from __future__ import annotations

from typing import Literal

from cpoison.defenses.base import Defense, DefenseConfigBase


class NoDefenseConfig(DefenseConfigBase):
    """``defense: none``: the victim trains and calibrates exactly as without a defense."""

    name: Literal["none"] = "none"


class NoDefense(Defense):
    """Every hook keeps its default: one model, plain training, :class:`SplitConformal`."""

    name = "none"
    frozen_features = True
