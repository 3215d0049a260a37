"""Configs shipped inside the package, found from any folder (SPEC 9, SPEC 10).

The YAML configs of the paper's experiments and of the demo (SPEC 9) live in
``src/cpoison/configs/`` and are installed as package data, so ``cpoison demo`` and every
``cpoison attack configs/...`` reference work after a plain ``pip install``, wherever the
command is run. (In a source checkout ``configs`` at the repository root is a symlink to
the same folder.)

:func:`resolve_config` maps what a user typed to a file:

1. an existing file at that path (relative to the current folder, or absolute) wins, so a
   user's own ``configs/demo.yaml`` shadows the shipped one;
2. otherwise the name is looked up among the shipped configs, with or without a leading
   ``configs/``: ``configs/demo.yaml``, ``demo.yaml`` and ``cpu/table2.yaml`` all resolve;
3. otherwise :class:`~cpoison.errors.ConfigError` names the path and lists the shipped
   configs (SPEC 10: one clear message, no traceback).
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cpoison.errors import ConfigError

if TYPE_CHECKING:  # importlib.resources.abc is Python >= 3.11; 3.10 has the same protocol
    from importlib.resources.abc import Traversable

__all__ = ["resolve_config", "shipped_config_dir", "shipped_configs"]

#: the package folder holding the shipped configs
_PACKAGE = "cpoison"
_FOLDER = "configs"
_SUFFIXES = (".yaml", ".yml")

_extracted: Path | None = None


def shipped_config_dir() -> Traversable:
    """The shipped configs' folder inside the installed package (a ``Traversable``)."""
    return resources.files(_PACKAGE).joinpath(_FOLDER)


def _walk(folder: Traversable, prefix: PurePosixPath) -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            names.extend(_walk(entry, prefix / entry.name))
        elif entry.name.endswith(_SUFFIXES):
            names.append(str(prefix / entry.name))
    return names


def shipped_configs() -> list[str]:
    """Names of the shipped configs as a user types them, sorted
    (``"configs/cpu/table2.yaml"``, ``"configs/demo.yaml"``, ...); each resolves with
    :func:`resolve_config` from any folder."""
    folder = shipped_config_dir()
    if not folder.is_dir():
        return []
    return sorted(_walk(folder, PurePosixPath(_FOLDER)))


def _as_path(entry: Traversable, name: str) -> Path:
    """A real file path for a shipped config (extracted once when installed in a zip)."""
    if isinstance(entry, Path):
        return entry
    global _extracted
    if _extracted is None:
        _extracted = Path(tempfile.mkdtemp(prefix="cpoison-configs-"))
        atexit.register(shutil.rmtree, _extracted, ignore_errors=True)
    target = _extracted / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(entry.read_bytes())
    return target


def _shipped_name(path: str | Path) -> str | None:
    """The name under ``configs/`` that ``path`` may refer to, or ``None`` if it cannot."""
    parts = PurePosixPath(Path(path).as_posix()).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        return None
    if parts[0] == "." and len(parts) > 1:
        parts = parts[1:]
    if parts[0] == _FOLDER and len(parts) > 1:
        parts = parts[1:]
    return "/".join(parts)


def resolve_config(path: str | Path) -> Path:
    """The config file ``path`` refers to: the user's file if it exists, else a shipped one.

    Raises :class:`~cpoison.errors.ConfigError` naming ``path`` and listing the shipped
    configs when neither exists.

    >>> resolve_config("configs/demo.yaml").name
    'demo.yaml'
    >>> resolve_config("cpu/table2.yaml").parent.name
    'cpu'
    """
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ConfigError(f"a config path must be a non-empty string, got {path!r}")
    given = Path(path).expanduser()
    if given.is_file():
        return given
    name = _shipped_name(path)
    if name is not None:
        entry = shipped_config_dir().joinpath(*name.split("/"))
        if entry.is_file():
            return _as_path(entry, name)
    available = ", ".join(shipped_configs()) or "none"
    raise ConfigError(
        f"config file {path} does not exist, here or among the configs shipped with cpoison "
        f"({available})"
    )


def _clean_purpose(text: str) -> str:
    """A config's header comment as a user reads it: without the developers' issue numbers
    and specification section references."""
    text = re.sub(r"\b[Ii]ssue \d+,?\s*", "", text)

    def paren(match: re.Match[str]) -> str:
        parts = [p.strip() for p in re.split(r";", match.group(1))]
        kept = [p for p in parts if p and "SPEC" not in p]
        return f"({'; '.join(kept)})" if kept else ""

    text = re.sub(r"\(([^()]*)\)", paren, text)
    text = re.sub(r"SPEC's\s+", "the ", text)
    text = re.sub(r",?\s*\bSPEC\s+\d+(?:\.\d+)*", "", text)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def config_purpose(name: str, width: int = 110) -> str:
    """What a shipped config is for: the first sentence of its header comment, at most
    ``width`` characters (cut at a word, with "..."), or ``""`` when it has no comment."""
    path = resolve_config(name)
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = _clean_purpose(" ".join(lines))
    # the first sentence: up to a full stop that does not end "Fig.", "Eq.", "e.g." or "vs."
    end = re.compile(r"(?<=[a-z0-9)\]])(?<!\bFig)(?<!\bEq)(?<!\be\.g)(?<!\bvs)\.(?:\s|$)")
    first = end.split(text, maxsplit=1)[0].rstrip(":;, ")
    if re.match(r"[a-z]+\b(?![./])", first):  # a sentence, not a file name, starts it
        first = first[:1].upper() + first[1:]
    if len(first) > width:
        first = first[: width - 3].rsplit(" ", 1)[0].rstrip(",;:( ") + "..."
    return first
