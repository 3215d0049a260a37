"""Where datasets live: the user's data root, the user cache, and helpers to search them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cpoison.errors import DataError

__all__ = ["CACHE_ENV", "check_root", "describe_dirs", "user_cache_dir"]

CACHE_ENV = "CPOISON_CACHE"
"""Environment variable that overrides the user cache directory."""


def user_cache_dir() -> Path:
    """The user cache: ``$CPOISON_CACHE`` if set, else ``~/.cache/cpoison`` (not created)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cpoison"


def check_root(root: str | Path | None) -> Path | None:
    """``root`` as a Path; DataError if it is given but is not an existing directory."""
    if root is None:
        return None
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(
            f"data root {str(path)!r} does not exist; create it and put the dataset files "
            "there, or leave the data root unset to use the default locations"
        )
    if not path.is_dir():
        raise DataError(f"data root {str(path)!r} is not a directory; pass a directory")
    return path


def describe_dirs(dirs: Iterable[Path]) -> str:
    """``'a', 'b' and 'c'`` for an error message."""
    names = [repr(str(d)) for d in dirs]
    if len(names) <= 1:
        return "".join(names) or "(nowhere)"
    return ", ".join(names[:-1]) + " and " + names[-1]


def unique_dirs(dirs: Iterable[Path]) -> list[Path]:
    """``dirs`` without repeats, order kept."""
    seen: set[Path] = set()
    out: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out
