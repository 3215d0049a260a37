"""The evaluation protocol of the paper (Sec. 5, SPEC 6).

For each repeat: train (or load) the surrogate on D^tr, pick the target class and targets,
craft every attack's poisons (timed; saved as safetensors), then for each of J fresh victims
train a benign and a poisoned model with the same initial weights and data-order seed
(benign victims are cached and shared by all attacks of the repeat), calibrate every score
on the victim's clean calibration set and record the SPEC 3.3 figures. Finished victims are
in the SQLite store; a re-run skips them and loads the saved poisons.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cpoison.attacks import (
    AttackContext,
    PoisonSet,
    attack_label,
    build_attack,
)
from cpoison.attacks.goals import labels_to_add
from cpoison.attacks.registry import objective_facts
from cpoison.conformal import SplitConformal, set_sizes
from cpoison.data.splits import evaluation_indices, select_targets
from cpoison.errors import ConfigError
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.evaluation import EvalViews, ModelEval, evaluate_model
from cpoison.experiments.metrics import victim_row
from cpoison.experiments.store import ResultStore
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
    targets' Y_a (SPEC 4.1: the goal's ``add_labels`` or the surrogate's ranks 2..m), so that
    training on them raises those labels' scores. ``poison_selection='nearest'`` (an option
    beside SPEC 2's random draw) takes, round robin over the targets, each target's nearest
    eligible image by cosine similarity of the surrogate's penultimate features
    (``'nearest-pixels'``: of the raw pixels; with labels-to-add: among the classes of that
    target's own Y_a). Both need ``surrogate`` and ``target_ids``."""
    split, labels = ws.split, ws.dataset.train_labels
    pool = split.attacker_train if config.setting == "black-box" else split.victim_train
    n_poisons = round(config.budget * split.victim_train.numel())
    if n_poisons < 1:
        raise ConfigError(f"budget {config.budget} gives no poison for "
                          f"{split.victim_train.numel()} victim training images")
    nearest = config.poison_selection.startswith("nearest")
    needs_surrogate = nearest or config.poison_class == "labels-to-add"
    if needs_surrogate and (surrogate is None or target_ids is None):
        raise ValueError(f"poison_selection={config.poison_selection!r} with poison_class="
                         f"{config.poison_class!r} needs the surrogate and the targets")
    allowed = None  # [V, K] classes each target may take its bases from
    if config.poison_class == "target":
        pool = pool[labels[pool] == target_class]
    elif config.poison_class == "labels-to-add":
        assert surrogate is not None and target_ids is not None
        allowed = labels_to_add(config.goal, ws.logits(surrogate, ws.dataset.test_images[
            target_ids]))
        allowed[:, target_class] = False
        pool = pool[allowed.any(0)[labels[pool]]]
    if n_poisons > pool.numel():
        raise ConfigError(
            f"budget {config.budget} needs {n_poisons} poisons but the "
            f"{'attacker' if config.setting == 'black-box' else 'victim'} pool has only "
            f"{pool.numel()} eligible images (poison_class={config.poison_class!r})"
        )
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
    that many labels (paper Fig. 4). ``None`` admits every image."""
    rule = config.targets
    if not rule.correct_only and rule.set_size is None:
        return None
    ds = ws.dataset
    logits = ws.logits(surrogate, ds.test_images)
    eligible = torch.ones(logits.shape[0], dtype=torch.bool)
    if rule.correct_only:
        eligible &= logits.argmax(1) == ds.test_labels
    if rule.set_size is not None:
        cal = ws.split.attacker_cal
        gen = make_generator(derive_seed(seed, "target-sets"))
        predictor = SplitConformal(rule.set_size_score, config.alpha).calibrate(
            ws.logits(surrogate, ds.train_images[cal]), ds.train_labels[cal], generator=gen)
        eligible &= set_sizes(predictor.predict(logits, generator=gen)) == rule.set_size
    return eligible


def _eligibility_rule(config: ExperimentConfig) -> str:
    parts = ["the surrogate classifies correctly"] if config.targets.correct_only else []
    if config.targets.set_size is not None:
        parts.append(f"have a surrogate {config.targets.set_size_score.upper()} set of "
                     f"{config.targets.set_size} label(s)")
    return " and ".join(parts)


def setup_repeat(ws: Workspace, config: ExperimentConfig, repeat: int) -> RepeatSetup:
    ds, split = ws.dataset, ws.split
    seed = derive_seed(config.seed, "repeat", repeat)
    target_class = config.targets.target_class
    if target_class is None:
        gen = make_generator(derive_seed(seed, "target-class"))
        target_class = int(torch.randint(ds.num_classes, (1,), generator=gen))
    if target_class >= ds.num_classes:
        raise ConfigError(f"targets.target_class {target_class} is not a class of {ds.name} "
                          f"(0..{ds.num_classes - 1})")
    wrong = [y for y in config.goal.add_labels or () if not 0 <= y < ds.num_classes]
    if wrong:
        raise ConfigError(f"goal.add_labels {wrong} are not classes of {ds.name} "
                          f"(0..{ds.num_classes - 1})")
    surrogate = ws.train(ws.trainset(split.attacker_train), derive_seed(seed, "surrogate"),
                         desc=f"surrogate r{repeat}", arch=config.surrogate_model)
    eligible = target_eligibility(ws, config, surrogate, seed)
    targets, others = select_targets(ds.test_labels, target_class, config.targets.n_targets,
                                     seed, eligible, _eligibility_rule(config))
    views = EvalViews(targets, others, evaluation_indices(ds.test_labels.numel(), targets))
    base_ids = choose_bases(ws, config, target_class, seed, surrogate, targets)
    dev = ws.device

    def images(idx: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return source[idx].to(dev).float().div(255)

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
    )
    return RepeatSetup(repeat, seed, target_class, views, ctx)


def craft_or_load(
    attack_config: Any, setup: RepeatSetup, out: Path
) -> PoisonSet:
    """Load this repeat's poisons for the attack from ``out/poisons`` or craft and save them."""
    label = attack_label(attack_config)
    path = out / "poisons" / f"r{setup.repeat}-{label}.safetensors"
    if path.exists():
        log.info("%s: loading poisons from %s", label, path)
        return PoisonSet.load(path)
    log.info("%s: crafting %d poisons", label, setup.context.base_ids.numel())
    start = time.perf_counter()
    poisons = build_attack(attack_config).craft(setup.context)
    poisons.meta["craft_seconds"] = time.perf_counter() - start
    poisons.meta["config"] = attack_config.model_dump()
    poisons.meta["target_class"] = setup.target_class
    poisons.save(path)
    return poisons


