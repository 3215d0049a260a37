"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from cpoison.engine.plan import Task

ResultCallback = Callable[[Task, dict[str, Any]], None]


class Executor(ABC):
    """Runs tasks; calls ``on_result(task, result)`` in the driver as each one finishes
    (the driver alone writes the results database)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to or start whatever the executor needs; a CpoisonError if it cannot."""

    @abstractmethod
    def run(self, tasks: list[Task], on_result: ResultCallback) -> None:
        """Run ``tasks`` (ordered so that every task follows its dependencies)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` acquired."""
