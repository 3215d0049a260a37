"""The SPEC 6 units of work as plain functions of picklable arguments, so any executor can
run them in any process: each rebuilds its workspace from the run options, loads what it
depends on from the artifact store by key, and stores what it makes under its own key.

Extra positional arguments (``*_after``) are the results of the tasks a unit depends on;
executors pass them only to order the work (Ray resolves them before the call). Every unit
returns ``{"key": ..., "trained": [models it had to train], ...}`` so the driver can say
what a run actually computed."""

from __future__ import annotations

from typing import Any

from cpoison.engine import identity
from cpoison.engine.runtime import RunOptions, workspace_for
from cpoison.experiments import protocol
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.workspace import Workspace


def _result(ws: Workspace, before: int, key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "trained": ws.trained[before:], **extra}


def surrogate_task(opts: RunOptions, config: ExperimentConfig, repeat: int,
                   *_after: Any) -> dict[str, Any]:
    """Train (or load) the repeat's surrogate; returns its key."""
    ws = workspace_for(opts, config)
    before = len(ws.trained)
    protocol.train_surrogate(ws, config, repeat)
    return _result(ws, before, identity.surrogate_key(ws, config, repeat))


def poisons_task(opts: RunOptions, config: ExperimentConfig, repeat: int, attack_index: int,
                 *_after: Any) -> dict[str, Any]:
    """Craft the poisons of one attack for one repeat (or find them stored); returns their
    key. The stored sidecar records the provenance SPEC 11 asks for."""
    ws = workspace_for(opts, config)
    before = len(ws.trained)
    key = identity.poisons_key(ws, config, repeat, attack_index)
    if ws.store.has_poisons(key):
        return _result(ws, before, key)
    surrogate = protocol.train_surrogate(ws, config, repeat)
    setup = protocol.setup_repeat(ws, config, repeat, surrogate)
    poisons = protocol.craft(config, attack_index, setup)
    poisons.meta.update(
        split_seed=config.seed, dataset=ws.digest, split=identity.split_key(ws),
        surrogate=identity.surrogate_key(ws, config, repeat),
        config_hash=identity.config_hash(config), device=ws.device.type,
    )
    ws.store.save_poisons(key, poisons)
    return _result(ws, before, key, crafted=True)


def benign_task(opts: RunOptions, config: ExperimentConfig, repeat: int, victim: int,
                *_after: Any) -> dict[str, Any]:
    """Train (or load) one benign victim; returns its key."""
    ws = workspace_for(opts, config)
    before = len(ws.trained)
    protocol.benign_victim(ws, config, repeat, victim)
    return _result(ws, before, identity.benign_key(ws, config, repeat, victim))


def cell_task(opts: RunOptions, config: ExperimentConfig, repeat: int, attack_index: int,
              victim: int, *_after: Any) -> dict[str, Any]:
    """Evaluate one cell (benign victim + poisoned twin); stores and returns its rows."""
    ws = workspace_for(opts, config)
    before = len(ws.trained)
    key = identity.cell_key(ws, config, repeat, attack_index, victim)
    poisons = ws.store.load_poisons(identity.poisons_key(ws, config, repeat, attack_index))
    rows = protocol.evaluate_cell(ws, config, repeat, attack_index, victim, poisons)
    ws.store.put_json("cells", key, {"key": key, "rows": rows})
    return _result(ws, before, key, rows=rows)
