"""The engine's executors on one small grid (SPEC 11): the same digits grid run by the local
executor and by the Ray executor (a local Ray), each from an empty artifact store, printing
both wall times, their ratio and the engine's own overhead per cell (wall time minus the
time spent training models and crafting, over the number of cells).

Usage: python benchmarks/engine.py [--victims 4] [--cpus 2] [--executors local,ray]
       [--iterations 20]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--victims", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--executors", default="local,ray",
                        help="comma list of executors to time (local, ray)")
    parser.add_argument("--iterations", type=int, default=20, help="crafting iterations")
    args = parser.parse_args(argv)
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    if not executors or any(e not in ("local", "ray") for e in executors):
        parser.error(f"--executors: choose from local, ray; got {args.executors!r}")
    raw = copy.deepcopy(GRID)
    raw["n_victims"] = args.victims
    raw["attacks"][0]["crafting"]["iterations"] = args.iterations
    config = validate_config(raw)
    n_cells = 2 * 2 * args.victims
    results = {}
    for executor in executors:
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
    print(f"grid: 2 budgets x 2 attacks x {args.victims} victims = {n_cells} cells, "
          f"{next(iter(results.values()))[1]} models trained")
    if "local" in results:
        local_wall, _, local_train, local_craft = results["local"]
        overhead = (local_wall - local_train - local_craft) / n_cells
        print(f"local executor: {local_wall:8.2f} s  (training {local_train:.2f} s, crafting "
              f"{local_craft:.2f} s)")
    if "ray" in results:
        print(f"ray executor:   {results['ray'][0]:8.2f} s  (local Ray, {args.cpus} CPUs, "
              "1 thread per task)")
    if len(results) == 2:
        print(f"ray / local:    {results['ray'][0] / results['local'][0]:8.2f}")
    if "local" in results:
        print(f"engine overhead per cell (local, wall - training - crafting): {overhead:.3f} s")


if __name__ == "__main__":
    main()
