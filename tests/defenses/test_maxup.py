"""MaxUp (SPEC 7): the max is taken per sample, over that sample's own copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from defense_helpers import accuracy, make_train_fn

from cpoison.data.base import ImageDataset
from cpoison.defenses import build_defense
from cpoison.defenses.maxup import MaxUpHooks, maxup_reduce
from cpoison.training import Recipe, TrainSet, build_seeded_model


def _buggy_across_samples(losses: torch.Tensor) -> torch.Tensor:
    """SPEC 10's known bug: copy-major losses reshaped as [B, m], so each "max" runs over
    consecutive entries, i.e. over different samples."""
    m, b = losses.shape
    return losses.reshape(b, m).max(dim=1).values.mean()


def test_reduce_is_per_sample_max_then_mean() -> None:
    # m = 2 copies (rows) of B = 3 samples (columns). Per sample: max(1, 5), max(0, 6),
    # max(2, 3) -> mean 14/3. The reshape bug pairs (1, 0), (2, 5), (6, 3) -> mean 4.
    losses = torch.tensor([[1.0, 0.0, 2.0],
                           [5.0, 6.0, 3.0]])
    per_sample = torch.tensor([5.0, 6.0, 3.0]).mean()
    assert maxup_reduce(losses) == per_sample
    assert _buggy_across_samples(losses) == 4.0  # so the check below discriminates the bug
    assert _buggy_across_samples(losses) != maxup_reduce(losses)
    assert losses.max(dim=1).values.mean() != maxup_reduce(losses)  # max over the batch
    with pytest.raises(ValueError, match=r"\[m, B\]"):
        maxup_reduce(losses.flatten())


def test_hook_loss_is_the_per_sample_max_over_its_copies(digits: ImageDataset) -> None:
    recipe = Recipe(epochs=1, batch_size=16, crop_padding=1, flip=True)
    hooks = MaxUpHooks(build_defense("maxup").config)  # type: ignore[arg-type]
    model = build_seeded_model("mlp", 1, 10, 8, 0, hidden=16)
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(16))
    hooks.begin(model, data, recipe, 0, torch.device("cpu"), torch.contiguous_format)
    x, y = data.load(torch.arange(16))
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    loss = hooks.loss(model, x, y, gen)
    gen.set_state(state)  # replay the same draws
    copies = hooks.copies(x, gen).view(4, 16, 1, 8, 8)
    assert not torch.equal(copies[0], copies[1])  # copies are different augmentations
    per_copy = torch.stack([F.cross_entropy(model(c), y, reduction="none") for c in copies])
    expected = per_copy.max(dim=0).values.mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, _buggy_across_samples(per_copy))
    assert loss >= per_copy.mean(dim=0).mean()  # max over copies >= their mean


def test_maxup_trains(digits: ImageDataset) -> None:
    data = TrainSet(digits.train_images, digits.train_labels, torch.arange(600))
    outcome = build_defense({"name": "maxup", "m": 2}).fit(data, make_train_fn(), seed=0)
    assert accuracy(outcome.models[0], digits) > 0.7
