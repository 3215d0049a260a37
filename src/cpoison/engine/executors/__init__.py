"""Executors run a plan's tasks (SPEC 11). ``local`` runs them in this process in plan
order; ``ray`` runs them as Ray tasks with their dependencies, on a local Ray or a cluster.
Adding an executor is one file plus an entry in :data:`EXECUTORS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpoison.engine.executors.base import Executor, ResultCallback
from cpoison.engine.executors.local import LocalExecutor
from cpoison.engine.executors.ray import RayExecutor
from cpoison.errors import ConfigError

EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def build_executor(name: str, **options: Any) -> Executor:
    """The executor ``name`` with its options (ConfigError for an unknown name)."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose from {sorted(EXECUTORS)}")
    return EXECUTORS[name](**options)


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "ResultCallback",
           "build_executor"]
