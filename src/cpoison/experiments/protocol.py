"""The evaluation protocol of the paper (Sec. 5, SPEC 6), one unit of work at a time.

For each repeat: the surrogate is trained on D^tr (:func:`train_surrogate`); the target
class and targets are picked and every attack's poisons crafted (:func:`craft`); for each of
J fresh victims a benign and a poisoned model are trained with the same initial weights and
data-order seed (:func:`benign_victim`, :func:`evaluate_cell`; benign victims are shared by
every attack and grid point with the same victim data), each score is calibrated on the
victim's clean calibration set and the SPEC 3.3 figures are recorded. The engine
(:mod:`cpoison.engine`) decides which of these units run, where, and in which order.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from cpoison.attacks import AttackContext, PoisonSet, attack_label, build_attack
from cpoison.attacks.base_selection import largest_gradient_norm
from cpoison.attacks.goals import goal_eligibility, goal_kind, labels_to_add
from cpoison.conformal import SplitConformal, set_sizes
from cpoison.data.base import to_inputs
from cpoison.data.splits import evaluation_indices, select_targets
from cpoison.defenses import DefenseOutcome, build_defense
from cpoison.errors import ConfigError
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.defended import defense_facts
from cpoison.experiments.evaluation import (
    EvalViews,
    ModelEval,
    evaluate_victim,  # noqa: F401 (importable here)
)
from cpoison.experiments.metrics import victim_row
from cpoison.experiments.repeats import (
    poison_budget,
    repeat_seed,
    row_meta,
    victim_seeds,
    views_of,
)
from cpoison.experiments.settings import Victim, setting_for
from cpoison.experiments.settings.base import predictor_key
from cpoison.experiments.settings.scratch import (  # noqa: F401 (importable here)
    benign_data,
    surrogate_data,
)
from cpoison.experiments.surrogates import RepeatSurrogates
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator

log = logging.getLogger(__name__)


@dataclass
class RepeatSetup:
    """What one repeat fixes before crafting: target class, targets, bases, surrogate."""

    repeat: int
    seed: int
    target_class: int
    views: EvalViews
    context: AttackContext


def choose_bases(
    ws: Workspace, config: ExperimentConfig, target_class: int, seed: int,
    surrogate: torch.nn.Module | None = None, target_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Poison base ids (SPEC 2): ``budget * |victim train|`` images of the target class (or of
    random classes) from the attacker's data (black-box) or the victim's (white-box).

    ``poison_class='labels-to-add'`` (underconfidence) draws them from the classes in the
    targets' Y_a (SPEC 4.1: the goal's ``add_labels`` or the surrogate's ranks 2..m; for
    add-label, the label to add), so that training on them raises those labels' scores;
    ``'other'`` from every class but the target class. Unset in a config, the goal decides
    (each goal kind's ``poison_class``, :mod:`cpoison.attacks.goals`: unequal-coverage ``other``,
    add-label ``labels-to-add``, the others ``target``). ``poison_selection='nearest'`` (an option
    beside SPEC 2's random draw) takes, round robin over the targets, each target's nearest
    eligible image by cosine similarity of the surrogate's penultimate features
    (``'nearest-pixels'``: of the raw pixels; with labels-to-add: among the classes of that
    target's own Y_a). Both need ``surrogate`` and ``target_ids``. ``'gradient-norm'``: the
    eligible images with the largest training-gradient norm at the surrogate (SPEC 2)."""
    labels = ws.dataset.train_labels
    n_poisons, pool, owner = poison_budget(config, ws)
    nearest = config.poison_selection.startswith("nearest")
    needs_surrogate = nearest or config.poison_class == "labels-to-add"
    if needs_surrogate and (surrogate is None or target_ids is None):
        raise ValueError(f"poison_selection={config.poison_selection!r} with poison_class="
                         f"{config.poison_class!r} needs the surrogate and the targets")
    allowed = None  # [V, K] classes each target may take its bases from
    if config.poison_class == "target":
        pool = pool[labels[pool] == target_class]
    elif config.poison_class == "other":  # unequal coverage's default (SPEC 4.1)
        pool = pool[labels[pool] != target_class]
    elif config.poison_class == "labels-to-add":
        assert surrogate is not None and target_ids is not None
        allowed = labels_to_add(config.goal, ws.logits(surrogate, ws.dataset.test_images[
            target_ids]))
        allowed[:, target_class] = False
        pool = pool[allowed.any(0)[labels[pool]]]
    if n_poisons > pool.numel():
        raise ConfigError(
            f"budget {config.budget} needs {n_poisons} poisons but the {owner} pool has "
            f"only {pool.numel()} eligible images (poison_class={config.poison_class!r})"
        )
    if config.poison_selection == "gradient-norm":
        if surrogate is None:
            raise ValueError("poison_selection='gradient-norm' needs the surrogate")
        return largest_gradient_norm(surrogate, pool, ws.dataset.train_images, labels,
                                     n_poisons)
    if nearest:
        assert surrogate is not None and target_ids is not None
        pixels = config.poison_selection == "nearest-pixels"
        return nearest_bases(ws, surrogate, pool, target_ids, n_poisons, allowed, pixels)
    gen = make_generator(derive_seed(seed, "bases"))
    return pool[torch.randperm(pool.numel(), generator=gen)[:n_poisons]].sort().values


