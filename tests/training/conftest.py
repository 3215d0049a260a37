"""Shared set-up for the training tests: one intra-op thread, the digits data, tiny recipes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from cpoison.data.base import ImageDataset
from cpoison.data.digits import load_digits


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny models train ~20x faster on one thread on a busy 2-core machine; restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    """scikit-learn digits, 1500 train + 297 test, uint8 [N, 1, 8, 8]."""
    return load_digits(seed=0)
