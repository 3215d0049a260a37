"""The conformal baseline (issue 'platform', SPEC 3): train a model on the victim training
set, calibrate every score on the victim calibration set, and measure coverage and set size
on the test set at level alpha."""

from __future__ import annotations

import platform
import time
from typing import Any

import torch

from cpoison.conformal import RSCP, RSCPConformal, SplitConformal, build_score, summarize
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator
from cpoison.version import __version__

DEFAULT_SCORES = ("hps", "aps", "raps")


def environment() -> dict[str, Any]:
    """Software and hardware that produced the numbers (SPEC 6)."""
    info: dict[str, Any] = {
        "cpoison": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def run_cp_baseline(
    ws: Workspace, alpha: float = 0.1, seed: int = 0, scores: tuple[str, ...] = DEFAULT_SCORES,
    rscp: bool = True,
) -> dict[str, Any]:
    """Train (or load) the victim model and report split-CP metrics for every score."""
    start = time.perf_counter()
    ds = ws.dataset
    model = ws.train(ws.trainset(ws.split.victim_train), seed, desc="victim")
    cal_x, cal_y = ds.train_images[ws.split.victim_cal], ds.train_labels[ws.split.victim_cal]
    cal_logits = ws.logits(model, cal_x)
    test_logits = ws.logits(model, ds.test_images)
    accuracy = float((test_logits.argmax(1) == ds.test_labels).float().mean())
    rows: dict[str, Any] = {}
    for name in scores:
        gen = make_generator(derive_seed(seed, "cp", name))
        cp = SplitConformal(build_score(name), alpha).calibrate(cal_logits, cal_y, generator=gen)
        sets = cp.predict(test_logits, generator=gen)
        rows[name] = {"threshold": float(cp.threshold),
                      **summarize(sets, ds.test_labels, ds.num_classes)}
    if rscp:
        smoother = RSCP(n_samples=ws.preset.rscp_samples)
        gen = make_generator(derive_seed(seed, "cp", "rscp"), ws.device)
        rcp = RSCPConformal(smoother, alpha)
        rcp.calibrate(model, cal_x.float().div(255), cal_y, generator=gen)
        sets = rcp.predict(model, ds.test_images.float().div(255), generator=gen)
        rows["rscp"] = {"threshold": float(rcp.threshold),
                        **summarize(sets, ds.test_labels, ds.num_classes)}
    return {
        "dataset": ds.name, "model": ws.preset.model, "alpha": alpha, "seed": seed,
        "n_calibration": int(ws.split.victim_cal.numel()),
        "n_test": int(ds.test_labels.numel()), "accuracy": accuracy, "scores": rows,
        "seconds": time.perf_counter() - start, "environment": environment(),
    }
