"""The plan of a run (SPEC 6, 11): its evaluation cells, and the tasks still needed to fill
the missing ones, with their dependencies (surrogate -> poisons -> cell <- benign victim).

Work whose key is already in the artifact store is not planned again: a surrogate whose
poisons are stored, a stored benign victim, a cell whose rows are stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cpoison.attacks import attack_label
from cpoison.engine import identity, tasks
from cpoison.engine.grid import GridPoint
from cpoison.engine.runtime import RunOptions
from cpoison.experiments.workspace import Workspace


@dataclass(frozen=True)
class Cell:
    """One poisoned victim paired with its benign twin, at one grid point."""

    key: str
    point: int
    repeat: int
    attack_index: int
    attack: str
    victim: int


@dataclass
class Task:
    """A unit of work: ``fn(*args, *results of deps)``."""

    key: str
    kind: str  # surrogate | poisons | benign | cell
    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    deps: tuple[str, ...] = field(default_factory=tuple)


def cells_of(points: list[GridPoint], workspace: Callable[[GridPoint], Workspace]) -> list[Cell]:
    """Every cell of the run, ordered repeat, victim, grid point, attack: an interrupted
    run has whole victims of every point and attack before it starts the next victim."""
    out = []
    n_repeats = max(p.config.n_repeats for p in points)
    n_victims = max(p.config.n_victims for p in points)
    for repeat in range(n_repeats):
        for victim in range(n_victims):
            for i, point in enumerate(points):
                config = point.config
                if repeat >= config.n_repeats or victim >= config.n_victims:
                    continue
                ws = workspace(point)
                for a, attack in enumerate(config.attacks):
                    out.append(Cell(identity.cell_key(ws, config, repeat, a, victim), i,
                                    repeat, a, attack_label(attack), victim))
    return out


def tasks_for(cells: list[Cell], points: list[GridPoint], opts: RunOptions,
              workspace: Callable[[GridPoint], Workspace]) -> list[Task]:
    """The tasks that fill ``cells``, in an order where every task follows its deps."""
    planned: dict[str, Task] = {}

    def add(task: Task) -> str:
        planned.setdefault(task.key, task)
        return task.key

    for cell in cells:
        config = points[cell.point].config
        ws = workspace(points[cell.point])
        deps = []
        pkey = identity.poisons_key(ws, config, cell.repeat, cell.attack_index)
        if pkey in planned or not ws.store.has_poisons(pkey):
            skey = identity.surrogate_key(ws, config, cell.repeat)
            before = ()
            if skey in planned or not ws.store.has_model(skey):
                before = (add(Task(skey, "surrogate", tasks.surrogate_task,
                                   (opts, config, cell.repeat))),)
            deps.append(add(Task(pkey, "poisons", tasks.poisons_task,
                                 (opts, config, cell.repeat, cell.attack_index), before)))
        bkey = identity.benign_key(ws, config, cell.repeat, cell.victim)
        if bkey in planned or not identity.benign_stored(ws, config, bkey):
            deps.append(add(Task(bkey, "benign", tasks.benign_task,
                                 (opts, config, cell.repeat, cell.victim))))
        add(Task(cell.key, "cell", tasks.cell_task,
                 (opts, config, cell.repeat, cell.attack_index, cell.victim), tuple(deps)))
    return list(planned.values())
