"""Reader for the IDX format of (Fashion-)MNIST, raw or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the data in row-major order, big-endian. Gzip compression is detected
from the content (magic bytes ``1f 8b``), not from the file name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from cpoison.errors import DataError

__all__ = ["file_bytes", "read_idx"]

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type code -> big-endian numpy dtype."""

_GZIP_MAGIC = b"\x1f\x8b"


def file_bytes(path: Path) -> bytes:
    """The file's (decompressed) bytes; DataError if unreadable or a broken gzip stream."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{str(path)!r} is a truncated or corrupt gzip file ({exc}); delete it and "
            "download it again"
        ) from exc


def read_idx(
    path: str | Path, ndim: int | None = None, dtype: np.dtype | str | None = None
) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian, writable numpy array.

    Args:
        path: the file.
        ndim: expected number of dimensions (3 for images, 1 for labels), checked against
            the magic number; ``None`` accepts any.
        dtype: expected element type (e.g. ``"uint8"``); ``None`` accepts any.

    Raises:
        DataError: naming the file, when it cannot be read, is not IDX (bad magic number),
            has an unexpected type or rank, is truncated, or has trailing bytes.
    """
    path = Path(path)
    data = file_bytes(path)
    where = repr(str(path))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        magic = data[:4].hex() or "(empty file)"
        raise DataError(
            f"{where} is not an IDX file (magic number {magic}); it is corrupt or not a "
            "(Fashion-)MNIST file, delete it and download it again"
        )
    code, rank = data[2], data[3]
    if ndim is not None and rank != ndim:
        raise DataError(
            f"{where} holds a {rank}-dimensional IDX array but a {ndim}-dimensional one "
            "was expected; check that the file names are not swapped"
        )
    file_dtype = IDX_TYPES[code]
    if dtype is not None and file_dtype.newbyteorder("=") != np.dtype(dtype):
        raise DataError(
            f"{where} holds {file_dtype.newbyteorder('=').name} values but "
            f"{np.dtype(dtype).name} was expected; the file is not a (Fashion-)MNIST file"
        )
    header = 4 + 4 * rank
    if len(data) < header:
        raise DataError(f"{where} is truncated inside its header; delete it and download it again")
    dims = struct.unpack(f">{rank}I", data[4:header])
    expected = math.prod(dims) * file_dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise DataError(
            f"{where} is truncated: its header announces {expected} bytes of data for shape "
            f"{dims} but only {got} are there; delete it and download it again"
        )
    if got > expected:
        raise DataError(
            f"{where} has {got - expected} unexpected bytes after the data announced by its "
            f"header (shape {dims}); it is corrupt, delete it and download it again"
        )
    array = np.frombuffer(data, dtype=file_dtype, count=math.prod(dims), offset=header)
    return array.astype(file_dtype.newbyteorder("="), copy=True).reshape(dims)
