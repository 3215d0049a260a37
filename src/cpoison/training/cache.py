"""On-disk cache of trained models, keyed by a hash of everything that determines them
(dataset, split, recipe, architecture, seed, poisons), stored with safetensors so the same
model is never trained twice and nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cpoison.io import atomic_write

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$CPOISON_CACHE`` or ``~/.cache/cpoison``."""
    return Path(os.environ.get("CPOISON_CACHE", Path.home() / ".cache" / "cpoison"))


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """SHA-256 (hex, 16 chars) of the raw bytes of ``tensors`` (None hashes as empty)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"<none>")
            continue
        t = t.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key(**parts: Any) -> str:
    """Stable key from JSON-serialisable parts (pydantic models are dumped first)."""
    norm = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in parts.items()}
    text = json.dumps(norm, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class ModelCache:
    """A directory of ``<key>.safetensors`` state dicts; ``root=None`` disables caching."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) / "models" if root is not None else None

    def path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{key}.safetensors"

    def load(self, key: str, model: nn.Module) -> bool:
        """Load weights for ``key`` into ``model``; False when absent or unreadable."""
        path = self.path(key)
        if path is None or not path.exists():
            return False
        try:
            state = load_file(str(path))
            model.load_state_dict(state)
        except (SafetensorError, RuntimeError, OSError) as err:
            log.warning("ignoring unreadable cached model %s (%s)", path, err)
            return False
        return True

    def save(self, key: str, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
        path = self.path(key)
        if path is None:
            return
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        metadata = {"meta": json.dumps(meta or {}, default=str)}
        atomic_write(path, lambda p: save_file(state, str(p), metadata=metadata))

    def get_or_train(
        self, key: str, model: nn.Module, train: Callable[[nn.Module], nn.Module],
        meta: dict[str, Any] | None = None,
    ) -> tuple[nn.Module, bool]:
        """Return (model, was_cached): load ``key`` or run ``train(model)`` and store it."""
        if self.load(key, model):
            return model.eval(), True
        model = train(model)
        self.save(key, model, meta)
        return model.eval(), False
