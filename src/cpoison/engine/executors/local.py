"""In-process execution in plan order (the default)."""

from __future__ import annotations

from typing import Any

from cpoison.engine.executors.base import Executor, ResultCallback
from cpoison.engine.plan import Task


class LocalExecutor(Executor):
    """Runs every task in this process, one after the other."""

    def __init__(self, **_: Any) -> None:
        pass

    def run(self, tasks: list[Task], on_result: ResultCallback) -> None:
        results: dict[str, dict[str, Any]] = {}
        for task in tasks:
            result = task.fn(*task.args, *(results[d] for d in task.deps))
            results[task.key] = result
            on_result(task, result)
