"""Shared fixture of the defense tests: the scikit-learn digits."""

from __future__ import annotations

import pytest

from cpoison.data.base import ImageDataset
from cpoison.data.digits import load_digits


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    """1500 train + 297 test digits, uint8 [N, 1, 8, 8]."""
    return load_digits(seed=0)
