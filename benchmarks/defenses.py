"""Training-time overhead of every defense (SPEC 7) as a ratio to plain training.

A small digits MLP (or a small ConvNet with ``--arch convnet``) trains on the scikit-learn
digits training set with 2 % injected random-noise poisons (eps 16/255) under each defense,
through the same ``Defense.fit`` and ``Defense.adapt`` calls the engine makes; the wall
time of both (filters include their feature model, RPS its k_t models, the head refit its
cross-validated refit on the calibration digits: the first 150 test digits; calibration
and prediction are not timed) is divided by the time of plain training with the same
recipe and seed. The median of ``--repeats`` runs is reported, with the accuracy on the
other test digits as a sanity check.

Usage: OMP_NUM_THREADS=1 python benchmarks/defenses.py [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cpoison.data.digits import load_digits
from cpoison.defenses import available_defenses, build_defense
from cpoison.defenses.base import TrainingHooks
from cpoison.training import Recipe, TrainSet, build_seeded_model, train_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="mlp", choices=["mlp", "convnet"])
    parser.add_argument("--only", nargs="*", default=None, help="defense names to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_digits(seed=0)
    n = ds.train_images.shape[0]
    n_poison = int(0.02 * n)
    gen = torch.Generator().manual_seed(0)
    delta = (torch.rand(n_poison, 1, 8, 8, generator=gen) * 2 - 1) * (16 / 255)
    poison_ids = torch.arange(n - n_poison, n)
    data = TrainSet(ds.train_images, ds.train_labels,
                    torch.arange(n - n_poison)).with_poisons(poison_ids, delta, inject=True)
    recipe = Recipe(epochs=args.epochs, batch_size=128, lr=0.1, crop_padding=1, flip=False)
    kwargs = {"hidden": 128} if args.arch == "mlp" else {"width": 16}

    def train_fn(d: TrainSet, seed: int, hooks: TrainingHooks | None) -> torch.nn.Module:
        model = build_seeded_model(args.arch, 1, 10, 8, seed, **kwargs)
        return train_model(model, d, recipe, seed, progress=False, hooks=hooks)

    cal_x, cal_y = ds.test_images[:150], ds.test_labels[:150]
    test_x, test_y = ds.test_images[150:], ds.test_labels[150:]

    def timed(name: str) -> tuple[float, float]:
        defense = build_defense(name)
        times, acc = [], 0.0
        for r in range(args.repeats):
            start = time.perf_counter()
            outcome = defense.fit(data, train_fn, seed=r)
            adapted = defense.adapt(outcome.models, cal_x, cal_y, seed=r)
            times.append(time.perf_counter() - start)
            pred = defense.logits(adapted.models, test_x).argmax(1)
            acc = float((pred == test_y).float().mean())
        return statistics.median(times), acc

    build_defense("none").fit(data, train_fn, seed=0)  # warm-up (allocator, kernels)
    base, base_acc = timed("none")
    names = args.only or [d for d in available_defenses() if d != "none"]
    print(f"digits {args.arch}, {len(data)} training points ({n_poison} poisons), "
          f"{args.epochs} epochs, median of {args.repeats}, torch threads 1")
    print(f"{'defense':<24}{'seconds':>10}{'ratio':>8}{'test acc':>10}")
    print(f"{'none':<24}{base:>10.3f}{1.0:>8.2f}{base_acc:>10.3f}")
    for name in names:
        seconds, acc = timed(name)
        print(f"{name:<24}{seconds:>10.3f}{seconds / base:>8.2f}{acc:>10.3f}")


if __name__ == "__main__":
    main()
