"""Checksum-verified, atomic downloads (SPEC 8: "downloaded with checksum verification").

:func:`download_file` streams a URL into a temporary file next to the destination while
hashing it, checks the SHA-256, and only then renames it onto the destination. Whatever goes
wrong (HTTP error, refused or dropped connection, timeout, short body, checksum mismatch,
interrupt) the temporary file is removed, the destination is left untouched, and a
:class:`~cpoison.errors.DataError` says what happened.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from cpoison.errors import DataError
from cpoison.io import atomic_write

__all__ = ["download_file", "sha256_file"]

_CHUNK = 1 << 20
_ALLOWED_SCHEMES = ("http", "https", "file")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    """A short human-readable reason for a download failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP error {exc.code} ({exc.reason})"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection was closed before the whole file arrived"
    return str(exc) or type(exc).__name__


def download_file(
    url: str,
    dest: str | Path,
    sha256: str,
    timeout: float = 60.0,
    *,
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its SHA-256.

    Args:
        url: ``http``, ``https`` or ``file`` URL.
        dest: destination file; its directory is created if needed. An existing file is
            replaced only once the new one is complete and verified.
        sha256: expected hex SHA-256 of the file (64 hex digits, any case).
        timeout: seconds to wait on any single network operation.
        progress: show a progress bar (on a terminal only).

    Returns:
        ``dest`` as a Path.

    Raises:
        DataError: on an HTTP error, a connection error or timeout, a truncated body or a
            checksum mismatch; no partial file is left behind.
        ValueError: when ``sha256`` is not 64 hex digits (a programming error).
    """
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    expected = sha256.lower()
    dest = Path(dest)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise DataError(
            f"cannot download {url!r}: only http, https and file URLs are supported"
        )

    def write(tmp: Path) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "cpoison"})
        hasher = hashlib.sha256()
        received = 0
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as out:
            length_header = resp.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            bar = tqdm(
                total=length, unit="B", unit_scale=True, desc=dest.name, leave=False,
                disable=None if progress else True,
            )
            with bar:
                while chunk := resp.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if length is not None and received != length:
                raise DataError(
                    f"download of {url} was cut short ({received} of {length} bytes); "
                    "try again or check your connection"
                )
        digest = hasher.hexdigest()
        if digest != expected:
            raise DataError(
                f"download of {url} failed its checksum (SHA-256 {digest}, expected "
                f"{expected}); the file is corrupt or the mirror serves a different file, "
                "so it was discarded"
            )

    try:
        atomic_write(dest, write)
    except DataError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DataError(f"could not download {url}: {_reason(exc)}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"could not download {url} to {str(dest)!r}: {_reason(exc)}") from exc
    return dest
