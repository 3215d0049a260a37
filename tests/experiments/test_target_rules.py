"""Target-class draws that leave out excluded classes, and their keys."""

from __future__ import annotations

import pytest

from cpoison.errors import ConfigError
from cpoison.experiments.config import validate_config
from cpoison.experiments.protocol import repeat_target_class


def _config(**targets):
    return validate_config({"dataset": "digits", "preset": "cpu", "n_victims": 1,
                            "targets": {"target_class": None, **targets},
                            "attacks": [{"name": "randun"}]}, "test")


def test_random_target_classes_avoid_the_excluded_ones() -> None:
    drawn = {repeat_target_class(_config(exclude_classes=[2, 6]), r, 10) for r in range(60)}
    assert drawn and not drawn & {2, 6} and len(drawn) == 8
    with pytest.raises(ConfigError, match="no target class is left"):
        repeat_target_class(_config(exclude_classes=list(range(10))), 0, 10)


def test_unset_target_rules_keep_the_config_dump() -> None:
    dumped = _config().targets.model_dump(mode="json")
    assert "exclude_classes" not in dumped and "min_set_size" not in dumped
    dumped = _config(exclude_classes=[1], min_set_size=2).targets.model_dump(mode="json")
    assert dumped["exclude_classes"] == [1] and dumped["min_set_size"] == 2
