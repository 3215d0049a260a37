"""Seeded SGD training with a progress bar (SPEC 6 victim recipe).

The same recipe, data and seed give bit-identical weights on CPU: the data order and the
augmentation draw from one ``torch.Generator`` seeded from ``seed``; initial weights come
from :func:`build_seeded_model`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from cpoison.models import build_model
from cpoison.seeding import derive_seed, make_generator
from cpoison.training.hooks import TrainingHooks
from cpoison.training.precision import resolve_precision
from cpoison.training.recipe import Recipe
from cpoison.training.trainset import TrainSet

log = logging.getLogger(__name__)

TRAINER_VERSION = 2  # part of every model key: bump when training changes its numbers


def build_seeded_model(
    arch: str, in_channels: int, num_classes: int, image_size: int, seed: int, **kwargs: object
) -> nn.Module:
    """Build ``arch`` with initial weights drawn from ``seed`` (global RNG state restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        return build_model(arch, in_channels, num_classes, image_size, **kwargs)


def train_model(
    model: nn.Module,
    data: TrainSet,
    recipe: Recipe,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "train",
    hooks: TrainingHooks | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``data`` with ``recipe``; returns it in eval mode.

    ``hooks`` (:class:`cpoison.training.hooks.TrainingHooks`, the defenses' seam): for every
    raw batch ``hooks.loss(model, x, y, aug_gen)`` gives the loss, and after each epoch
    ``hooks.after_epoch(epoch, model, data)`` the training set of the next (EPIC). ``None``
    (default) is ``TrainingHooks()``: plain training (augmentation + cross-entropy)."""
    device = torch.device(device)
    images = data.images.dim() == 4  # feature vectors [N, D] have no memory format
    fmt = torch.channels_last if recipe.channels_last and images else torch.contiguous_format
    model.to(device=device, memory_format=fmt).train()
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=recipe.milestone_epochs(), gamma=recipe.gamma
    )
    order_gen = make_generator(derive_seed(seed, "order"))
    extra_gen = make_generator(derive_seed(seed, "order-extra"))
    aug_gen = make_generator(derive_seed(seed, "augment"), device)
    bf16 = resolve_precision(recipe.precision, device) == "bf16"
    n = len(data)
    steps_per_epoch = (n + recipe.batch_size - 1) // recipe.batch_size
    hooks = hooks if hooks is not None else TrainingHooks()
    hooks.begin(model, data, recipe, seed, device, fmt)
    bar = tqdm(
        total=recipe.epochs * steps_per_epoch, desc=desc, disable=not progress, leave=False,
        unit="batch",
    )
    for epoch in range(recipe.epochs):
        perm = data.epoch_order(order_gen, extra_gen)
        n = len(data)
        total, count = 0.0, 0
        for start in range(0, n, recipe.batch_size):
            x, y = data.load(perm[start : start + recipe.batch_size], device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = hooks.loss(model, x, y, aug_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * y.numel()
            count += y.numel()
            bar.update(1)
        sched.step()
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
        data = hooks.after_epoch(epoch, model, data)
        model.train()
    bar.close()
    return model.to(memory_format=torch.contiguous_format).eval()


def has_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` holds a 2-d convolution (and so profits from channels_last)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Logits [N, K] (on CPU) of ``model`` in eval mode on uint8 or float ``images``.

    Convolutional models run in NHWC (channels_last) memory format, and batches of 256 keep
    the activations in cache: together 1.5-5x faster on CPU than NCHW batches of 1024
    (profile of the demo); the model is handed back in its usual format."""
    return _batched(model, model, images, device, batch_size)


@torch.no_grad()
def predict_features(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Penultimate features [N, F] (on CPU) of ``model.features``, batched as
    :func:`predict_logits`."""
    return _batched(model, model.features, images, device, batch_size)  # type: ignore[arg-type]


def _batched(
    model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
    device: torch.device | str, batch_size: int,
) -> torch.Tensor:
    model.eval()
    fmt = torch.channels_last if has_convolutions(model) else torch.contiguous_format
    model.to(memory_format=fmt)
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            if x.dim() == 4:
                x = x.contiguous(memory_format=fmt)
            out.append(forward(x).float().cpu())
    finally:
        model.to(memory_format=torch.contiguous_format)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)
