"""Adversarial poisoning (SPEC 7): perturbs within eps, improves alignment, and trains."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from defense_helpers import accuracy, make_train_fn

from cpoison.data.base import ImageDataset
from cpoison.defenses import build_defense
from cpoison.defenses.adversarial import AdversarialPoisoningHooks, craft_batch_poison
from cpoison.training import Recipe, TrainSet, build_seeded_model, train_model


def test_craft_stays_in_eps_and_lowers_the_alignment_loss(digits: ImageDataset) -> None:
    model = build_seeded_model("mlp", 1, 10, 8, 0, hidden=32)
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(400))
    model = train_model(model, data, Recipe(epochs=3, batch_size=64, lr=0.05), 0,
                        progress=False).eval()
    x, y = data.load(torch.arange(64))
    targets, poisons, poison_labels = x[:32], x[32:], y[32:]
    fake = poison_labels.mode().values.repeat(32)
    eps = 16 / 255
    before_after = []
    grads = [p.grad.clone() for p in model.parameters()]  # left by the last training step
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        delta, before, after = craft_batch_poison(model, poisons, poison_labels, targets, fake,
                                                  eps, steps=5, lr=0.4 * eps, generator=gen)
        assert float(delta.abs().max()) <= eps + 1e-6
        assert float(delta.abs().max()) > 0.5 * eps  # it does perturb
        assert bool(((poisons + delta) >= 0).all() and ((poisons + delta) <= 1).all())
        assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
        before_after.append((before, after))
    assert all(after < before for before, after in before_after)


def test_training_with_adversarial_poisoning(digits: ImageDataset) -> None:
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(600))
    defense = build_defense({"name": "adversarial_poisoning", "steps": 2})
    seen: list[AdversarialPoisoningHooks] = []
    base_fn = make_train_fn()

    def train_fn(d: TrainSet, seed: int, hooks: object) -> torch.nn.Module:
        assert isinstance(hooks, AdversarialPoisoningHooks)
        seen.append(hooks)
        return base_fn(d, seed, hooks)

    outcome = defense.fit(data, train_fn, seed=0)
    rec = outcome.record
    assert 0 < rec["adv_max_abs_delta"] <= 16 / 255 + 1e-6
    assert rec["adv_alignment_after"] < rec["adv_alignment_before"]
    assert accuracy(outcome.models[0], digits) > 0.7
    plain = base_fn(data, 0, None)
    assert not torch.equal(plain.head.weight, outcome.models[0].head.weight)


def test_batch_of_one_is_plain_cross_entropy(digits: ImageDataset) -> None:
    hooks = AdversarialPoisoningHooks(build_defense("adversarial_poisoning").config)  # type: ignore[arg-type]
    model = build_seeded_model("mlp", 1, 10, 8, 0, hidden=8)
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(4))
    recipe = Recipe(crop_padding=0, flip=False)
    hooks.begin(model, data, recipe, 0, torch.device("cpu"), torch.contiguous_format)
    x, y = data.load(torch.arange(1))
    loss = hooks.loss(model, x, y, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))
