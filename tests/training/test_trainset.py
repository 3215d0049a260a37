"""TrainSet: poisons (ids, delta) applied on load, clean pool untouched, paired epoch order."""

from __future__ import annotations

import pytest
import torch

from cpoison.errors import CpoisonError
from cpoison.training import TrainSet

POOL = 30


def _pool(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (POOL, 1, 4, 4), generator=gen, dtype=torch.uint8)
    labels = torch.arange(POOL) % 5
    return images, labels


def _gens(seed: int, extra_seed: int | None = None) -> tuple[torch.Generator, torch.Generator]:
    extra = seed + 1000 if extra_seed is None else extra_seed
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(extra)


def test_clean_load_scales_to_unit_interval() -> None:
    images, labels = _pool()
    ts = TrainSet(images, labels, torch.arange(10, 20))
    x, y = ts.load(torch.tensor([0, 9, 4]))
    assert x.dtype == torch.float32 and x.shape == (3, 1, 4, 4)
    torch.testing.assert_close(x, images[[10, 19, 14]].float() / 255)
    assert y.tolist() == labels[[10, 19, 14]].tolist()


def test_poisons_are_added_on_load_and_the_pool_is_untouched() -> None:
    images, labels = _pool()
    images_before, labels_before = images.clone(), labels.clone()
    ids = torch.tensor([3, 7])
    delta = torch.tensor([0.1, -0.05]).view(2, 1, 1, 1).expand(2, 1, 4, 4).clone()
    delta_before = delta.clone()
    ts = TrainSet(images, labels, torch.arange(10)).with_poisons(ids, delta, inject=False)

    x, y = ts.load(torch.arange(10))
    clean = images[:10].float() / 255
    expected = clean.clone()
    expected[3] = (clean[3] + 0.1).clamp(0, 1)
    expected[7] = (clean[7] - 0.05).clamp(0, 1)
    torch.testing.assert_close(x, expected)
    assert not torch.equal(x[3], clean[3]) and torch.equal(x[0], clean[0])
    assert y.tolist() == labels[:10].tolist()  # clean label: poisons keep their labels

    # any order of positions, and loading twice does not accumulate the perturbation
    x2, _ = ts.load(torch.tensor([7, 0, 3]))
    torch.testing.assert_close(x2, expected[[7, 0, 3]])
    assert torch.equal(images, images_before) and torch.equal(labels, labels_before)
    assert torch.equal(delta, delta_before)


def test_poisoned_images_are_clipped_to_unit_interval() -> None:
    images, labels = _pool()
    images[4], images[5] = 250, 5
    ids = torch.tensor([4, 5])
    delta = torch.stack([torch.full((1, 4, 4), 0.5), torch.full((1, 4, 4), -0.5)])
    ts = TrainSet(images, labels, torch.arange(POOL)).with_poisons(ids, delta, inject=False)
    x, _ = ts.load(torch.arange(POOL))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert bool((x[4] == 1.0).all()) and bool((x[5] == 0.0).all())
    assert int(images[4, 0, 0, 0]) == 250 and int(images[5, 0, 0, 0]) == 5


def test_inject_appends_the_poison_ids() -> None:
    images, labels = _pool()
    clean = TrainSet(images, labels, torch.arange(20))
    ids = torch.tensor([25, 27])
    delta = torch.full((2, 1, 4, 4), 0.01)
    poisoned = clean.with_poisons(ids, delta, inject=True)
    assert len(poisoned) == 22 and poisoned.n_clean == 20
    assert poisoned.indices.tolist() == list(range(20)) + [25, 27]
    assert len(clean) == 20 and clean.poison_ids is None  # the clean view is unchanged
    x, y = poisoned.load(torch.tensor([20, 21, 0]))
    torch.testing.assert_close(x[:2], (images[[25, 27]].float() / 255 + 0.01).clamp(0, 1))
    torch.testing.assert_close(x[2], images[0].float() / 255)
    assert y.tolist() == labels[[25, 27, 0]].tolist()


def test_in_place_keeps_the_indices() -> None:
    images, labels = _pool()
    clean = TrainSet(images, labels, torch.arange(5, 25))
    poisoned = clean.with_poisons(torch.tensor([6, 9]), torch.zeros(2, 1, 4, 4), inject=False)
    assert torch.equal(poisoned.indices, clean.indices)
    assert len(poisoned) == len(clean) == poisoned.n_clean == 20


def test_poison_ids_and_delta_must_match() -> None:
    images, labels = _pool()
    with pytest.raises(CpoisonError, match="2 poison ids but 3 perturbations"):
        TrainSet(images, labels, torch.arange(5), torch.tensor([0, 1]), torch.zeros(3, 1, 4, 4))
    with pytest.raises(CpoisonError, match="together"):
        TrainSet(images, labels, torch.arange(5), poison_ids=torch.tensor([0]))


def test_clean_epoch_order_is_a_seeded_permutation() -> None:
    images, labels = _pool()
    ts = TrainSet(images, labels, torch.arange(20))
    a = ts.epoch_order(*_gens(1))
    assert sorted(a.tolist()) == list(range(20))
    assert torch.equal(a, ts.epoch_order(*_gens(1)))
    assert not torch.equal(a, ts.epoch_order(*_gens(2)))


@pytest.mark.parametrize("inject", [True, False])
def test_epoch_order_pairs_clean_positions_with_the_clean_run(inject: bool) -> None:
    images, labels = _pool()
    clean = TrainSet(images, labels, torch.arange(20))
    ids = torch.tensor([22, 25, 29]) if inject else torch.tensor([2, 5, 9])  # white-box: in set
    poisoned = clean.with_poisons(ids, torch.zeros(3, 1, 4, 4), inject)
    n = len(poisoned)
    c_order, c_extra = _gens(7)
    p_order, p_extra = _gens(7)
    for _epoch in range(3):  # the generators advance in step, epoch after epoch
        ref = clean.epoch_order(c_order, c_extra)
        got = poisoned.epoch_order(p_order, p_extra)
        assert sorted(got.tolist()) == list(range(n))
        assert got[got < 20].tolist() == ref.tolist()
        if not inject:
            assert torch.equal(got, ref)


def test_extra_generator_moves_only_the_injected_poisons() -> None:
    images, labels = _pool()
    poisoned = TrainSet(images, labels, torch.arange(20)).with_poisons(
        torch.tensor([22, 25, 29]), torch.zeros(3, 1, 4, 4), inject=True
    )
    orders = [poisoned.epoch_order(*_gens(7, extra_seed=s)) for s in range(6)]
    clean_parts = {tuple(o[o < 20].tolist()) for o in orders}
    poison_slots = {tuple(torch.nonzero(o >= 20).flatten().tolist()) for o in orders}
    assert len(clean_parts) == 1
    assert len(poison_slots) > 1
