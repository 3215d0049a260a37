"""Shipped configs as package data (``cpoison/configs``), found from any folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cpoison.errors import ConfigError


def _configs_root() -> Path:
    return Path(str(resources.files("cpoison") / "configs"))


def shipped_configs() -> list[str]:
    """Names (``configs/...yaml``) of every shipped config."""
    root = _configs_root()
    return sorted(f"configs/{p.relative_to(root).as_posix()}" for p in root.rglob("*.yaml"))


def resolve_config(path: str | Path) -> Path:
    """A user's existing file wins; else ``configs/x.yaml`` or ``x.yaml`` among the shipped
    configs; else ConfigError listing them."""
    path = Path(path)
    if path.is_file():
        return path
    rel = path.as_posix()
    rel = rel[len("configs/"):] if rel.startswith("configs/") else rel
    shipped = _configs_root() / rel
    if not path.is_absolute() and shipped.is_file():
        return shipped
    raise ConfigError(f"config file {path} does not exist (shipped configs: "
                      f"{', '.join(shipped_configs())})")
