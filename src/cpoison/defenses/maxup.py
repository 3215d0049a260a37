"""MaxUp (Gong et al., CVPR 2021, "MaxUp: Lightweight Adversarial Training with Data
Augmentation Improves Neural Network Training"; SPEC 7).

For every training example, ``m`` augmented copies are drawn; the loss of the example is the
*maximum* of the cross-entropy over its own copies, and the batch loss is the mean of these
per-example maxima:

    L = (1 / B) sum_b max_{i <= m} CE(f(aug_i(x_b)), y_b).

The maximum is taken per sample, over one sample's augmentations, never across different
samples (SPEC 10 lists the reshape bug that does the latter; :func:`maxup_reduce` documents
the layout and ``tests/defenses`` checks it). Copies are the recipe's standard augmentation
(random crop with zero padding and horizontal flip, :mod:`cpoison.training.augment`), each
drawn independently from the trainer's seeded generator, plus optional Gaussian pixel noise
(``noise`` standard deviation, images clipped to [0, 1]).

Settings: ``m = 4`` as in SPEC 7 and in the Witches' Brew evaluation of MaxUp against
poisoning (Geiping et al. 2021a, "Maxup-Cutout", 4 trials). Gong et al. use CutMix /
Gaussian perturbations as the augmentation family; crop / flip plus noise (default
``noise = 8/255``) is this package's choice, so MaxUp differs from plain training even
where crop and flip are switched off.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from cpoison.defenses.base import Defense, DefenseConfigBase, TrainingHooks


class MaxUpConfig(DefenseConfigBase):
    """``defense: {name: maxup, m: 4, noise: 0.031}``."""

    name: Literal["maxup"] = "maxup"
    m: int = Field(4, ge=1, description="augmented copies per sample (Gong et al.: m = 4)")
    noise: float = Field(8 / 255, ge=0, le=1,
                         description="std of Gaussian pixel noise added to each copy (0: none)")


def maxup_reduce(losses: torch.Tensor) -> torch.Tensor:
    """MaxUp's batch loss from per-copy losses ``[m, B]`` (copy-major: row ``i`` holds copy
    ``i`` of every sample): mean over samples of the max over each sample's own copies."""
    if losses.dim() != 2:
        raise ValueError(f"losses must have shape [m, B], got {tuple(losses.shape)}")
    return losses.max(dim=0).values.mean()


class MaxUpHooks(TrainingHooks):
    """Per-run hooks: the MaxUp loss; the training set is never changed."""

    def __init__(self, config: MaxUpConfig) -> None:
        super().__init__()
        self.config = config

    def copies(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[m * B, C, H, W]``, copy-major: ``m`` independent augmentations of the batch."""
        out = []
        for _ in range(self.config.m):
            c = self.augment(x, generator)
            if self.config.noise > 0:
                noise = torch.randn(c.shape, generator=generator, device=generator.device)
                c = (c + self.config.noise * noise.to(c.device)).clamp_(0.0, 1.0)
            out.append(c)
        return torch.cat(out).contiguous(memory_format=self.memory_format)

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        xs = self.copies(x, generator)
        per_copy = F.cross_entropy(model(xs), y.repeat(self.config.m), reduction="none")
        return maxup_reduce(per_copy.view(self.config.m, y.shape[0]))


class MaxUp(Defense):
    """MaxUp: a loss hook only (SPEC 7)."""

    name = "maxup"
    frozen_features = True

    def __init__(self, config: MaxUpConfig) -> None:
        super().__init__(config)
        self.config: MaxUpConfig = config

    def training_hooks(self) -> MaxUpHooks:
        return MaxUpHooks(self.config)
