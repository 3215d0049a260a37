"""Checks that need the dataset but no model (SPEC 11): run on every grid point before any
model trains, each failure one message naming the field and the point.

Besides classes, labels and budgets: the goal's class indices (SPEC 4.1,
:func:`cpoison.attacks.goals.check_goal`), and a user's model functions, objects, weights
and training functions (SPEC 12: imported, built and run once on the dataset's shape), and
the victims' conformal predictor (imported and built once per score)."""

from __future__ import annotations

from cpoison.attacks.goals import check_goal, goal_kind
from cpoison.conformal.factories import check_predictor_factory
from cpoison.defenses import build_defense
from cpoison.engine.grid import GridPoint
from cpoison.errors import ConfigError
from cpoison.experiments.config import ExperimentConfig, is_user_arch
from cpoison.experiments.evaluation import replaces_conformal
from cpoison.experiments.repeats import poison_budget
from cpoison.experiments.settings import setting_for
from cpoison.experiments.workspace import Workspace, check_train_fn


def check_point(ws: Workspace, point: GridPoint) -> None:
    """ConfigError when a class, a label, a budget, a model or a defense setting of
    ``point`` does not fit the data."""
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
    try:
        check_goal(config.goal, k, target_class)
    except ConfigError as err:
        raise ConfigError(f"{err}{where}") from None
    if target_class is None:
        target_class = config.goal.target_class()
    if ds.kind == "features":
        _check_features(config, ds.name, where)
    _check_models(ws, point, where)
    labels = ds.train_labels
    n_poisons, pool, owner = poison_budget(config, ws, where)
    if config.poison_class == "target":
        classes = [target_class] if target_class is not None else list(range(k))
        smallest = min(int((labels[pool] == c).sum()) for c in classes)
        if n_poisons > smallest:
            which = (f"class {target_class}" if target_class is not None
                     else "the smallest class (the target class is drawn per repeat)")
            raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the "
                              f"{owner} pool has only {smallest} images of {which}{where}")
    elif config.poison_class == "other":
        counts = [int((labels[pool] == c).sum()) for c in range(k)]
        available = pool.numel() - (counts[target_class] if target_class is not None
                                    else max(counts))
        if n_poisons > available:
            raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the "
                              f"{owner} pool has only {available} images outside the target "
                              f"class (poison_class 'other'){where}")
    elif (config.poison_class == "labels-to-add" and config.goal.label is not None
          and goal_kind(config.goal).poison_class == "labels-to-add"):  # the named label
        available = int((labels[pool] == config.goal.label).sum())
        if n_poisons > available:
            raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the "
                              f"{owner} pool has only {available} images of goal.label "
                              f"{config.goal.label} (the label to add){where}")
    elif n_poisons > pool.numel():
        raise ConfigError(f"budget {config.budget} needs {n_poisons} poisons but the {owner} "
                          f"pool has only {pool.numel()} images{where}")
    check_defense(ws, point, where)
    check_predictor(point, where)
    setting_for(config).check(ws, config, where)


def check_defense(ws: Workspace, point: GridPoint, where: str = "") -> None:
    """The defense's settings against the victims' data sizes (SPEC 7: e.g. RPS's k_t above
    the training set size, deep k-NN's k), before any model trains."""
    split = ws.split
    try:
        build_defense(point.config.defense).check_sizes(
            int(split.victim_train.numel()), int(split.victim_cal.numel()))
    except ConfigError as err:
        raise ConfigError(f"{err}{where}") from None


def check_predictor(point: GridPoint, where: str = "") -> None:
    """The victims' conformal predictor (a config's ``predictor``): refused under a
    defense that replaces the conformal predictor (RPS); imported, and built once for
    every score but RSCP (a missing library, a score it cannot make, a factory that
    fails), before any model trains."""
    config = point.config
    if config.predictor is None:
        return
    if replaces_conformal(build_defense(config.defense)):
        raise ConfigError(f"predictor {config.predictor!r}: defense {config.defense.name!r} "
                          "replaces the victims' conformal predictor (its own calibration "
                          "and vote), so the sets cannot come from your predictor; leave "
                          f"predictor unset to evaluate {config.defense.name!r}, or use "
                          f"another defense{where}")
    try:
        check_predictor_factory(config.predictor, config.scores, config.alpha)
    except ConfigError as err:
        raise ConfigError(f"{err}{where}") from None


def _check_features(config: ExperimentConfig, name: str, where: str) -> None:
    """What feature vectors cannot do: the transfer setting (a pretrained image extractor),
    MetaPoison (it stores its poisons as pixels) and augmentation while crafting."""
    if config.setting == "transfer":
        raise ConfigError(f"dataset {name} holds feature vectors; the transfer setting "
                          f"needs images (train from scratch){where}")
    for i, attack in enumerate(config.attacks):
        if attack.name == "metapoison":
            raise ConfigError(f"attacks.{i}: metapoison crafts image poisons; dataset {name} "
                              f"holds feature vectors (use ours, randun or randga){where}")
        crafting = getattr(attack, "crafting", None)
        if crafting is not None and getattr(crafting, "augment", False):
            raise ConfigError(f"attacks.{i}.crafting.augment: feature vectors are not "
                              f"augmented (dataset {name}); set it to false{where}")


def _check_models(ws: Workspace, point: GridPoint, where: str) -> None:
    """Import, build and run once (on a batch of the dataset's shape) every user model
    function and every spec with weights (SPEC 12); ConfigError names the field."""
    for field in ("victim", "surrogate"):
        spec = ws.spec(getattr(point.config, field))
        try:
            if is_user_arch(spec.arch) or spec.weights or ws.dataset.kind == "features":
                ws.build(0, spec)
            if spec.train_fn:
                check_train_fn(spec.train_fn)
                if (field == "victim"
                        and build_defense(point.config.defense).training_hooks() is not None):
                    raise ConfigError("a defense that changes how models train (its training "
                                      "hooks) cannot run with your own train_fn; audit that "
                                      "defense with cpoison's training, or without train_fn")
        except ConfigError as err:
            raise ConfigError(f"{field}: {err}{where}") from None
