"""Grids (SPEC 11): ``grid:`` maps dotted config keys to lists of values; the run is the
product of those lists. Every point is validated before anything runs, and an invalid one is
reported with the values that make it."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from cpoison.errors import ConfigError
from cpoison.experiments.config import ExperimentConfig, set_dotted, validate_config


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: the values of every grid key, and the config they give."""

    values: dict[str, Any]
    config: ExperimentConfig

    @property
    def label(self) -> str:
        """``budget=0.01, eps=0.0627`` (empty for a config without a grid)."""
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


def expand_grid(config: ExperimentConfig) -> list[GridPoint]:
    """Every point of ``config``'s grid, in the order the lists give (the last key varies
    fastest); a config without a grid is one point."""
    base = config.model_dump(mode="json", exclude={"grid"}, exclude_none=True)
    if "poison_class" not in config.model_fields_set:
        base.pop("poison_class", None)  # resolved by each point's goal (its kind's poison_class)
    grid = config.grid
    points = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        raw = copy.deepcopy(base)
        where = ", ".join(f"{k}={v!r}" for k, v in values.items())
        try:
            for key, value in values.items():
                set_dotted(raw, key, value, what="grid key")
            point = validate_config(raw, f"grid cell {{{where}}}")
        except ConfigError as err:
            raise ConfigError(f"grid cell {{{where}}}: {err}" if "grid cell" not in str(err)
                              else str(err)) from None
        points.append(GridPoint(values, point))
    return points
