"""Conformal predictors of a user's own, named in configs as ``user_predictors:NAME``
(tests/engine is on the import path of its tests)."""

from __future__ import annotations

import torch

from cpoison.conformal.adapters import cpoison_factory

#: the score names ``cpoison_wrapped`` was called with
CALLS: list[str] = []


def cpoison_wrapped(score: str, alpha: float, generator: torch.Generator):
    """cpoison's own split CP, through the user-predictor route."""
    CALLS.append(score)
    return cpoison_factory(score, alpha, generator)


def not_a_predictor(score: str, alpha: float, generator: torch.Generator) -> int:
    """A factory that returns no predictor."""
    return 42


def broken(score: str, alpha: float, generator: torch.Generator):
    """A factory that fails."""
    raise RuntimeError("no GPU here")
