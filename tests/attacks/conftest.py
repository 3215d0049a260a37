"""Shared set-up for the attack tests."""

from __future__ import annotations

import pytest
from attack_helpers import Digits, train_digits_mlp


@pytest.fixture(scope="module")
def digits() -> Digits:
    """A small MLP surrogate trained on scikit-learn's digits (seed 0)."""
    return train_digits_mlp()