@torch.no_grad()
def nearest_bases(
    ws: Workspace, surrogate: torch.nn.Module, pool: torch.Tensor, target_ids: torch.Tensor,
    n_poisons: int, allowed: torch.Tensor | None = None, pixels: bool = False,
) -> torch.Tensor:
    """``n_poisons`` distinct pool ids: target 1's nearest image, target 2's, ..., then each
    target's second nearest, and so on (cosine similarity of surrogate features, or of the
    raw pixels with ``pixels``). With ``allowed`` (bool [V, K]) target v only takes images
    of the classes allowed[v]."""
    ds = ws.dataset

    def features(images: torch.Tensor) -> torch.Tensor:
        raw = (images.reshape(images.shape[0], -1).float() if pixels
               else ws.features(surrogate, images))
        return torch.nn.functional.normalize(raw, dim=1)

    similarity = features(ds.test_images[target_ids]) @ features(ds.train_images[pool]).T
    if allowed is not None:  # ineligible images rank last and are never taken
        eligible = allowed.cpu()[:, ds.train_labels[pool]]
        similarity = similarity.masked_fill(~eligible, float("-inf"))
    else:
        eligible = torch.ones_like(similarity, dtype=torch.bool)
    ranking = similarity.argsort(dim=1, descending=True)  # [V, |pool|]
    n_eligible = eligible.sum(1).tolist()
    taken = torch.zeros(pool.numel(), dtype=torch.bool)
    chosen: list[int] = []
    for rank, column in enumerate(ranking.T):  # rank r of every target, targets in order
        for v, j in enumerate(column.tolist()):
            if rank < n_eligible[v] and not taken[j]:
                taken[j] = True
                chosen.append(j)
                if len(chosen) == n_poisons:
                    return pool[torch.tensor(chosen)].sort().values
    return pool[torch.tensor(chosen)].sort().values


def target_eligibility(
    ws: Workspace, config: ExperimentConfig, surrogate: torch.nn.Module, seed: int,
) -> torch.Tensor | None:
    """Which test images may be targets (SPEC 4): those the surrogate classifies correctly
    (``targets.correct_only``) and, with ``targets.set_size``, whose surrogate prediction set
    (``targets.set_size_score`` calibrated on the attacker's calibration fold) has exactly
    that many labels (paper Fig. 4); ANDed with the goal's own rule
    (:func:`cpoison.attacks.goals.goal_eligibility`, SPEC 4.1: remove-label targets whose
    surrogate set holds the label, add-label targets whose set lacks it, from the same
    surrogate sets). ``None`` admits every image."""
    rule = config.targets
    by_goal = goal_kind(config.goal).target_rule
    sized = rule.set_size is not None or rule.min_set_size is not None
    if not rule.correct_only and not sized and not by_goal:
        return None
    ds = ws.dataset
    logits = ws.logits(surrogate, ds.test_images)
    eligible = torch.ones(logits.shape[0], dtype=torch.bool)
    if rule.correct_only:
        eligible &= logits.argmax(1) == ds.test_labels
    if sized or by_goal:
        cal = ws.split.attacker_cal
        gen = make_generator(derive_seed(seed, "target-sets"))
        predictor = SplitConformal(rule.set_size_score, config.alpha).calibrate(
            ws.logits(surrogate, ds.train_images[cal]), ds.train_labels[cal], generator=gen)
        sets = predictor.predict(logits, generator=gen)
        if rule.set_size is not None:
            eligible &= set_sizes(sets) == rule.set_size
        if rule.min_set_size is not None:
            eligible &= set_sizes(sets) >= rule.min_set_size
        goal_rule = goal_eligibility(config.goal, sets.cpu())
        if goal_rule is not None:
            eligible &= goal_rule
    return eligible


