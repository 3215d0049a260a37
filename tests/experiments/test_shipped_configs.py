"""Every config shipped in configs/ validates and names a preset that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpoison.engine.grid import expand_grid
from cpoison.experiments.config import load_config
from cpoison.experiments.presets import get_preset

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def test_configs_are_found() -> None:
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "demo-underconfidence.yaml", "table2.yaml", "full-data.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path: Path) -> None:
    config = load_config(path)
    preset = get_preset(config.dataset, config.preset)
    assert preset.dataset == config.dataset
    assert config.labels()
    assert expand_grid(config)  # every grid cell validates
