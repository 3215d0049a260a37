"""download_file against a local HTTP server: good file, wrong hash, 404, cut-off body,
refused connection; a failure never leaves a partial file behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from data_helpers import LocalServer

from cpoison.data.download import download_file, sha256_file
from cpoison.errors import DataError

PAYLOAD = b"fashion" * 5000  # a few chunks' worth would be overkill; 35 kB is enough


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def served(http_server: LocalServer) -> LocalServer:
    (http_server.directory / "good.bin").write_bytes(PAYLOAD)
    return http_server


def test_good_file_is_downloaded_and_verified(served: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "nested" / "good.bin"
    got = download_file(f"{served.url}/good.bin", dest, _sha(PAYLOAD), timeout=10)
    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert _files(dest.parent) == ["good.bin"]  # no temporary file left over
    assert sha256_file(dest) == _sha(PAYLOAD)


def test_checksum_is_case_insensitive(served: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "good.bin"
    download_file(f"{served.url}/good.bin", dest, _sha(PAYLOAD).upper(), timeout=10)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_hash_raises_and_leaves_nothing(served: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="checksum") as info:
        download_file(f"{served.url}/good.bin", out / "good.bin", "0" * 64, timeout=10)
    assert _sha(PAYLOAD) in str(info.value)
    assert _files(out) == []


def test_wrong_hash_keeps_existing_destination(served: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "good.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(DataError):
        download_file(f"{served.url}/good.bin", dest, "f" * 64, timeout=10)
    assert dest.read_bytes() == b"previous"
    assert _files(tmp_path) == sorted(["good.bin", "www"])


def test_404_raises_and_leaves_nothing(served: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="404"):
        download_file(f"{served.url}/missing.bin", out / "missing.bin", _sha(b""), timeout=10)
    assert _files(out) == []


def test_cut_off_body_raises_and_leaves_nothing(served: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="could not download|cut short"):
        download_file(f"{served.url}/truncated/10", out / "t.bin", _sha(b"x" * 1000), timeout=10)
    assert _files(out) == []


def test_refused_connection_raises(closed_port_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="could not download"):
        download_file(f"{closed_port_url}/x.bin", out / "x.bin", _sha(b""), timeout=5)
    assert _files(out) == []


def test_file_url_works(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "dest.bin"
    download_file(src.as_uri(), dest, _sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_unsupported_scheme_and_bad_hash_argument(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="only http, https and file"):
        download_file("ftp://example.invalid/x", tmp_path / "x", _sha(b""))
    with pytest.raises(ValueError, match="64 hex digits"):
        download_file("http://127.0.0.1/x", tmp_path / "x", "abc")