def _eligibility_rule(config: ExperimentConfig) -> str:
    parts = ["the surrogate classifies correctly"] if config.targets.correct_only else []
    if config.targets.min_set_size is not None:
        parts.append(f"have a surrogate {config.targets.set_size_score.upper()} set of at "
                     f"least {config.targets.min_set_size} labels")
    if config.targets.set_size is not None:
        parts.append(f"have a surrogate {config.targets.set_size_score.upper()} set of "
                     f"{config.targets.set_size} label(s)")
    by_goal = goal_kind(config.goal).eligibility_text(config.goal, config.targets.set_size_score)
    if by_goal is not None:
        parts.append(by_goal)
    return " and ".join(parts)


def repeat_target_class(config: ExperimentConfig, repeat: int, num_classes: int) -> int:
    """The configured target class, else the goal's (unequal coverage's subgroup,
    ``goal.target_class()``), else one drawn at random for this repeat, never one of
    ``targets.exclude_classes`` (e.g. the classes an attack was tuned on); add-label and
    remove-label never draw their own label (y*_v cannot be added nor removed)."""
    if config.targets.target_class is not None:
        return config.targets.target_class
    fixed = config.goal.target_class()
    if fixed is not None:
        return fixed
    gen = make_generator(derive_seed(repeat_seed(config, repeat), "target-class"))
    excluded = (goal_kind(config.goal).excluded_target_classes(config.goal)
                | set(config.targets.exclude_classes))
    if excluded:
        choices = [c for c in range(num_classes) if c not in excluded]
        if not choices:
            raise ConfigError(f"no target class is left to draw: classes {sorted(excluded)} "
                              f"are excluded of {num_classes}")
        return choices[int(torch.randint(len(choices), (1,), generator=gen))]
    return int(torch.randint(num_classes, (1,), generator=gen))


def train_surrogate(ws: Workspace, config: ExperimentConfig, repeat: int) -> torch.nn.Module:
    """Train (or load) the repeat's surrogate, as the config's training setting makes it
    (from scratch: the attacker's architecture on D^tr; transfer: the frozen extractor +
    the attacker's head)."""
    return setting_for(config).train_surrogate(ws, config, repeat)


