"""A restricted unpickler for the official CIFAR python batches (SPEC 10: never unpickle an
untrusted file with the stock unpickler).

The official files (written by Python 2's ``cPickle``) hold dicts of byte strings, ints,
lists and numpy arrays. Rebuilding an array needs exactly three globals:
``numpy.core.multiarray._reconstruct`` (``numpy._core.multiarray._reconstruct`` when written by
NumPy >= 2), ``numpy.ndarray`` and ``numpy.dtype``. :class:`RestrictedUnpickler` resolves those
three names itself (without importing anything) and refuses every other global, and
persistent ids, before anything is called -- so a malicious pickle (``os.system``, ``eval``,
...) raises :class:`~cpoison.errors.DataError` instead of running.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cpoison.errors import DataError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "load_restricted_pickle"]

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, dtype=np.uint8))[0]
"""NumPy's ``_reconstruct`` function, whatever module it lives in for this NumPy version."""

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
"""The only ``(module, name)`` globals a CIFAR batch may reference."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only :data:`ALLOWED_GLOBALS`; byte strings stay ``bytes``."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global; DataError for anything else."""
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {self._source!r}: it asks for {module}.{name}, which a "
                "CIFAR batch never needs, so it is not a CIFAR batch (and may be malicious)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids never occur in CIFAR batches; refuse them."""
        raise DataError(
            f"refusing to load {self._source!r}: it uses pickle persistent ids, so it is not "
            "a CIFAR batch"
        )


def load_restricted_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`.

    Raises:
        DataError: if the file cannot be read, is truncated or corrupt, or references a global
            that a CIFAR batch does not need.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, str(path)).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except Exception as exc:  # any parse failure of an untrusted file is a data error
        raise DataError(
            f"{str(path)!r} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it "
            "and extract it again from the official archive"
        ) from exc
