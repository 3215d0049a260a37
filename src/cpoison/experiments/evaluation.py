"""Conformal evaluation of one victim model (SPEC 6 step 4): calibrate every score on the
victim's clean calibration set, then predict sets for the targets, the other test images of
the target class, and the evaluation set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from cpoison.conformal import RSCP, RSCPConformal, SplitConformal, build_score
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator


@dataclass
class EvalViews:
    """Indices into the test set of the three evaluated groups (SPEC 2, 6)."""

    targets: torch.Tensor
    others: torch.Tensor  # other test images of the target class
    evaluation: torch.Tensor  # test set minus targets


@dataclass
class ModelEval:
    """Sets per score and group, plus the argmax labels of every test image."""

    sets: dict[str, dict[str, torch.Tensor]]  # score -> group -> bool [N, K]
    predictions: torch.Tensor  # argmax over the whole test set
    accuracy: float


def evaluate_model(
    ws: Workspace, model: nn.Module, views: EvalViews, scores: tuple[str, ...],
    alpha: float, seed: int,
) -> ModelEval:
    """Sets of every score for every group; ``seed`` fixes the randomness of randomized
    scores and RSCP noise, so a benign and a poisoned victim with the same seed are paired."""
    ds, split = ws.dataset, ws.split
    cal_x, cal_y = ds.train_images[split.victim_cal], ds.train_labels[split.victim_cal]
    cal_logits = ws.logits(model, cal_x)
    test_logits = ws.logits(model, ds.test_images)
    groups = {"targets": views.targets, "others": views.others, "evaluation": views.evaluation}
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name in scores:
        gen = make_generator(derive_seed(seed, "eval", name), ws.device if name == "rscp"
                             else "cpu")
        if name == "rscp":
            cp = RSCPConformal(RSCP(n_samples=ws.preset.rscp_samples), alpha)
            cp.calibrate(model, cal_x.float().div(255).to(ws.device), cal_y, generator=gen)
            all_sets = cp.predict(model, ds.test_images.float().div(255).to(ws.device),
                                  generator=gen).cpu()
        else:
            cp = SplitConformal(build_score(name), alpha).calibrate(cal_logits, cal_y, gen)
            all_sets = cp.predict(test_logits, generator=gen)
        out[name] = {g: all_sets[idx] for g, idx in groups.items()}
    preds = test_logits.argmax(1)
    return ModelEval(out, preds, float((preds == ds.test_labels).float().mean()))
