"""Checks that need the dataset but no model (SPEC 11): run on every grid point before any
model trains, each failure one message naming the field and the point."""

from __future__ import annotations

from cpoison.defenses import build_defense
from cpoison.engine.grid import GridPoint
from cpoison.errors import ConfigError
from cpoison.experiments.workspace import Workspace


def check_point(ws: Workspace, point: GridPoint) -> None:
    """ConfigError when a class, a label, a budget or a defense setting of ``point`` does
    not fit the data."""
    config, ds = point.config, ws.dataset
    where = f" (grid cell {{{point.label}}})" if point.values else ""
    k = ds.num_classes
    target_class = config.targets.target_class
    if target_class is not None and target_class >= k:
        raise ConfigError(f"targets.target_class {target_class} is not a class of {ds.name} "
                          f"(0..{k - 1}){where}")
    wrong = [y for y in config.goal.add_labels or () if not 0 <= y < k]
    if wrong:
        raise ConfigError(f"goal.add_labels {wrong} are not classes of {ds.name} "
                          f"(0..{k - 1}){where}")
    split, labels = ws.split, ds.train_labels
    n_poisons = round(config.budget * split.victim_train.numel())
    if n_poisons < 1:
        raise ConfigError(f"budget {config.budget} gives no poison for "
                          f"{split.victim_train.numel()} victim training images{where}")
    pool = split.attacker_train if config.setting == "black-box" else split.victim_train
    owner = "attacker" if config.setting == "black-box" else "victim"
    if config.poison_class == "target":
        classes = [target_class] if target_class is not None else list(range(k))
        smallest = min(int((labels[pool] == c).sum()) for c in classes)
        if n_poisons > smallest:
            which = (f"class {target_class}" if target_class is not None
                     else "the smallest class (the target class is drawn per repeat)")
            raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the "
                              f"{owner} pool has only {smallest} images of {which}{where}")
    elif n_poisons > pool.numel():
        raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the {owner} "
                          f"pool has only {pool.numel()} images{where}")
    check_defense(ws, point, where)


def check_defense(ws: Workspace, point: GridPoint, where: str = "") -> None:
    """The defense's settings against the victims' data sizes (SPEC 7: e.g. RPS's k_t above
    the training set size, deep k-NN's k), before any model trains."""
    split = ws.split
    try:
        build_defense(point.config.defense).check_sizes(
            int(split.victim_train.numel()), int(split.victim_cal.numel()))
    except ConfigError as err:
        raise ConfigError(f"{err}{where}") from None
