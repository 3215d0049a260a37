"""The artifact store (SPEC 11): trained models, poison sets and evaluation cells, each
under its content key, in a place every worker reaches.

A plain folder (the default: ``$CPOISON_CACHE`` or ``~/.cache/cpoison``) or any fsspec URL
(``s3://bucket/cpoison``, ``gcs://...``, ``file:///shared/nfs/cpoison``) for clusters. Writes
are atomic: a folder write goes through a temporary file that is fsync'ed and renamed; an
fsspec write goes to a temporary name and is moved into place. Tensors are safetensors;
nothing is ever unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load, save

from cpoison.attacks.poison_set import PoisonSet
from cpoison.errors import CpoisonError, DataError
from cpoison.io import atomic_write, json_safe

log = logging.getLogger(__name__)


def default_store() -> str:
    """``$CPOISON_CACHE`` or ``~/.cache/cpoison``."""
    return str(Path(os.environ.get("CPOISON_CACHE", Path.home() / ".cache" / "cpoison")))


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` string mapping of safetensors bytes (the format: an 8-byte
    little-endian header length, then a JSON header); ValueError when malformed."""
    if len(data) < 8:
        raise ValueError("truncated safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("truncated safetensors header")
    try:
        header = json.loads(data[8:8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable safetensors header: {err}") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


class StoreError(CpoisonError):
    """The artifact store cannot be reached or written."""


StoreSpec = str | Path | Sequence[str | Path] | None


def split_stores(store: StoreSpec) -> tuple[str, tuple[str, ...]]:
    """(the store written, the stores only read) of ``store``: one folder or URL, or several
    (``--store`` repeated: the first written, the others read-only layers); None is
    :func:`default_store`."""
    if store is None or isinstance(store, (str, Path)):
        return str(store or default_store()), ()
    stores = [str(s) for s in store]
    if not stores:
        return default_store(), ()
    return stores[0], tuple(stores[1:])


class ArtifactStore:
    """Bytes under ``<root>/<kind>/<key><suffix>``; ``root`` is a folder or an fsspec URL.

    ``layers`` (SPEC 11, stores in layers): further stores (folders or fsspec URLs) that are
    only read: a lookup that misses ``root`` tries them in order; every write goes to
    ``root``. A folder of exported cells (:mod:`cpoison.engine.cells`) is such a layer."""

    def __init__(self, root: str | Path, layers: Sequence[str | Path | ArtifactStore] = ()
                 ) -> None:
        self.root = str(root)
        self.is_url = "://" in self.root
        if self.is_url:
            import fsspec

            try:
                self.fs, self.base = fsspec.core.url_to_fs(self.root)
            except (ImportError, ValueError) as err:
                raise StoreError(f"artifact store {self.root}: {err}") from None
        self.layers = tuple(layer if isinstance(layer, ArtifactStore) else ArtifactStore(layer)
                            for layer in layers)

    def __repr__(self) -> str:
        extra = f", layers={[layer.root for layer in self.layers]!r}" if self.layers else ""
        return f"ArtifactStore({self.root!r}{extra})"

    def check_layers(self) -> None:
        """StoreError naming a read-only layer folder that does not exist (a typo would
        otherwise silently recompute every cell); URLs are checked when read."""
        for layer in self.layers:
            if not layer.is_url and not Path(layer.root).is_dir():
                raise StoreError(f"store layer {layer.root} is not a folder")

    def _path(self, kind: str, key: str, suffix: str) -> str:
        name = f"{kind}/{key}{suffix}"
        return f"{self.base.rstrip('/')}/{name}" if self.is_url else str(Path(self.root) / name)

    def check_writable(self) -> None:
        """Write and remove a probe file; StoreError naming the store when that fails."""
        probe = f".probe-{uuid.uuid4().hex}"
        try:
            self.put("probe", probe, ".txt", b"ok")
            self.delete("probe", probe, ".txt")
        except (OSError, CpoisonError) as err:
            raise StoreError(f"artifact store {self.root} cannot be written: {err}") from None

    def exists(self, kind: str, key: str, suffix: str) -> bool:
        """Whether ``root`` or one of the read-only layers holds the file."""
        return self._exists_here(kind, key, suffix) or any(
            layer.exists(kind, key, suffix) for layer in self.layers)

    def _exists_here(self, kind: str, key: str, suffix: str) -> bool:
        path = self._path(kind, key, suffix)
        try:
            return bool(self.fs.exists(path)) if self.is_url else Path(path).is_file()
        except OSError as err:
            raise StoreError(f"artifact store {self.root} cannot be read: {err}") from None

    def put(self, kind: str, key: str, suffix: str, data: bytes) -> None:
        path = self._path(kind, key, suffix)
        if not self.is_url:
            atomic_write(path, lambda p: p.write_bytes(data))
            return
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        except OSError as err:
            raise StoreError(f"artifact store {self.root}: cannot write {path}: {err}") from None

    def get(self, kind: str, key: str, suffix: str) -> bytes | None:
        """The bytes from ``root``, else from the first read-only layer that has them."""
        data = self._get_here(kind, key, suffix)
        for layer in self.layers:
            if data is not None:
                break
            data = layer.get(kind, key, suffix)
        return data

    def _get_here(self, kind: str, key: str, suffix: str) -> bytes | None:
        path = self._path(kind, key, suffix)
        try:
            if self.is_url:
                return self.fs.cat_file(path) if self.fs.exists(path) else None
            return Path(path).read_bytes() if Path(path).is_file() else None
        except OSError as err:
            raise StoreError(f"artifact store {self.root}: cannot read {path}: {err}") from None

    def delete(self, kind: str, key: str, suffix: str) -> None:
        path = self._path(kind, key, suffix)
        if self.is_url:
            self.fs.rm(path)
        else:
            Path(path).unlink(missing_ok=True)

    # -- models ---------------------------------------------------------------------------
    def has_model(self, key: str) -> bool:
        return self.exists("models", key, ".safetensors")

    def save_model(self, key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        self.put("models", key, ".safetensors",
                 save(state, metadata={"meta": json.dumps(json_safe(meta), default=str)}))

    def load_model(self, key: str, model: nn.Module) -> bool:
        """Load the weights stored under ``key`` into ``model``; False when absent. A stored
        file that cannot be read is reported and treated as absent (it is retrained)."""
        return self.load_model_meta(key, model) is not None

    def load_model_meta(self, key: str, model: nn.Module) -> dict[str, Any] | None:
        """Load the weights stored under ``key`` into ``model`` and return the meta they
        were saved with (``{}`` when it has none); ``None`` when absent or unreadable (as
        :meth:`load_model`). A defense's training record travels in this meta (SPEC 7)."""
        data = self.get("models", key, ".safetensors")
        if data is None:
            return None
        try:
            model.load_state_dict(load(data))
            text = safetensors_metadata(data).get("meta")
            meta = json.loads(text) if text else {}
        except (SafetensorError, RuntimeError, ValueError) as err:
            log.warning("ignoring unreadable stored model %s (%s); training it again", key, err)
            return None
        return meta if isinstance(meta, dict) else {}

    # -- poison sets ----------------------------------------------------------------------
    def has_poisons(self, key: str) -> bool:
        return self.exists("poisons", key, ".json") and self.exists(
            "poisons", key, ".safetensors")

    def save_poisons(self, key: str, poisons: PoisonSet) -> None:
        self.put("poisons", key, ".safetensors", poisons.to_bytes())  # tensors first, then
        self.put_json("poisons", key, poisons.sidecar())  # the sidecar that marks them done

    def load_poisons(self, key: str) -> PoisonSet:
        sidecar = self.get_json("poisons", key)
        data = self.get("poisons", key, ".safetensors")
        if sidecar is None or data is None:
            raise DataError(f"poison set {key} is not in the artifact store {self.root}")
        return PoisonSet.from_bytes(data, sidecar, self._path("poisons", key, ".safetensors"))

    # -- JSON (evaluation cells, facts) ---------------------------------------------------
    def put_json(self, kind: str, key: str, obj: Any) -> None:
        text = json.dumps(json_safe(obj), default=str, allow_nan=False)
        self.put(kind, key, ".json", text.encode())

    def get_json(self, kind: str, key: str) -> Any:
        data = self.get(kind, key, ".json")
        if data is None:
            return None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("ignoring unreadable %s/%s.json in %s", kind, key, self.root)
            return None
