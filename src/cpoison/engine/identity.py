"""The keys of a run's units of work (SPEC 11), assembled from what determines each one
with the primitives of :mod:`cpoison.store.keys`. The driver uses them to skip finished
work; the tasks use the same functions to store what they make."""

from __future__ import annotations

from typing import Any

from cpoison.attacks.goals import goal_kind
from cpoison.experiments.config import ExperimentConfig, is_user_dataset
from cpoison.experiments.repeats import repeat_seed, victim_seeds
from cpoison.experiments.settings import setting_for
from cpoison.experiments.workspace import Workspace
from cpoison.store import keys

# Config fields that do not shape a poison set: how many victims and repeats evaluate it,
# the scores, the victim architecture, the defense and the conformal predictor they are
# evaluated with (``predictor``: in the cell's key when set), the run's name, the other
# attacks and the grid (each point is keyed by its own values); ``data`` (how a user's data
# is split) is in the dataset's content digest, hence in the surrogate's key; ``precision``
# is in every model's key through its resolved recipe.
NOT_CRAFTING = {"name", "n_victims", "n_repeats", "scores", "victim", "defense", "attacks",
                "grid", "data", "precision", "predictor"}

def split_key(ws: Workspace) -> str:
    return keys.digest(dataset=ws.digest, split=keys.split_digest(ws.split))


def surrogate_key(ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
    return setting_for(config).surrogate_key(ws, config, repeat)


def crafting_fields(config: ExperimentConfig) -> dict[str, Any]:
    """The config fields that shape crafting. A user's dataset path is replaced by
    ``"user"`` and a surrogate's weights path by its content digest (the surrogate's key
    already holds both contents), so the same data or weights under another path share
    keys (SPEC 11)."""
    fields = config.model_dump(mode="json", exclude=NOT_CRAFTING)
    if is_user_dataset(config.dataset):
        fields["dataset"] = "user"
    if config.surrogate is not None and config.surrogate.weights:
        fields["surrogate"]["weights"] = keys.file_digest(config.surrogate.weights)
    fields = setting_for(config).crafting_fields(config, fields)
    # goals whose targets and bases the engine chooses by goal (SPEC 4.1) carry their kind's
    # protocol version, so poisons crafted before the engine knew them are never reused
    version = goal_kind(config.goal).protocol_version
    if version is not None:
        fields["goal_protocol"] = version
    return fields


def poisons_key(ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int) -> str:
    return keys.poisons_key(
        surrogate=surrogate_key(ws, config, repeat), crafting=crafting_fields(config),
        attack=config.attacks[attack_index], repeat_seed=repeat_seed(config, repeat),
        device_type=ws.device.type,
    )


def benign_key(ws: Workspace, config: ExperimentConfig, repeat: int, victim: int) -> str:
    """Key of benign victim ``victim`` (the setting's: with no defense its model's key;
    under a defense, with the defense's settings)."""
    return setting_for(config).benign_key(ws, config, repeat, victim)


def benign_stored(ws: Workspace, config: ExperimentConfig, key: str) -> bool:
    """Whether the benign victim of ``key`` is in the store (its model, or under a defense
    its victim record)."""
    return setting_for(config).benign_stored(ws, config, key)


def cell_key(ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int,
             victim: int) -> str:
    """Key of one cell: its poisons, its benign victim, and what the setting says the
    evaluation depends on (the victims' spec, scores, alpha, seed, the defense, and the
    conformal predictor when one is set)."""
    _, eval_seed = victim_seeds(config, repeat, victim)
    return keys.cell_key(poisons=poisons_key(ws, config, repeat, attack_index),
                         benign=benign_key(ws, config, repeat, victim),
                         **setting_for(config).cell_parts(ws, config, eval_seed))


def config_hash(config: ExperimentConfig) -> str:
    return keys.config_hash(config)
