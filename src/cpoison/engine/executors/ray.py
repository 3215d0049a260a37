"""Ray execution (SPEC 11): every task is a Ray task whose arguments include the results of
the tasks it depends on, so Ray schedules surrogate -> poisons -> cells <- benign victims
across the cluster; system failures (a worker or node lost) are retried.

Ray tasks rather than Ray Data or Tune: the units are few, coarse (seconds to hours each)
and form a small dependency graph with shared inputs (one benign victim serves every attack
and budget), which is what tasks with ObjectRef arguments express directly; Tune's trials
would each retrain the shared surrogate and benign victims.

Workers reach the artifact store by its path or URL (a folder shared by every node, or an
fsspec URL) and set their torch thread count to their CPU share.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from typing import Any

from cpoison.engine.executors.base import Executor, ResultCallback
from cpoison.engine.plan import Task
from cpoison.engine.runtime import RunOptions
from cpoison.errors import ConfigError, CpoisonError

log = logging.getLogger(__name__)


class RayExecutor(Executor):
    """``address``: None starts a local Ray (``num_cpus`` CPUs, default all); ``auto`` joins
    the cluster this machine belongs to; ``ray://HOST:PORT`` joins a remote one.
    ``cpus_per_task`` / ``gpus_per_task`` reserve resources per task; ``max_retries`` is for
    system failures (user errors are not retried)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
                 max_retries: int = 2, **_: Any) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_retries = max_retries
        self._started_here = False

    def start(self) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the Ray executor needs Ray: pip install 'cpoison[ray]'") from None
        if ray.is_initialized():
            return
        if self.address not in (None, "auto"):
            _check_reachable(self.address)
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if self.address is None:
            kwargs["num_cpus"] = self.num_cpus
            # Ray starts its workers at nice 15: on a machine shared with anything else they
            # starve (measured here: a local Ray's victims ran 2-3x slower beside a test run).
            # A local Ray runs the user's own job, so its workers get normal priority.
            kwargs["_system_config"] = {"worker_niceness": 0}
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            where = self.address or "a local Ray"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"cannot reach the Ray cluster at {where}: {first}") from None
        self._started_here = True

    def _options(self, opts: RunOptions) -> RunOptions:
        threads = opts.threads or max(1, int(self.cpus_per_task))
        return dataclasses.replace(opts, threads=threads, progress=False)

    def run(self, tasks: list[Task], on_result: ResultCallback) -> None:
        import ray
        from ray.exceptions import RayTaskError

        remote = {}
        refs: dict[str, Any] = {}
        by_ref: dict[Any, Task] = {}
        for task in tasks:
            fn = remote.get(task.fn)
            if fn is None:
                fn = remote[task.fn] = ray.remote(task.fn).options(
                    num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                    max_retries=self.max_retries)
            opts, *rest = task.args
            deps = [refs[d] for d in task.deps]
            ref = fn.remote(self._options(opts), *rest, *deps)
            refs[task.key] = ref
            by_ref[ref] = task
        pending = list(by_ref)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except RayTaskError as err:
                cause = err.cause if isinstance(err.cause, CpoisonError) else None
                if cause is not None:
                    raise cause from None
                raise
            on_result(by_ref[done[0]], result)

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """ConfigError unless a TCP connection to ``HOST:PORT`` (or ``ray://HOST:PORT``) opens
    within ``timeout`` seconds (Ray itself retries an unreachable head for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: "
                          f"{err.strerror or err}") from None
