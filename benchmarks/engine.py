"""The engine's executors on one small grid (SPEC 11): the same digits grid run by the local
executor and by the Ray executor (a local Ray), each from an empty artifact store, printing
both wall times, their ratio and the engine's own overhead per cell (wall time minus the
time spent training models and crafting, over the number of cells).

Usage: python benchmarks/engine.py [--victims 4] [--cpus 2]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from cpoison.experiments.config import validate_config
from cpoison.experiments.runner import run_experiment
from cpoison.experiments.workspace import Workspace

GRID = {
    "name": "engine-benchmark", "dataset": "digits", "preset": "cpu", "seed": 0,
    "alpha": 0.1, "scores": ["hps", "aps"], "goal": {"kind": "overconfidence"},
    "targets": {"target_class": 3, "n_targets": 10}, "eps": "16/255", "n_repeats": 1,
    "attacks": [{"name": "ours", "crafting": {"iterations": 20, "restarts": 1}},
                {"name": "randun"}],
    "grid": {"budget": [0.02, 0.05]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--victims", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()
    raw = copy.deepcopy(GRID)
    raw["n_victims"] = args.victims
    config = validate_config(raw)
    n_cells = 2 * 2 * args.victims
    results = {}
    for executor in ("local", "ray"):
        with tempfile.TemporaryDirectory() as tmp:
            train_time = [0.0]
            original = Workspace.train

            def timed(self, *a, _orig=original, _acc=train_time, **k):
                start = time.perf_counter()
                try:
                    return _orig(self, *a, **k)
                finally:
                    _acc[0] += time.perf_counter() - start

            Workspace.train = timed  # type: ignore[method-assign]
            torch.set_num_threads(1)
            start = time.perf_counter()
            summary = run_experiment(
                config, Path(tmp) / "out", store=Path(tmp) / "store", progress=False,
                threads=1, executor=executor,
                executor_options={"num_cpus": args.cpus} if executor == "ray" else None)
            wall = time.perf_counter() - start
            Workspace.train = original  # type: ignore[method-assign]
            crafting = sum(r["craft_seconds"] or 0 for r in summary["rows"]
                           if r["score"] == "hps")
            results[executor] = (wall, summary["trained_models"], train_time[0], crafting)
    local_wall, trained, local_train, local_craft = results["local"]
    ray_wall = results["ray"][0]
    overhead = (local_wall - local_train - local_craft) / n_cells
    print(f"grid: 2 budgets x 2 attacks x {args.victims} victims = {n_cells} cells, "
          f"{trained} models trained")
    print(f"local executor: {local_wall:8.2f} s  (training {local_train:.2f} s, crafting "
          f"{local_craft:.2f} s)")
    print(f"ray executor:   {ray_wall:8.2f} s  (local Ray, {args.cpus} CPUs, 1 thread per task)")
    print(f"ray / local:    {ray_wall / local_wall:8.2f}")
    print(f"engine overhead per cell (local, wall - training - crafting): {overhead:.3f} s")


if __name__ == "__main__":
    main()
