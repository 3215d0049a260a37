"""Shared set-up for the conformal tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Run on one intra-op thread: these tests use tiny tensors, for which OpenMP start-up
    dominates on a busy 2-core machine (a 250 x 10 softmax: 0.1 ms on one thread, 5 ms on
    two). Results are identical; the previous setting is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
