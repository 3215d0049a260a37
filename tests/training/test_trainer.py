"""Seeded training: bit-identical weights on CPU for one seed, learning on digits."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpoison.data.base import ImageDataset
from cpoison.training import Recipe, TrainSet, build_seeded_model, predict_logits, train_model

# Crop and flip on, so the augmentation generator is part of what must be reproducible.
RECIPE = Recipe(epochs=2, batch_size=64, lr=0.1, crop_padding=1, flip=True, milestones=(0.5,))
N_TRAIN = 400


def _build(seed: int) -> nn.Module:
    return build_seeded_model("mlp", 1, 10, 8, seed, hidden=32)


def _train(data: TrainSet, seed: int, recipe: Recipe = RECIPE) -> nn.Module:
    return train_model(_build(seed), data, recipe, seed, progress=False)


def _clean(ds: ImageDataset, n: int = N_TRAIN) -> TrainSet:
    return TrainSet(ds.train_images, ds.train_labels, torch.arange(n))


def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _accuracy(model: nn.Module, ds: ImageDataset) -> float:
    return float((predict_logits(model, ds.test_images).argmax(1) == ds.test_labels).float().mean())


def test_build_seeded_model_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b, c = _build(0), _build(0), _build(1)
    assert torch.equal(torch.get_rng_state(), state)
    assert _states_equal(a, b)
    assert not _states_equal(a, c)


def test_same_seed_gives_bit_identical_weights(digits: ImageDataset) -> None:
    data = _clean(digits)
    a, b = _train(data, seed=3), _train(data, seed=3)
    assert not _states_equal(a, _build(3))  # training did change the weights
    assert _states_equal(a, b)


def test_same_seed_is_bit_identical_with_injected_poisons(digits: ImageDataset) -> None:
    gen = torch.Generator().manual_seed(0)
    ids = torch.arange(N_TRAIN, N_TRAIN + 20)
    delta = (torch.rand(20, 1, 8, 8, generator=gen) - 0.5) * (32 / 255)
    data = _clean(digits).with_poisons(ids, delta, inject=True)
    assert _states_equal(_train(data, seed=5), _train(data, seed=5))


def test_different_seed_gives_different_weights(digits: ImageDataset) -> None:
    data = _clean(digits)
    assert not _states_equal(_train(data, seed=0), _train(data, seed=1))


def test_global_rng_does_not_matter(digits: ImageDataset) -> None:
    data = _clean(digits)
    torch.manual_seed(1)
    a = _train(data, seed=2)
    torch.manual_seed(999)
    b = _train(data, seed=2)
    assert _states_equal(a, b)


def test_zero_delta_in_place_poisons_train_like_the_clean_set(digits: ImageDataset) -> None:
    """White-box replacement with delta = 0 must not change anything (same data, same order)."""
    clean = _clean(digits)
    ids = torch.tensor([3, 50, 200])
    zero = clean.with_poisons(ids, torch.zeros(3, 1, 8, 8), inject=False)
    assert _states_equal(_train(clean, seed=4), _train(zero, seed=4))
    # ... while a real perturbation of those images does change the trained weights
    moved = clean.with_poisons(ids, torch.full((3, 1, 8, 8), 0.2), inject=False)
    assert not _states_equal(_train(clean, seed=4), _train(moved, seed=4))


def test_training_lowers_loss_and_beats_chance(digits: ImageDataset) -> None:
    recipe = Recipe(epochs=3, batch_size=32, lr=0.1, crop_padding=0, flip=False)
    data = _clean(digits, 1500)
    x, y = data.load(torch.arange(len(data)))
    untrained = _build(0).eval()
    with torch.no_grad():
        loss_before = float(F.cross_entropy(untrained(x), y))
    model = _train(data, seed=0, recipe=recipe)
    assert not model.training  # returned in eval mode
    with torch.no_grad():
        loss_after = float(F.cross_entropy(model(x), y))
    assert loss_after < 0.5 * loss_before
    assert _accuracy(untrained, digits) < 0.3
    assert _accuracy(model, digits) > 0.8  # chance is 0.1


def test_milestones_decay_the_learning_rate(digits: ImageDataset) -> None:
    """gamma scales the lr from the milestone on: with gamma tiny, the epochs after the
    milestone barely move the weights, so the result is close to stopping at the milestone."""
    data = _clean(digits)
    base = dict(batch_size=64, lr=0.1, crop_padding=0, flip=False)
    one = _train(data, 0, Recipe(epochs=1, **base))
    frozen = _train(data, 0, Recipe(epochs=2, milestones=(0.5,), gamma=1e-6, **base))
    full = _train(data, 0, Recipe(epochs=2, milestones=(0.5,), gamma=1.0, **base))

    def dist(a: nn.Module, b: nn.Module) -> float:
        sa, sb = a.state_dict(), b.state_dict()
        return sum(float((sa[k] - sb[k]).norm()) for k in sa)

    assert dist(one, frozen) < 0.05 * dist(one, full)


def test_predict_logits_scales_uint8_and_batches(digits: ImageDataset) -> None:
    model = _build(0).eval()
    images = digits.test_images[:50]
    ref = predict_logits(model, images.float() / 255)
    got = predict_logits(model, images, batch_size=7)
    assert got.shape == (50, 10)
    torch.testing.assert_close(got, ref)
    assert predict_logits(model, images[:0]).numel() == 0
