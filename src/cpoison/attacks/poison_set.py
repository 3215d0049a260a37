"""Poisons as (base ids, delta) (SPEC 10, as in Witches' Brew): the clean data is never
modified; ``delta`` is added to the base images when a batch is loaded. Saved with
safetensors plus a JSON sidecar (config, split seed, hashes); nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from cpoison.errors import DataError
from cpoison.io import atomic_write, atomic_write_json


@dataclass
class PoisonSet:
    """``ids``: indices of the poison bases in the train pool; ``delta``: float perturbations
    [P, C, H, W] with ||delta||_inf <= eps; ``inject``: True when the bases are attacker images
    added to the victim's training set (black-box), False when they replace victim training
    images in place (white-box); ``meta``: JSON-serialisable facts (attack, config, timings)."""

    ids: torch.Tensor
    delta: torch.Tensor
    inject: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.delta, torch.Tensor):
            raise DataError(f"poison delta must be a torch.Tensor [P, C, H, W], got "
                            f"{type(self.delta).__name__}")
        self.ids = torch.as_tensor(self.ids, dtype=torch.long).cpu()
        self.delta = self.delta.detach().float().cpu()
        if self.delta.shape[0] != self.ids.numel():
            raise DataError(f"{self.ids.numel()} poison ids but {self.delta.shape[0]} deltas")

    def __len__(self) -> int:
        return int(self.ids.numel())

    @property
    def linf(self) -> float:
        return float(self.delta.abs().max()) if len(self) else 0.0

    def digest(self) -> str:
        h = hashlib.sha256(self.ids.numpy().tobytes())
        h.update(self.delta.numpy().tobytes())
        return h.hexdigest()

    def sidecar(self) -> dict[str, Any]:
        """The JSON facts stored beside the tensors (hash, size, bound, meta)."""
        return {"inject": self.inject, "n_poisons": len(self), "linf": self.linf,
                "sha256": self.digest(), "meta": self.meta}

    def to_bytes(self) -> bytes:
        """The tensors as safetensors bytes."""
        return save({"ids": self.ids.contiguous(), "delta": self.delta.contiguous()})

    @classmethod
    def from_bytes(cls, data: bytes, sidecar: dict[str, Any], source: str) -> PoisonSet:
        """Rebuild from :meth:`to_bytes` and :meth:`sidecar`, checking the hash; ``source``
        names the file in error messages."""
        try:
            tensors = load(data)
        except (SafetensorError, ValueError) as err:
            raise DataError(f"poison file {source} is unreadable: {err}") from None
        if "ids" not in tensors or "delta" not in tensors:
            raise DataError(f"poison file {source} lacks the 'ids' or 'delta' tensor")
        poisons = cls(tensors["ids"], tensors["delta"], bool(sidecar.get("inject", True)),
                      sidecar.get("meta", {}))
        if sidecar.get("sha256") not in (None, poisons.digest()):
            raise DataError(f"poison file {source} does not match the hash in its sidecar")
        return poisons

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.safetensors) and ``path`` + ``.json`` atomically."""
        path = Path(path)
        data = self.to_bytes()
        atomic_write(path, lambda p: p.write_bytes(data))
        atomic_write_json(path.with_suffix(path.suffix + ".json"), self.sidecar())
        return path

    @classmethod
    def load(cls, path: str | Path) -> PoisonSet:
        """Read a poison set written by :meth:`save`, checking its hash against the sidecar."""
        path = Path(path)
        sidecar_path = path.with_suffix(path.suffix + ".json")
        if not path.exists():
            raise DataError(f"poison file {path} does not exist")
        try:
            data = path.read_bytes()
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"poison file {path} (or its sidecar) is unreadable: {err}") from None
        return cls.from_bytes(data, sidecar, str(path))

    def check_ids(self, pool_size: int, source: str = "poison set") -> None:
        """DataError unless every id indexes the train pool of ``pool_size`` images."""
        if len(self) and (int(self.ids.min()) < 0 or int(self.ids.max()) >= pool_size):
            raise DataError(f"{source}: poison ids range over [{int(self.ids.min())}, "
                            f"{int(self.ids.max())}] but the train pool has {pool_size} images")
