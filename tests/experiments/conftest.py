"""Shared set-up for the experiment tests: one uninterrupted reference run of the tiny
config, reused by the output, determinism, resume and CLI tests."""

from __future__ import annotations

import pytest
from experiment_helpers import Run, run_tiny


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The tiny config run once, uninterrupted, into a fresh folder and a fresh cache. Tests
    must not write into its folder (its cache may be reused read-mostly)."""
    return run_tiny(tmp_path_factory.mktemp("reference"))
