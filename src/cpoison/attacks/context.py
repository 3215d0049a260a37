"""What an attack is given (SPEC 2): the surrogate, the poison bases, the attacker's
calibration fold, the targets and the attacker's training fold (for curvature)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from cpoison.attacks.goals import Goal


@dataclass
class AttackContext:
    """Tensors are float images in [0, 1] on ``device`` unless noted.

    ``base_ids`` index the train pool; ``inject`` is True in black-box (bases are attacker
    images added to the victim's data) and False in white-box (in-place replacement, where
    the clean bases' gradient is subtracted in G(delta), SPEC 5.1).
    """

    surrogate: nn.Module
    bases: torch.Tensor
    base_labels: torch.Tensor
    base_ids: torch.Tensor
    inject: bool
    cal_x: torch.Tensor
    cal_y: torch.Tensor
    target_x: torch.Tensor
    target_y: torch.Tensor
    train_x: torch.Tensor  # attacker training fold (uint8 or float), for the Hessian
    train_y: torch.Tensor
    goal: Goal
    alpha: float
    eps: float
    seed: int
    device: torch.device
    progress: bool = True
    surrogate_epochs: int | None = None  # length of the surrogate's training run
    # transfer setting (SPEC 5.2): the exact Hessian [P, P] of the surrogate head's
    # per-point penalised training loss in trainable-parameter (flat_grad) order; when set,
    # the second-order update solves with it by Cholesky instead of CG on HVPs
    exact_hessian: Callable[[], torch.Tensor] | None = None
    # transfer setting: cpoison.transfer.attack.TransferAttackData (the extractor, D^tr's
    # features, the head's penalty) for the implicit-gradient attack; None otherwise
    transfer: Any = None
    # the attacker's model factory (cpoison.attacks.surrogates.SurrogatePool) for ensembles,
    # retraining while crafting and validation selection (SPEC 5.4); None where the setting
    # cannot train attacker models
    surrogates: Any = None
    # the range perturbed inputs are clipped to: (0, 1) for images, None (no clipping) for
    # feature vectors (tabular data)
    clip: tuple[float, float] | None = (0.0, 1.0)

    @property
    def num_classes(self) -> int:
        return int(self.surrogate.head.out_features) if hasattr(self.surrogate, "head") else 0
