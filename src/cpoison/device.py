"""Device selection: CUDA when present, else CPU (one place, no scattered ``.cuda()``)."""

from __future__ import annotations

import torch


def get_device(name: str | None = None) -> torch.device:
    """Return ``torch.device(name)``, or ``cuda`` when available and ``name`` is None/"auto"."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
