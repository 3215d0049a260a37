"""How far can *any* clean-label poisoning shrink the targets' sets in a given setting?

A diagnostic ceiling for overconfidence attacks: train victims on their clean data plus the
targets themselves (true labels, ``--copies`` times), which is what ideal clean-label poisons
would emulate, and compare the targets' mean set sizes with benign victims (same seeds,
paired data order). If even this barely shrinks the sets, the victim recipe does not fit
individual examples closely enough for a poisoning attack on CP to show a large effect.

Usage: python benchmarks/attack_ceiling.py [--config configs/demo.yaml] [--victims 2]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from cpoison.conformal import mean_size
from cpoison.experiments.config import load_config
from cpoison.experiments.evaluation import evaluate_model
from cpoison.experiments.presets import get_preset
from cpoison.experiments.protocol import setup_repeat
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed
from cpoison.training import TrainSet

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--victims", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config, args.overrides)
    ws = Workspace.open(get_preset(cfg.dataset, cfg.preset), seed=cfg.seed,
                        setting=cfg.setting, progress=False)
    setup = setup_repeat(ws, cfg, 0)
    ds, n_pool = ws.dataset, ws.dataset.train_labels.numel()
    pool = torch.cat([ds.train_images, ds.test_images])
    labels = torch.cat([ds.train_labels, ds.test_labels])
    extra = (setup.views.targets + n_pool).repeat(args.copies)
    clean_idx = ws.split.victim_train
    clean = TrainSet(pool, labels, clean_idx)
    oracle = TrainSet(pool, labels, torch.cat([clean_idx, extra]), n_clean=clean_idx.numel())
    print(f"{cfg.dataset}/{cfg.preset}, class {setup.target_class}, "
          f"{setup.views.targets.numel()} targets x {args.copies} copies added to training")
    print(f"{'victim':>6} {'score':>6} {'benign':>8} {'+targets':>9} {'reduction':>10}")
    for j in range(args.victims):
        seed = derive_seed(setup.seed, "victim", j)
        evals = [evaluate_model(ws, ws.train(data, seed), setup.views, cfg.scores, cfg.alpha,
                                derive_seed(setup.seed, "eval", j)) for data in (clean, oracle)]
        for s in cfg.scores:
            b, o = (mean_size(e.sets[s]["targets"]) for e in evals)
            print(f"{j:>6} {s:>6} {b:>8.3f} {o:>9.3f} {(b - o) / b:>10.3f}")


if __name__ == "__main__":
    main()
