"""Writers for dataset files in their exact official on-disk formats (used by the tests)."""

from __future__ import annotations

import gzip
import http.server
import io
import pickle
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# IDX (Fashion-MNIST)

FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format: magic ``00 00 08 <ndim>``, big-endian dims, data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fashion_mnist(
    directory: Path, n_train: int = 12, n_test: int = 6, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write the four Fashion-MNIST files (28x28 uint8) into ``directory``; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        FMNIST_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FMNIST_FILES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        FMNIST_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FMNIST_FILES[3]: ((np.arange(n_test) * 3) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / name).write_bytes(data)
    return arrays


# --------------------------------------------------------------------------------------------
# CIFAR python batches, written as Python 2's cPickle wrote the official files


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, dtype=np.uint8))[0]


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol-2 pickler that writes like Python 2's cPickle did for the CIFAR files:
    byte and text strings as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING, no
    ``_codecs.encode``) and NumPy's ``_reconstruct`` as ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle_dumps(obj: Any) -> bytes:
    """``obj`` pickled as Python 2 ``cPickle.dump(obj, f, 2)`` would have."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def dump_cifar(path: Path, obj: Any, flavor: str) -> None:
    """Write ``obj`` as an official (``py2``) or a Python 3 re-pickled (``py3``) file."""
    data = py2_pickle_dumps(obj) if flavor == "py2" else pickle.dumps(obj, protocol=4)
    path.write_bytes(data)


def cifar_data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_cifar10(directory: Path, n: int = 4, flavor: str = "py2") -> dict[str, Any]:
    """``cifar-10-batches-py``-style folder with ``n`` images per batch; return what's in it."""
    directory.mkdir(parents=True, exist_ok=True)
    batches: dict[str, dict[bytes, Any]] = {}
    for i, fname in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batch = {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": [int(v) for v in (np.arange(n) + i) % 10],
            b"data": cifar_data(n, seed=i),
            b"filenames": [f"img_{i}_{k}.png".encode() for k in range(n)],
        }
        dump_cifar(directory / fname, batch, flavor)
        batches[fname] = batch
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
             b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    dump_cifar(directory / "batches.meta", meta, flavor)
    return {"batches": batches, "names": [n.decode() for n in names]}


def write_cifar100(directory: Path, n_train: int = 6, n_test: int = 3,
                   flavor: str = "py2") -> dict[str, Any]:
    """``cifar-100-python``-style folder (train, test, meta); return what's in it."""
    directory.mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[bytes, Any]] = {}
    for i, (fname, n) in enumerate((("train", n_train), ("test", n_test))):
        fine = [int(v) for v in (np.arange(n) * 37 + i) % 100]
        parts[fname] = {
            b"filenames": [f"f{k}.png".encode() for k in range(n)],
            b"batch_label": f"{fname}ing batch 1 of 1".encode(),
            b"fine_labels": fine,
            b"coarse_labels": [v // 5 for v in fine],
            b"data": cifar_data(n, seed=10 + i),
        }
        dump_cifar(directory / fname, parts[fname], flavor)
    fine_names = [f"fine_{k}".encode() for k in range(100)]
    coarse_names = [f"coarse_{k}".encode() for k in range(20)]
    meta = {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}
    dump_cifar(directory / "meta", meta, flavor)
    return {"parts": parts, "names": [n.decode() for n in fine_names]}


# --------------------------------------------------------------------------------------------
# Local HTTP server


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/truncated/<n>`` announces 1000 bytes and sends only ``n``."""

    def log_message(self, format: str, *args: Any) -> None:  # silence the test output
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/truncated/"):
            sent = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * sent)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class LocalServer:
    """A folder served over HTTP on 127.0.0.1 at an ephemeral port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        handler = _make_handler(directory)
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _make_handler(directory: Path) -> Callable[..., _Handler]:
    def factory(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(directory), **kwargs)

    return factory
