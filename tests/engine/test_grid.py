"""Grids (SPEC 11): the product of the lists, each point validated before anything runs,
bad keys and values reported with the cell that holds them."""

from __future__ import annotations

import pytest
from experiment_helpers import tiny_raw

from cpoison.engine.grid import expand_grid
from cpoison.errors import ConfigError
from cpoison.experiments.config import validate_config


def test_grid_is_the_product_in_order():
    config = validate_config(tiny_raw(grid={"budget": [0.02, 0.05], "attacks.0.loss":
                                            ["l2", "l3"]}))
    points = expand_grid(config)
    assert [p.values for p in points] == [
        {"budget": 0.02, "attacks.0.loss": "l2"}, {"budget": 0.02, "attacks.0.loss": "l3"},
        {"budget": 0.05, "attacks.0.loss": "l2"}, {"budget": 0.05, "attacks.0.loss": "l3"}]
    assert [(p.config.budget, p.config.attacks[0].loss) for p in points] == [
        (0.02, "l2"), (0.02, "l3"), (0.05, "l2"), (0.05, "l3")]
    assert all(p.config.grid == {} for p in points)
    assert expand_grid(validate_config(tiny_raw()))[0].values == {}


@pytest.mark.parametrize(("grid", "message"), [
    ({"budgett": [0.1]}, r"grid cell \{budgett=0\.1\}.*budgett"),
    ({"budget": [0.02, 2.0]}, r"grid cell \{budget=2\.0\}.*'budget'"),
    ({"attacks.7.loss": ["l2"]}, r"grid cell \{attacks\.7\.loss='l2'\}.*not an item"),
    ({"alpha.x": [1]}, r"'alpha' holds a value"),
    ({"attacks.0.score": ["foo"]}, r"attacks\.0\.score: unknown score 'foo'"),
])
def test_bad_grid_cells_name_the_cell(grid, message):
    config = validate_config(tiny_raw(grid=grid))
    with pytest.raises(ConfigError, match=message):
        expand_grid(config)


def test_an_empty_list_is_refused():
    with pytest.raises(ConfigError, match="grid key 'budget' has an empty list"):
        validate_config(tiny_raw(grid={"budget": []}))
