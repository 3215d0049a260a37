"""The seam (SPEC 7): default hooks reproduce plain training; fit / subset / shares."""

from __future__ import annotations

import torch
from defense_helpers import RECIPE, make_train_fn, states_equal

from cpoison.data.base import ImageDataset
from cpoison.defenses import TrainingHooks, build_defense, removal_shares, subset
from cpoison.training import Recipe, TrainSet, build_seeded_model, train_model


def _data(ds: ImageDataset, n: int = 300) -> TrainSet:
    return TrainSet(ds.train_images, ds.train_labels, torch.arange(n))


def test_default_hooks_give_bit_identical_weights(digits: ImageDataset) -> None:
    """With crop and flip on, TrainingHooks() must draw the same augmentation."""
    recipe = Recipe(epochs=2, batch_size=64, lr=0.1, crop_padding=1, flip=True)
    data = _data(digits)

    def run(hooks: TrainingHooks | None) -> torch.nn.Module:
        model = build_seeded_model("mlp", 1, 10, 8, 7, hidden=32)
        return train_model(model, data, recipe, 7, progress=False, hooks=hooks)

    assert states_equal(run(None), run(TrainingHooks()))


def test_none_defense_fit_is_plain_training(digits: ImageDataset) -> None:
    data = _data(digits)
    train_fn = make_train_fn()
    outcome = build_defense("none").fit(data, train_fn, seed=3)
    assert len(outcome.models) == 1 and outcome.removed.numel() == 0
    assert states_equal(outcome.models[0], train_fn(data, 3, None))
    assert outcome.record["clean_removed_share"] == 0.0
    assert outcome.record["poisons_removed_share"] is None
    logits = build_defense("none").logits(outcome.models, digits.test_images)
    assert logits.shape == (digits.test_images.shape[0], 10)


def test_subset_keeps_poisons_and_the_clean_prefix(digits: ImageDataset) -> None:
    ids = torch.arange(500, 510)
    delta = torch.full((10, 1, 8, 8), 0.02)
    data = _data(digits, 100).with_poisons(ids, delta, inject=True)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[torch.tensor([0, 5, 100, 101])] = False
    kept = subset(data, keep)
    assert len(kept) == 106 and kept.n_clean == 98
    x_full, _ = data.load(torch.tensor([102]))
    x_kept, _ = kept.load(torch.tensor([98]))
    assert torch.equal(x_full, x_kept)  # the poison perturbation is still applied
    shares = removal_shares(data, data.indices[~keep])
    assert shares["poisons_removed"] == 2 and shares["poisons_total"] == 10
    assert shares["poisons_removed_share"] == 0.2
    assert shares["clean_removed"] == 2 and shares["clean_removed_share"] == 0.02


def test_recipe_in_conftest_trains(digits: ImageDataset) -> None:
    from defense_helpers import accuracy
    model = make_train_fn()(_data(digits, 600), 0, None)
    assert accuracy(model, digits) > 0.8
    assert RECIPE.epochs == 8
