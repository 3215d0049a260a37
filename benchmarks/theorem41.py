"""Theorem 4.1 measured on the convex head (paper Sec. 4; cpoison.transfer.theorem).

For the L2-penalised logistic head on digits features of a small pretrained MLP extractor:
the gap J~(theta_k) - J~(theta_u) between the poisoned training loss at the first-order
(Eq. 11, tau = 1 / L_1) and second-order (Eq. 17) closed-form parameters and at the actually
refitted head, as eps (L2 norm of each feature perturbation, in units of the mean feature
norm) and the number of poisons vary. Prints the table and whether the gaps shrink with both.

Usage: python benchmarks/theorem41.py [--lam 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpoison.transfer.theorem import theorem41_table  # noqa: E402
from transfer_setup import digits_features  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    setup = digits_features(args.seed)
    x, y = setup.train_features.double(), setup.train_labels
    scale = float(x.norm(dim=1).mean())
    rel_eps = [0.01, 0.03, 0.1, 0.3, 1.0]
    counts = [1, 4, 16, 64]
    rows = theorem41_table(x, y, 10, [e * scale for e in rel_eps], counts, args.lam, args.seed)
    print(f"digits features: n = {x.shape[0]}, D = {x.shape[1]}, K = 10, lam = {args.lam}, "
          f"mean feature norm = {scale:.3f}")
    print(f"{'eps/|f|':>8} {'poisons':>7} {'gap 1st':>11} {'gap 2nd':>11} {'|th1-thu|':>10} "
          f"{'|th2-thu|':>10} {'|thu-th*|':>10}")
    for r in rows:
        print(f"{r.eps / scale:8.2f} {r.n_poisons:7d} {r.gap_first:11.3e} {r.gap_second:11.3e} "
              f"{r.err_first:10.3e} {r.err_second:10.3e} {r.shift:10.3e}")
    grid = {(round(r.eps / scale, 6), r.n_poisons): r for r in rows}

    def shrinks(attr: str) -> tuple[bool, bool]:
        by_eps = all(getattr(grid[(a, p)], attr) <= getattr(grid[(b, p)], attr) + 1e-12
                     for p in counts for a, b in zip(rel_eps, rel_eps[1:]))
        by_p = all(getattr(grid[(e, a)], attr) <= getattr(grid[(e, b)], attr) + 1e-12
                   for e in rel_eps for a, b in zip(counts, counts[1:]))
        return by_eps, by_p

    for attr, name in (("gap_first", "first-order"), ("gap_second", "second-order")):
        by_eps, by_p = shrinks(attr)
        print(f"{name} gap shrinks as eps decreases (every poison count): {by_eps}; "
              f"as the number of poisons decreases (every eps): {by_p}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
