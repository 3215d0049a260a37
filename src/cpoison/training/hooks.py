"""The trainer's extension point (:class:`TrainingHooks`): what one training run does with
each raw batch and after each epoch. Its defaults are plain training, so the training step
is written once; a defense (:mod:`cpoison.defenses`) overrides the part it changes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpoison.training.augment import augment
from cpoison.training.recipe import Recipe
from cpoison.training.trainset import TrainSet

__all__ = ["TrainingHooks"]


class TrainingHooks:
    """Per-training-run hooks that :func:`cpoison.training.trainer.train_model` calls: the
    trainer's extension point, and its plain training step (the defaults), written once.

    One object serves one training run (it may keep state, e.g. EPIC's dropped points); a
    :class:`Defense` makes a fresh one per run in :meth:`Defense.training_hooks`. The
    trainer calls, in this order:

    1. :meth:`begin` once, before the first epoch;
    2. :meth:`loss` for every batch, with the *raw* batch as loaded (poisons applied, not
       augmented) and the trainer's seeded augmentation generator; the trainer then runs
       ``zero_grad``, ``backward`` and the optimiser step on the returned scalar;
    3. :meth:`after_epoch` after each epoch (after the scheduler step); its return value is
       the training set of the following epochs.

    The defaults *are* plain training (standard augmentation, then mean cross-entropy in
    fp32): ``train_model`` without hooks trains with ``TrainingHooks()``. Defenses
    (:mod:`cpoison.defenses`) override :meth:`loss` (MaxUp, adversarial poisoning) or
    :meth:`after_epoch` (EPIC).
    """

    def __init__(self) -> None:
        self.recipe: Recipe | None = None
        self.seed: int = 0
        self.device: torch.device = torch.device("cpu")
        self.memory_format: torch.memory_format = torch.contiguous_format
        #: pool ids removed during training (EPIC); empty for loss-only hooks
        self.removed: torch.Tensor = torch.empty(0, dtype=torch.long)
        #: JSON-able facts about the run (counts, statistics) merged into the outcome record
        self.record: dict[str, Any] = {}

    def begin(
        self, model: nn.Module, data: TrainSet, recipe: Recipe, seed: int,
        device: torch.device, memory_format: torch.memory_format,
    ) -> None:
        """Called once before training; stores the run's context."""
        self.recipe, self.seed, self.device = recipe, seed, device
        self.memory_format = memory_format

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The recipe's standard augmentation (SPEC 6), exactly as the trainer applies it;
        feature vectors ``[B, D]`` are never augmented."""
        assert self.recipe is not None, "begin() was not called"
        if x.dim() != 4:
            return x
        out = augment(x, self.recipe.crop_padding, self.recipe.flip, generator)
        return out.contiguous(memory_format=self.memory_format)

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The training loss of one raw batch (default: augment, then mean cross-entropy)."""
        return F.cross_entropy(model(self.augment(x, generator)).float(), y)

    def after_epoch(self, epoch: int, model: nn.Module, data: TrainSet) -> TrainSet:
        """Called after epoch ``epoch`` (0-based); returns the training set from now on."""
        return data
