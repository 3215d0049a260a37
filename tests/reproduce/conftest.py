"""One tiny reproduction (``cpoison reproduce --scale test``: digits, one victim, a few
crafting steps) shared by the report tests: E1 (and with it E2), the two table experiments
E3 and E4, and E7; E5 and E6 are left out so the report's "not run" path is exercised."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cpoison.cli import main

RUN = ["E1", "E2", "E3", "E4", "E7"]


@dataclass
class Reproduction:
    out: Path
    store: Path
    manifest: dict[str, Any]

    def argv(self, *extra: str) -> list[str]:
        return ["reproduce", *RUN, "--scale", "test", "--out", str(self.out), "--store",
                str(self.store), "--quiet", "--threads", "1", *extra]


@pytest.fixture(scope="session")
def reproduction(tmp_path_factory: pytest.TempPathFactory) -> Reproduction:
    root = tmp_path_factory.mktemp("reproduce")
    rep = Reproduction(root / "out", root / "store", {})
    assert main(rep.argv()) == 0
    rep.manifest = json.loads((rep.out / "reproduce.json").read_text())
    return rep
