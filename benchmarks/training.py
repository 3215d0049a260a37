"""Benchmark: victim training throughput (images/s) and achieved GFLOP/s on this machine.

One training step is forward + backward + SGD step (lr 0.01, momentum 0.9, weight decay
5e-4, the SPEC 6 victim recipe) on a fixed random batch of 128 images in [0, 1], after
warm-up steps. The FLOPs of one step are counted once with
:class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward and
backward; element-wise ops, BatchNorm and the optimiser update are not counted, so the
achieved GFLOP/s is a slight underestimate). The machine's fp32 matmul peak is measured in the
same run with 2048 x 2048 matmuls, and the table gives the achieved fraction of it. It is a
reference, not a hard ceiling: convolutions run through oneDNN's JIT kernels and matmuls
through MKL, and on some CPUs (e.g. AMD EPYC, where MKL's sgemm does not use its fastest
path) large convolutions beat the matmul figure, so the fraction can exceed 100 %.

Models: ``convnet`` (width 12 and 16, 1 x 28 x 28, the CPU preset's victim) and ``resnet18``
(width 64, 3 x 32 x 32, the paper-scale victim; only a few steps, it is slow on a CPU).

Each model runs in the NHWC ``channels_last`` memory format (what
:func:`cpoison.training.train_model` uses by default, ``Recipe.channels_last``) and in the
plain contiguous NCHW format, unless ``--formats`` picks one.

Usage: ``python benchmarks/training.py [--steps 20] [--resnet-steps 3] [--warmup 3]
[--threads N] [--device cpu|cuda] [--formats channels_last,contiguous] [--matmul-size 2048]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cpoison.models import build_model

BATCH = 128


@dataclass
class Case:
    label: str
    arch: str
    channels: int
    size: int
    kwargs: dict
    steps: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of n x n matmuls (2 n^3 flops each), best of a few timed rounds."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32, not TF32
    a @ b  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best / 1e9


def step_fn(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def bench(case: Case, device: torch.device, warmup: int, fmt: str) -> dict[str, float]:
    memory_format = FORMATS[fmt]
    model = build_model(case.arch, case.channels, 10, case.size, seed=0, **case.kwargs)
    model.to(device=device, memory_format=memory_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, case.channels, case.size, case.size, generator=gen).to(device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(device)
    step = step_fn(model, opt, x, y)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(case.steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / case.steps
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "gflop_step": flops / 1e9, "ms_step": seconds * 1e3,
            "img_s": BATCH / seconds, "gflops": flops / seconds / 1e9}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per convnet")
    parser.add_argument("--resnet-steps", type=int, default=3, help="timed resnet18 steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="n of the n x n matmuls that measure the fp32 peak")
    parser.add_argument("--formats", default="channels_last,contiguous",
                        help="comma-separated memory formats: channels_last, contiguous")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        parser.error(f"--formats: choose from {', '.join(FORMATS)}, got {args.formats!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = [
        Case("convnet w12 1x28x28", "convnet", 1, 28, {"width": 12}, args.steps),
        Case("convnet w16 1x28x28", "convnet", 1, 28, {"width": 16}, args.steps),
    ]
    if not args.skip_resnet:
        cases.append(Case("resnet18 3x32x32", "resnet18", 3, 32, {}, args.resnet_steps))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"device {device}, {torch.get_num_threads()} threads, batch {BATCH}")
    n = args.matmul_size
    peak = matmul_gflops(device, n)
    print(f"fp32 matmul {n}x{n}: {peak:.1f} GFLOP/s")
    header = (f"{'model':<22}{'format':>15}{'params':>12}{'GFLOP/step':>12}{'ms/step':>10}"
              f"{'img/s':>10}{'GFLOP/s':>10}{'% matmul':>10}")
    print(header)
    print("-" * len(header))
    for case in cases:
        for fmt in formats:
            r = bench(case, device, args.warmup, fmt)
            print(f"{case.label:<22}{fmt:>15}{r['params']:>12,}{r['gflop_step']:>12.3f}"
                  f"{r['ms_step']:>10.1f}{r['img_s']:>10.0f}{r['gflops']:>10.1f}"
                  f"{100 * r['gflops'] / peak:>9.1f}%")
    peak_after = matmul_gflops(device, n)
    print(f"fp32 matmul again after the runs: {peak_after:.1f} GFLOP/s "
          "(a large change means the machine was busy)")


if __name__ == "__main__":
    main()
