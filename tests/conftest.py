"""Suite-wide set-up: every test runs on one intra-op torch thread.

The tests use tiny tensors and models, for which OpenMP start-up and contention dominate on
a busy 2-core machine (a digits MLP trains 10-100x faster on one thread). Results are the
same; the previous setting is restored after each module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """``cpoison.cli.main`` configures the root logger; restore it after every test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