def setup_repeat(ws: Workspace, config: ExperimentConfig, repeat: int,
                 surrogate: torch.nn.Module) -> RepeatSetup:
    """Targets, bases and the attack context of one repeat, on its trained surrogate."""
    ds, split = ws.dataset, ws.split
    seed = repeat_seed(config, repeat)
    target_class = repeat_target_class(config, repeat, ds.num_classes)
    eligible = target_eligibility(ws, config, surrogate, seed)
    targets, others = select_targets(ds.test_labels, target_class, config.targets.n_targets,
                                     seed, eligible, _eligibility_rule(config))
    views = EvalViews(targets, others, evaluation_indices(ds.test_labels.numel(), targets))
    base_ids = choose_bases(ws, config, target_class, seed, surrogate, targets)
    dev = ws.device

    def images(idx: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return to_inputs(source[idx]).to(dev)  # [0, 1] pixels, or features

    ctx = AttackContext(
        surrogate=surrogate,
        bases=images(base_ids, ds.train_images),
        base_labels=ds.train_labels[base_ids].to(dev),
        base_ids=base_ids,
        inject=config.setting == "black-box",
        cal_x=images(split.attacker_cal, ds.train_images),
        cal_y=ds.train_labels[split.attacker_cal].to(dev),
        target_x=images(targets, ds.test_images),
        target_y=ds.test_labels[targets].to(dev),
        train_x=ds.train_images[split.attacker_train],
        train_y=ds.train_labels[split.attacker_train],
        goal=config.goal, alpha=config.alpha, eps=config.eps, seed=seed, device=dev,
        progress=ws.progress, surrogate_epochs=ws.preset.recipe.epochs,
        surrogates=RepeatSurrogates(ws, surrogate, seed, config.surrogate),
        clip=ds.clip,
    )
    ctx = setting_for(config).adjust_context(ws, config, ctx, surrogate)
    return RepeatSetup(repeat, seed, target_class, views, ctx)


def craft(config: ExperimentConfig, attack_index: int, setup: RepeatSetup) -> PoisonSet:
    """Craft the poisons of attack ``attack_index`` for this repeat (timed); the set's meta
    records what the victims need to evaluate it (target class and targets)."""
    attack_config = config.attacks[attack_index]
    label = attack_label(attack_config)
    log.info("%s: crafting %d poisons", label, setup.context.base_ids.numel())
    start = time.perf_counter()
    poisons = build_attack(attack_config).craft(setup.context)
    poisons.meta.update(
        attack=label, craft_seconds=time.perf_counter() - start,
        config=attack_config.model_dump(mode="json"),
        target_class=setup.target_class, targets=setup.views.targets.tolist(),
        repeat=setup.repeat, repeat_seed=setup.seed,
    )
    return poisons


def benign_victim(ws: Workspace, config: ExperimentConfig, repeat: int,
                  victim: int) -> DefenseOutcome:
    """Train (or load) benign victim ``victim`` of the repeat, under the config's defense
    (``outcome.models[0]`` is the model when there is none; in the transfer setting the
    victim's head)."""
    return setting_for(config).fit_benign(ws, config, repeat, victim).outcome


BENIGN_EVALUATIONS_KEPT = 8
# benign victims' evaluations, shared by every attack and grid point of their repeat within
# this process (key: what determines the evaluation; a few entries)
_BENIGN_EVALUATIONS: OrderedDict[tuple[object, ...], tuple[Victim, ModelEval]] = OrderedDict()


def clear_caches() -> None:
    """Forget the benign victims' evaluations kept in this process."""
    _BENIGN_EVALUATIONS.clear()


def evaluated_benign(
    ws: Workspace, config: ExperimentConfig, repeat: int, victim: int, defense: Any,
    views: EvalViews, n_poisons: int = 0,
) -> tuple[Victim, ModelEval]:
    """Benign victim ``victim`` and its evaluation, computed once per process for every
    attack and grid point that shares it (the same victim, defense, conformal predictor,
    scores, alpha and targets): a filter defense is not run again, nor RSCP's noisy
    passes."""
    setting = setting_for(config)
    _, eval_seed = victim_seeds(config, repeat, victim)
    key = (str(ws.store.root), ws.device.type, setting.benign_key(ws, config, repeat, victim),
           repr(config.defense), repr(predictor_key(config)), tuple(config.scores),
           config.alpha, eval_seed,
           tuple(views.targets.tolist()),
           n_poisons if setting.benign_evaluation_needs_poisons() else None)
    cache = _BENIGN_EVALUATIONS
    if key not in cache:
        fit = setting.fit_benign(ws, config, repeat, victim)
        ev_views = setting.evaluation_views(config, views, eval_seed)
        cache[key] = (fit, setting.evaluate(ws, config, fit, ev_views, eval_seed, defense,
                                            n_poisons))
        while len(cache) > BENIGN_EVALUATIONS_KEPT:
            cache.popitem(last=False)
    return cache[key]


def evaluate_cell(
    ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int, victim: int,
    poisons: PoisonSet,
) -> list[dict[str, Any]]:
    """One cell, in every training setting: the benign victim and its poisoned twin (same
    initial weights and data order, same defense), evaluated with every score; one row per
    score (a score the defense cannot run, RSCP under RPS, gets a row marked
    ``unsupported`` without figures). What a victim is and how it is evaluated is the
    setting's (:mod:`cpoison.experiments.settings`)."""
    setting = setting_for(config)
    poisons.check_ids(ws.dataset.train_labels.numel())
    views = views_of(ws, poisons)
    _, eval_seed = victim_seeds(config, repeat, victim)
    label = attack_label(config.attacks[attack_index])
    defense = build_defense(config.defense)
    benign_fit, benign = evaluated_benign(ws, config, repeat, victim, defense, views,
                                          len(poisons))
    victim_fit = setting.fit_poisoned(ws, config, repeat, victim, poisons, benign_fit,
                                      f"{label} r{repeat} v{victim}")
    ev_views = setting.evaluation_views(config, views, eval_seed)
    poisoned = setting.evaluate(ws, config, victim_fit, ev_views, eval_seed, defense,
                                len(poisons))
    facts = setting.row_facts(config, benign_fit, victim_fit, poisons)
    rows = []
    for s in config.scores:
        row = row_meta(config, attack_index, poisons, views, repeat, victim, s)
        if s in poisoned.sets:
            row.update(victim_row(benign, poisoned, s, ev_views, ws.dataset.test_labels,
                                  ws.dataset.num_classes, goal=config.goal,
                                  target_class=int(poisons.meta["target_class"])))
        row.update(defense_facts(config, benign_fit.outcome, victim_fit.outcome, benign,
                                 poisoned, s, len(poisons)))
        row.update(facts)
        rows.append(row)
    log.info("%s r%d v%d (%s): %s", label, repeat, victim, setting.name, ", ".join(
        f"{r['score']} {r['benign_set_size']:.2f}->{r['victim_set_size']:.2f}"
        if "benign_set_size" in r else f"{r['score']} unsupported" for r in rows))
    return rows
