"""Fixtures for the cpoison.data tests: an isolated user cache (autouse), a throw-away local
HTTP server, and a URL where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from data_helpers import LocalServer

# --------------------------------------------------------------------------------------------
# Isolation: never touch the real user cache, never use a real mirror.


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$CPOISON_CACHE`` at a fresh folder and unset the mirror override."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("CPOISON_CACHE", str(cache))
    monkeypatch.delenv("CPOISON_FASHION_MNIST_URL", raising=False)
    return cache


# --------------------------------------------------------------------------------------------
# Local HTTP server


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A local HTTP server serving ``tmp_path / "www"`` (empty at first)."""
    www = tmp_path / "www"
    www.mkdir()
    server = LocalServer(www)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
