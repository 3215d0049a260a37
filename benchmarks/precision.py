"""Victim training time under fp32 and bf16 autocast, on the demo's real victims.

Trains the ``fashion-mnist/cpu-full`` preset's victim (2x512 MLP, 24,300 victim training
images, batch 128, the preset's recipe) for ``--epochs`` epochs in each precision and
thread count, alternating the order over ``--rounds`` rounds, and prints seconds per epoch
and the implied time of one 40-epoch victim. Nothing is stored.

Usage: python benchmarks/precision.py [--epochs 2] [--rounds 2] [--threads 1,2]
       [--dataset fashion-mnist --preset cpu-full]  (another preset's victims, e.g. digits cpu)
"""

from __future__ import annotations

import argparse
import time

import torch

from cpoison.experiments.presets import get_preset
from cpoison.experiments.workspace import Workspace
from cpoison.training import train_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--preset", default="cpu-full")
    args = parser.parse_args(argv)
    preset = get_preset(args.dataset, args.preset)
    ws = Workspace.open(preset, seed=0, progress=False, use_cache=False)
    data = ws.trainset(ws.split.victim_train)
    times: dict[tuple[int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            order = ("fp32", "bf16") if round_ % 2 == 0 else ("bf16", "fp32")
            for precision in order:
                recipe = preset.recipe.model_copy(
                    update={"epochs": args.epochs, "precision": precision})
                start = time.perf_counter()
                train_model(ws.build(0), data, recipe, 0, "cpu", progress=False)
                seconds = (time.perf_counter() - start) / args.epochs
                times.setdefault((threads, precision), []).append(seconds)
    print(f"{args.dataset}/{args.preset} victims ({preset.model}), {len(data)} training images, "
          f"{args.epochs} epoch(s) per timing")
    print(f"{'threads':>7} {'precision':>9} {'s/epoch (best)':>15} {'40-epoch victim s':>18}")
    for (threads, precision), values in sorted(times.items()):
        best = min(values)
        print(f"{threads:>7} {precision:>9} {best:>15.3f} {40 * best:>18.1f}")
    for threads in sorted({t for t, _ in times}):
        ratio = min(times[(threads, "fp32")]) / min(times[(threads, "bf16")])
        print(f"bf16 speed-up on {threads} thread(s): {ratio:.2f}x")


if __name__ == "__main__":
    main()
