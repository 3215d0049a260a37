"""The keys of a run's units of work (SPEC 11), assembled from what determines each one
with the primitives of :mod:`cpoison.store.keys`. The driver uses them to skip finished
work; the tasks use the same functions to store what they make."""

from __future__ import annotations

from typing import Any

from cpoison.experiments import protocol, transfer_protocol
from cpoison.experiments.config import ExperimentConfig, is_user_dataset
from cpoison.experiments.workspace import Workspace
from cpoison.store import keys

# Config fields that do not shape a poison set: how many victims and repeats evaluate it,
# the scores, the victim architecture and the defense they are evaluated with, the run's
# name, the other attacks and the grid (each point is keyed by its own values); ``data``
# (how a user's data is split) is in the dataset's content digest, hence in the surrogate's
# key; ``precision`` is in every model's key through its resolved recipe.
NOT_CRAFTING = {"name", "n_victims", "n_repeats", "scores", "victim", "defense", "attacks",
                "grid", "data", "precision"}

# Goals whose targets and bases the engine chooses by goal (SPEC 4.1: goal eligibility of
# the targets, bases by GOAL_POISON_CLASS); their poison keys carry this version so that
# poisons crafted before the engine knew these goals are never reused.
GOAL_PROTOCOL = {"unequal-coverage": 1, "add-label": 1, "remove-label": 1}


def split_key(ws: Workspace) -> str:
    return keys.digest(dataset=ws.digest, split=keys.split_digest(ws.split))


def surrogate_key(ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
    if config.transfer is not None:  # the attacker's head on the extractor's features
        return transfer_protocol.surrogate_key(ws, config, repeat)
    data, seed = protocol.surrogate_data(ws, config, repeat)
    return ws.model_key(data, seed, config.surrogate)


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
    if config.transfer is not None:
        # the victims' head, their subsample and their full-CP method and evaluation sample
        # do not shape crafting (the extractor and the attacker's head are in the
        # surrogate's key); under full CP the subset size does (the attacker's loss uses
        # that many of its training points' scores)
        tf = fields["transfer"]
        for name in ("head", "victim_subsample"):
            tf.pop(name, None)
        full_cp = tf.pop("full_cp", None)
        if config.transfer.conformal == "full" and full_cp is not None:
            tf["attacker_subset_size"] = full_cp["subset_size"]
    if config.goal.kind in GOAL_PROTOCOL:
        fields["goal_protocol"] = GOAL_PROTOCOL[config.goal.kind]
    return fields


def poisons_key(ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int) -> str:
    return keys.poisons_key(
        surrogate=surrogate_key(ws, config, repeat), crafting=crafting_fields(config),
        attack=config.attacks[attack_index], repeat_seed=protocol.repeat_seed(config, repeat),
        device_type=ws.device.type,
    )


def defense_key(config: ExperimentConfig) -> Any:
    """The defense's part of the victims' and the cells' keys (SPEC 7, 11): its settings,
    or ``None`` for no defense (keys as before defenses existed)."""
    return None if config.defense.name == "none" else config.defense


def benign_key(ws: Workspace, config: ExperimentConfig, repeat: int, victim: int) -> str:
    """Key of benign victim ``victim``: with no defense, its model's key; under a defense,
    the same fields plus the defense's settings (the key of the model a training-hook
    defense trains, and of the victim record ``victims/<key>.json`` every defense stores);
    in the transfer setting, the key of its head."""
    if config.transfer is not None:
        return transfer_protocol.benign_key(ws, config, repeat, victim)
    seed, _ = protocol.victim_seeds(config, repeat, victim)
    return ws.model_key(protocol.benign_data(ws), seed, config.victim,
                        defense=defense_key(config))


def benign_stored(ws: Workspace, config: ExperimentConfig, key: str) -> bool:
    """Whether the benign victim of ``key`` is in the store (its model, or under a defense
    its victim record)."""
    if defense_key(config) is None or config.transfer is not None:
        return ws.store.has_model(key)
    return ws.store.exists("victims", key, ".json")


def cell_key(ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int,
             victim: int) -> str:
    _, eval_seed = protocol.victim_seeds(config, repeat, victim)
    if config.transfer is not None:
        tc = config.transfer
        return keys.cell_key(
            poisons=poisons_key(ws, config, repeat, attack_index),
            benign=benign_key(ws, config, repeat, victim),
            victim={"transfer_head": tc.head, "victim_subsample": tc.victim_subsample},
            evaluation={"scores": list(config.scores), "alpha": config.alpha,
                        "seed": eval_seed, "conformal": tc.conformal,
                        "full_cp": tc.full_cp if tc.conformal == "full" else None,
                        "rscp_samples": ws.preset.rscp_samples if "rscp" in config.scores
                        else None},
        )
    return keys.cell_key(
        poisons=poisons_key(ws, config, repeat, attack_index),
        benign=benign_key(ws, config, repeat, victim),
        victim=ws.spec(config.victim).model_dump(mode="json"),
        evaluation={"scores": list(config.scores), "alpha": config.alpha, "seed": eval_seed,
                    "rscp_samples": ws.preset.rscp_samples if "rscp" in config.scores else None},
        defense=defense_key(config),
    )


def config_hash(config: ExperimentConfig) -> str:
    return keys.config_hash(config)