def row_meta(config: ExperimentConfig, attack_config: Any, setup: RepeatSetup,
             poisons: PoisonSet, victim: int, score: str) -> dict[str, Any]:
    loss, order, craft_score = objective_facts(attack_config)
    return {
        "repeat": setup.repeat, "attack": attack_label(attack_config), "victim": victim,
        "score": score, "goal": config.goal.kind, "setting": config.setting,
        "target_class": setup.target_class, "budget": config.budget, "eps": config.eps,
        "loss": loss, "order": order, "craft_score": craft_score,
        "n_poisons": len(poisons), "n_targets": int(setup.views.targets.numel()),
        "craft_seconds": poisons.meta.get("craft_seconds"),
    }


def run_protocol(ws: Workspace, config: ExperimentConfig, out: Path,
                 store: ResultStore) -> None:
    """Run (or resume) every repeat, attack and victim of ``config`` into ``store``."""
    labels = config.labels()
    scores = list(config.scores)
    for repeat in range(config.n_repeats):
        if all(store.has(repeat, lab, j, scores)
               for lab in labels for j in range(config.n_victims)):
            log.info("repeat %d: all victims done", repeat)
            continue
        setup = setup_repeat(ws, config, repeat)
        poisons = {attack_label(a): craft_or_load(a, setup, out) for a in config.attacks}
        clean = ws.trainset(ws.split.victim_train)
        for j in range(config.n_victims):
            todo = [a for a in config.attacks
                    if not store.has(repeat, attack_label(a), j, scores)]
            if not todo:
                continue
            vseed = derive_seed(setup.seed, "victim", j)
            eval_seed = derive_seed(setup.seed, "eval", j)
            benign_model = ws.train(clean, vseed, desc=f"benign r{repeat} v{j}",
                                    arch=config.victim_model)
            benign = evaluate_model(ws, benign_model, setup.views, config.scores, config.alpha,
                                    eval_seed)
            for attack_config in todo:
                label = attack_label(attack_config)
                p = poisons[label]
                data = clean.with_poisons(p.ids, p.delta, inject=p.inject)
                model = ws.train(data, vseed, desc=f"{label} r{repeat} v{j}",
                                 arch=config.victim_model)
                victim: ModelEval = evaluate_model(ws, model, setup.views, config.scores,
                                                   config.alpha, eval_seed)
                rows = {
                    s: {**row_meta(config, attack_config, setup, p, j, s),
                        **victim_row(benign, victim, s, setup.views, ws.dataset.test_labels)}
                    for s in scores
                }
                store.add_victim(repeat, label, j, rows)
                log.info("%s r%d v%d: %s", label, repeat, j, ", ".join(
                    f"{s} {rows[s]['benign_set_size']:.2f}->{rows[s]['victim_set_size']:.2f}"
                    for s in scores))
