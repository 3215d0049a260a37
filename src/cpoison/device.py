"""Device selection: CUDA when present, else CPU (one place, no scattered ``.cuda()``)."""

from __future__ import annotations

import torch

from cpoison.errors import ConfigError


def get_device(name: str | None = None) -> torch.device:
    """``cuda`` when available and ``name`` is None or "auto", else ``torch.device(name)``.

    Raises ConfigError for a name torch does not know (``--device gpu``) and for a device
    this machine does not have (``cuda`` without a GPU, ``cuda:3`` with two)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} asked for, but there are only "
                              f"{torch.cuda.device_count()} CUDA GPUs")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r} is not supported; use cpu, cuda, mps or auto")
    return device
