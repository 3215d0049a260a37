"""The tiny reproduction the report tests share (see conftest.py): which experiments it
runs and how to invoke it again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# E1 (and with it E2), the two table experiments E3 and E4, and E7; E5 and E6 stay out so
# the report's "not run" path is exercised.
RUN = ["E1", "E2", "E3", "E4", "E7"]


@dataclass
class Reproduction:
    out: Path
    store: Path
    manifest: dict[str, Any]

    def argv(self, *extra: str) -> list[str]:
        return ["reproduce", *RUN, "--scale", "test", "--out", str(self.out), "--store",
                str(self.store), "--quiet", "--threads", "1", *extra]
