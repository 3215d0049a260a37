"""Adversarial poisoning (Geiping et al. 2021a, "What Doesn't Kill You Makes You Robust(er):
How to Adversarially Train against Data Poisoning"; the ``adversarial-wb-recombine``
defense of their Witches' Brew code; SPEC 7).

For every (augmented) training batch of size ``B``:

1. split it in two halves (``sep-half``): the first ``B // 2`` examples are temporary
   *targets*, the rest are temporary *poisons*; the fake label of every target is the most
   frequent true label among the poison half (``labels.mode()``, as in the reference code);
2. craft ``delta`` for the poison half by ``steps`` (default 5) steps of gradient-alignment
   poisoning ("wb" = Witches' Brew): minimise ``1 - cos(G(delta), g)`` with
   ``G(delta) = grad_theta CE(f(x_p + delta), y_p)`` and ``g = grad_theta CE(f(x_t), fake)``
   (:mod:`cpoison.attacks.alignment`'s objective), the model in eval mode; signed Adam,
   random Gaussian start clipped to the eps-ball, projection onto ``||delta||_inf <= eps``
   (default 16/255) and ``[0, 1]`` after every step;
3. "recombine": train on the poisoned half with its *true* labels plus the target half
   with its true labels (one cross-entropy over the recombined batch).

The model thus learns to resist the kind of perturbation a poisoner would craft. As in the
reference code (``adaptive_attack=True``) the defense is active for clean and poisoned
training sets alike, so benign and poisoned victims train the same way.

Step size: the reference runs Adam with ``lr = tau = 0.1`` in normalised-input units
(CIFAR std ~ 0.25), i.e. about ``0.4 * eps`` in pixel units for eps = 16/255; here
``lr = step * eps`` with ``step = 0.4``. All random draws (start, nothing else) come from
the trainer's seeded augmentation generator.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from cpoison.attacks.alignment import objective_value, poison_gradient, signed_step
from cpoison.attacks.params import flat_grad, trainable
from cpoison.defenses.base import Defense, DefenseConfigBase, TrainingHooks


class AdversarialPoisoningConfig(DefenseConfigBase):
    """``defense: {name: adversarial_poisoning, steps: 5, eps: 0.0627}``."""

    name: Literal["adversarial_poisoning"] = "adversarial_poisoning"
    steps: int = Field(5, ge=1, description="alignment steps per batch (reference: 5)")
    eps: float = Field(16 / 255, gt=0, le=1, description="l_inf bound of the perturbation")
    step: float = Field(0.4, gt=0, description="signed-Adam learning rate in units of eps")


def craft_batch_poison(
    model: nn.Module,
    poisons: torch.Tensor,
    poison_labels: torch.Tensor,
    targets: torch.Tensor,
    fake_labels: torch.Tensor,
    eps: float,
    steps: int,
    lr: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float, float]:
    """``(delta, loss_before, loss_after)``: ``steps`` signed-Adam steps of gradient
    alignment of the poisons' training gradient with the targets' fake-label gradient.

    ``model`` should be in eval mode; its parameters receive no gradient. The losses are
    ``1 - cos(G, g)`` at the random start and at the returned delta."""
    params = trainable(model)
    direction = flat_grad(F.cross_entropy(model(targets), fake_labels), params).detach()
    noise = torch.randn(poisons.shape, generator=generator, device=generator.device)
    delta = (noise.to(poisons.device) * eps).clamp(-eps, eps)
    delta = ((poisons + delta).clamp(0, 1) - poisons).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr)

    def objective(d: torch.Tensor, create_graph: bool) -> torch.Tensor:
        g = poison_gradient(model, poisons + d, poison_labels, create_graph=create_graph)
        return objective_value(g, direction, "cosine", 1.0)

    before = float(objective(delta.detach(), False))
    for _ in range(steps):
        loss = objective(delta, True)
        (grad,) = torch.autograd.grad(loss, delta)
        opt.zero_grad(set_to_none=True)
        delta.grad = grad
        signed_step(opt, delta, poisons, eps)
    delta = delta.detach()
    return delta, before, float(objective(delta, False))


class AdversarialPoisoningHooks(TrainingHooks):
    """Per-run hooks: craft on half of each batch, train on the recombined batch.

    ``record`` keeps the largest ``|delta|_inf`` seen and the mean alignment loss before
    and after crafting (over all batches), so a run can be checked to have perturbed
    within eps."""

    def __init__(self, config: AdversarialPoisoningConfig) -> None:
        super().__init__()
        self.config = config
        self.max_abs_delta = 0.0
        self._before = self._after = 0.0
        self._batches = 0

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        x = self.augment(x, generator)
        half = x.shape[0] // 2
        if half == 0:  # a batch of one: nothing to split
            return F.cross_entropy(model(x), y)
        targets, poisons = x[:half], x[half:]
        target_labels, poison_labels = y[:half], y[half:]
        fake = poison_labels.mode().values.repeat(half)
        was_training = model.training
        model.eval()
        try:
            delta, before, after = craft_batch_poison(
                model, poisons, poison_labels, targets, fake, self.config.eps,
                self.config.steps, self.config.step * self.config.eps, generator)
        finally:
            model.train(was_training)
        self.max_abs_delta = max(self.max_abs_delta, float(delta.abs().max()))
        self._before += before
        self._after += after
        self._batches += 1
        self.record = {
            "adv_max_abs_delta": self.max_abs_delta,
            "adv_alignment_before": self._before / self._batches,
            "adv_alignment_after": self._after / self._batches,
        }
        inputs = torch.cat([poisons + delta, targets]).contiguous(memory_format=self.memory_format)
        return F.cross_entropy(model(inputs), torch.cat([poison_labels, target_labels]))


class AdversarialPoisoning(Defense):
    """Adversarial poisoning: a loss hook only (SPEC 7)."""

    name = "adversarial_poisoning"
    frozen_features = True

    def __init__(self, config: AdversarialPoisoningConfig) -> None:
        super().__init__(config)
        self.config: AdversarialPoisoningConfig = config

    def training_hooks(self) -> AdversarialPoisoningHooks:
        return AdversarialPoisoningHooks(self.config)
