"""Shared set-up for the attack tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from attack_helpers import Digits, train_digits_mlp


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    """One intra-op thread: tiny models train 10-100x faster than with OpenMP contention on a
    busy 2-core machine. The previous setting is restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> Digits:
    """A small MLP surrogate trained on scikit-learn's digits (seed 0)."""
    return train_digits_mlp()
