"""Which floating-point precision a recipe trains in on this machine (SPEC 6, SPEC 9).

A recipe's ``precision`` is ``fp32``, ``bf16`` (forward and backward under bfloat16
autocast) or ``auto``. bf16 pays only where the hardware computes it natively: on a CUDA
GPU that supports it, and on a CPU with ``avx512_bf16`` or ``amx_bf16``. On other CPUs
torch emulates it, and training is *slower* than fp32: the demo's victim, one epoch,
measured 4.2x slower on 1 thread and 11x slower on 2 threads on an AVX2-only AMD EPYC
(``python benchmarks/precision.py``, docs/results.md), against 1.45x faster on one with
``avx512_bf16``. ``auto`` therefore picks bf16 where it is native and fp32 elsewhere.

The choice is resolved before any model key is derived (``Workspace``), so a key always
names the precision a model was really trained in and a store shared by machines of both
kinds never serves one for the other. Set ``fp32`` or ``bf16`` explicitly to pin it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from cpoison.training.recipe import Recipe

__all__ = ["cpu_has_native_bf16", "resolve_precision", "resolve_recipe"]

_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (a flag of :data:`_NATIVE_BF16_FLAGS` in
    ``cpuinfo``); False where that file is missing or unreadable (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return any(flag in flags for flag in _NATIVE_BF16_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``precision`` with ``auto`` replaced by ``bf16`` or ``fp32`` for ``device`` (module
    doc); ``fp32`` and ``bf16`` are returned unchanged."""
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def resolve_recipe(recipe: Recipe, device: torch.device | str) -> Recipe:
    """``recipe`` with its precision resolved for ``device`` (the same object when it is
    already explicit)."""
    resolved = resolve_precision(recipe.precision, device)
    if resolved == recipe.precision:
        return recipe
    return recipe.model_copy(update={"precision": resolved})
