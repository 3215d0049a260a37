"""One tiny reproduction (``cpoison reproduce --scale test``: digits, one victim, a few
crafting steps; about 30 s on one core) shared by the report tests."""

from __future__ import annotations

import json

import pytest
from reproduce_helpers import Reproduction

from cpoison.cli import main


@pytest.fixture(scope="session")
def reproduction(tmp_path_factory: pytest.TempPathFactory) -> Reproduction:
    root = tmp_path_factory.mktemp("reproduce")
    rep = Reproduction(root / "out", root / "store", {})
    assert main(rep.argv()) == 0
    rep.manifest = json.loads((rep.out / "reproduce.json").read_text())
    return rep
