"""How far can *any* clean-label poisoning shrink the targets' sets in a given setting?

A diagnostic ceiling for overconfidence attacks: train victims on their clean data plus the
targets themselves (clean, with their true labels), added as many times as the poison
budget allows (``round(budget * |victim train| / V)`` copies of each of V targets;
``--copies`` overrides), which is what ideal clean-label poisons would emulate, and compare
the targets' mean set sizes with benign twins (same initial weights, data order and
calibration seeds: the protocol's victim pairs, so benign victims are shared with its runs
through the artifact store). Printed per score: the reduction ratio (benign - ceiling) /
benign of each victim, and its mean +/- standard error over victims. If even this barely
shrinks the sets, the victim recipe does not fit individual examples closely enough for a
poisoning attack on CP to show a large effect there.

The setting is the config's (dataset, preset, split, victim architecture, defense, alpha,
scores, target class and targets of repeat ``--repeat`` drawn as the protocol draws them,
on its surrogate), any dataset the engine runs: a registry dataset, or a user's ``.npz``
file or ImageFolder (``--data``, as ``cpoison audit`` takes it; ``--model`` and
``--preset`` as there). A config with a grid gives one ceiling per grid point.
``--targets-per-set 1,5,10,50`` shares the same budget among the first V targets of the
repeat, one ceiling per V (fewer targets: more copies each).

Usage:
  python benchmarks/attack_ceiling.py [--config configs/demo.yaml] [--victims 2]
  python benchmarks/attack_ceiling.py --data my_images/ [--model mlp] [--preset audit]
  options: --budget 0.02 --copies K --targets-per-set 1,5,10,50 --epochs N --store DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from cpoison.conformal import mean_size
from cpoison.defenses import build_defense
from cpoison.engine.artifacts import default_store
from cpoison.engine.grid import expand_grid
from cpoison.engine.runtime import RunOptions, workspace_for
from cpoison.errors import CpoisonError
from cpoison.experiments.config import ExperimentConfig, load_config, validate_config
from cpoison.experiments.defended import fit_victim
from cpoison.experiments.evaluation import evaluate_victim
from cpoison.experiments.protocol import (
    benign_victim,
    setup_repeat,
    train_surrogate,
    victim_seeds,
)
from cpoison.experiments.workspace import Workspace
from cpoison.training import TrainSet

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None,
                        help="experiment config (default configs/demo.yaml, or an audit's "
                             "with --data)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override key=value (repeatable)")
    parser.add_argument("--data", default=None,
                        help="a user's .npz file or ImageFolder folder, as cpoison audit "
                             "takes it (instead of --config)")
    parser.add_argument("--model", default="mlp",
                        help="with --data: registry name or package.module:function")
    parser.add_argument("--preset", default="audit", help="with --data: preset name")
    parser.add_argument("--target-class", type=int, default=None, help="with --data")
    parser.add_argument("--targets", type=int, default=50, help="with --data: targets")
    parser.add_argument("--alpha", type=float, default=0.1, help="with --data")
    parser.add_argument("--budget", type=float, default=None,
                        help="poison budget (share of the victim's training set); replaces "
                             "the config's budget and any budget grid")
    parser.add_argument("--victims", type=int, default=None,
                        help="victim pairs (default: the config's n_victims)")
    parser.add_argument("--repeat", type=int, default=0, help="which repeat's targets")
    parser.add_argument("--copies", type=int, default=None,
                        help="copies of each target (default: as many as the budget allows)")
    parser.add_argument("--targets-per-set", default=None,
                        help="comma list of V: the budget shared by the first V targets "
                             "(default: all the repeat's targets)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the preset's training epochs (tiny runs, tests)")
    parser.add_argument("--store", default=None,
                        help="artifact store (default $CPOISON_CACHE or ~/.cache/cpoison)")
    parser.add_argument("--no-cache", action="store_true",
                        help="train every model afresh in a temporary store")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default=None)
    return parser.parse_args(argv)


def dump(config: ExperimentConfig) -> dict:
    """``config`` as a raw mapping to validate again (as the engine's grid expands it)."""
    raw = config.model_dump(mode="json", exclude_none=True)
    if "poison_class" not in config.model_fields_set:
        raw.pop("poison_class", None)  # resolved from the goal
    return raw


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    if args.data is not None:
        from cpoison.experiments.audit import audit_config

        if args.config is not None:
            raise CpoisonError("give either --config or --data, not both")
        config = audit_config(args.data, args.model, preset=args.preset, alpha=args.alpha,
                              targets=args.targets, target_class=args.target_class,
                              victims=args.victims or 2, budgets=args.budget or 0.02)
        if args.overrides:
            from cpoison.experiments.config import apply_overrides

            raw = apply_overrides(dump(config), args.overrides)
            config = validate_config(raw, "--data config")
    else:
        config = load_config(args.config or str(ROOT / "configs" / "demo.yaml"),
                             args.overrides)
    if args.budget is not None:
        raw = dump(config)
        raw["budget"] = args.budget
        if "budget" in (raw.get("grid") or {}):
            del raw["grid"]["budget"]
        config = validate_config(raw, "--budget")
    return config


def workspace(args: argparse.Namespace, config: ExperimentConfig, store: str) -> Workspace:
    """The config's workspace (its dataset, preset and role split) as the engine opens it,
    with the preset's epochs replaced by ``--epochs``."""
    ws = workspace_for(RunOptions(store=store, data_root=args.data_root, device=args.device,
                                  progress=False), config)
    if args.epochs is not None:
        recipe = ws.preset.recipe.model_copy(update={"epochs": args.epochs})
        ws = dataclasses.replace(ws, preset=ws.preset.model_copy(update={"recipe": recipe}))
    return ws


def pm(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {statistics.stdev(values) / math.sqrt(len(values)):.3f}"


def ceiling(args: argparse.Namespace, config: ExperimentConfig, store: str,
            where: str) -> list[tuple[int, int, str, float, float, str]]:
    """Print the ceiling of one grid point; returns its summary rows."""
    if config.transfer is not None:
        raise CpoisonError("the transfer setting (frozen extractor + head) is not supported: "
                           "this ceiling trains whole victims")
    ws = workspace(args, config, store)
    n_victims = args.victims or config.n_victims
    surrogate = train_surrogate(ws, config, args.repeat)
    setup = setup_repeat(ws, config, args.repeat, surrogate)
    targets = setup.views.targets
    ds = ws.dataset
    n_pool, n_train = ds.train_labels.numel(), ws.split.victim_train.numel()
    n_budget = round(config.budget * n_train)
    sizes = ([int(v) for v in args.targets_per_set.split(",") if v.strip()]
             if args.targets_per_set else [targets.numel()])
    if any(v < 1 for v in sizes):
        raise CpoisonError("--targets-per-set: every V must be at least 1")
    sizes = list(dict.fromkeys(min(v, targets.numel()) for v in sizes))
    copies = {v: args.copies if args.copies is not None else max(1, round(n_budget / v))
              for v in sizes}
    # the test images follow the train pool in the training sets' image pool
    images = torch.cat([ds.train_images, ds.test_images])
    labels = torch.cat([ds.train_labels, ds.test_labels])
    clean_idx = ws.split.victim_train

    def oracle(v: int) -> TrainSet:
        extra = (targets[:v] + n_pool).repeat(copies[v])
        return TrainSet(images, labels, torch.cat([clean_idx, extra]),
                        n_clean=clean_idx.numel())

    name = ds.name if hasattr(ds, "name") else config.dataset
    print(f"\nattack ceiling: {name}/{config.preset}{where}, {config.setting}, "
          f"defense {config.defense.name}, alpha {config.alpha}, repeat {args.repeat}, "
          f"target class {setup.target_class}, {targets.numel()} targets")
    print(f"budget {config.budget:.1%} of {n_train} victim training images = {n_budget} "
          f"images; {n_victims} victim pair(s); epochs {ws.preset.recipe.epochs}")
    if config.goal.kind != "overconfidence":
        print(f"(the config's goal {config.goal.kind} is not used: this is the ceiling of "
              "overconfidence, the targets' sets shrinking)")
    defense = build_defense(config.defense)
    per: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    print(f"{'victim':>6} {'V':>4} {'copies':>6} {'score':>6} {'benign':>8} {'+targets':>9} "
          f"{'reduction':>10}")
    for j in range(n_victims):
        seed, eval_seed = victim_seeds(config, args.repeat, j)
        benign_fit = benign_victim(ws, config, args.repeat, j)
        benign = evaluate_victim(ws, defense, benign_fit.models, setup.views, config.scores,
                                 config.alpha, eval_seed)
        for v in sizes:
            fit = fit_victim(ws, config, oracle(v), seed,
                             desc=f"ceiling r{args.repeat} v{j} V{v} x{copies[v]}")
            ev = evaluate_victim(ws, defense, fit.models, setup.views, config.scores,
                                 config.alpha, eval_seed)
            for s in config.scores:
                if s not in benign.sets or s not in ev.sets:
                    continue  # a score the defense cannot run (RSCP under RPS)
                b = mean_size(benign.sets[s]["targets"][:v])
                o = mean_size(ev.sets[s]["targets"][:v])
                r = (b - o) / b if b > 0 else float("nan")
                per.setdefault((v, s), []).append((b, o, r))
                print(f"{j:>6} {v:>4} {copies[v]:>6} {s:>6} {b:>8.3f} {o:>9.3f} {r:>10.3f}")
    print(f"ceiling: targets' mean set size and reduction ratio, mean ± s.e. over "
          f"{n_victims} victim(s)")
    print(f"{'V':>4} {'copies':>6} {'added':>6} {'score':>6} {'benign':>14} "
          f"{'+targets':>14} {'reduction ratio':>16}")
    rows = []
    for (v, s), values in per.items():
        b, o, r = ([x[i] for x in values] for i in range(3))
        print(f"{v:>4} {copies[v]:>6} {v * copies[v]:>6} {s:>6} {pm(b):>14} {pm(o):>14} "
              f"{pm(r):>16}")
        rows.append((v, copies[v], s, statistics.fmean(b), statistics.fmean(o), pm(r)))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        config = build_config(args)
        with tempfile.TemporaryDirectory(prefix="cpoison-ceiling-") as tmp:
            store = tmp if args.no_cache else (args.store or default_store())
            points = expand_grid(config)
            for point in points:
                where = "".join(f", {k}={v}" for k, v in point.values.items())
                ceiling(args, point.config, store, where)
    except CpoisonError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
