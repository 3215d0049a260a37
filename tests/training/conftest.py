"""Shared set-up for the training tests: one intra-op thread, the digits data, tiny recipes."""

from __future__ import annotations

import pytest

from cpoison.data.base import ImageDataset
from cpoison.data.digits import load_digits


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    """scikit-learn digits, 1500 train + 297 test, uint8 [N, 1, 8, 8]."""
    return load_digits(seed=0)
