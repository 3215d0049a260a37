"""Batched augmentation: seeded, shape-preserving, real crops and flips, differentiable."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from cpoison.training import augment
from cpoison.training.augment import random_crop, random_flip

B, C, H, W = 32, 2, 6, 5
Aug = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _x(seed: int = 0) -> torch.Tensor:
    """Strictly positive images, so zero padding is told apart from content."""
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(seed)) + 0.1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, g: random_crop(x, 2, g),
        lambda x, g: random_flip(x, g),
        lambda x, g: augment(x, 2, True, g),
    ],
    ids=["crop", "flip", "augment"],
)
def test_seeded_and_shape_preserving(fn: Aug) -> None:
    x = _x()
    a = fn(x, _gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, fn(x, _gen(1)))
    assert not torch.equal(a, fn(x, _gen(2)))
    # same generator *state* gives the same output, too
    g = _gen(3)
    fn(x, g)
    state = g.get_state()
    b = fn(x, g)
    g.set_state(state)
    assert torch.equal(b, fn(x, g))


def test_padding_zero_is_identity() -> None:
    x = _x()
    g = _gen(0)
    state = g.get_state()
    assert torch.equal(random_crop(x, 0, g), x)
    assert torch.equal(augment(x, 0, False, g), x)
    assert torch.equal(g.get_state(), state)  # no random draws spent


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    x, pad = _x(), 2
    out = random_crop(x, pad, _gen(5))
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = set()
    for b in range(B):
        hits = [
            (oy, ox)
            for oy in range(2 * pad + 1)
            for ox in range(2 * pad + 1)
            if torch.equal(out[b], padded[b, :, oy : oy + H, ox : ox + W])
        ]
        assert hits, f"image {b} is not a crop of its padded input"
        offsets.update(hits)
    assert len(offsets) > 3  # offsets vary across the batch


def test_flip_flips_some_images_horizontally() -> None:
    x = _x()
    out = random_flip(x, _gen(0))
    same = [torch.equal(out[b], x[b]) for b in range(B)]
    flipped = [torch.equal(out[b], x[b].flip(-1)) for b in range(B)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 0 < sum(flipped) < B


def test_gradients_flow_to_the_input() -> None:
    x = _x().requires_grad_(True)
    out = augment(x, 2, True, _gen(0))
    out.sum().backward()
    assert x.grad is not None
    # each kept input pixel appears once in the output, each cropped-away one not at all
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0}
    assert float(x.grad.sum()) == float((out != 0).sum())
    assert float(x.grad.sum()) > 0.5 * x.numel()


def test_gradient_matches_the_augmented_positions() -> None:
    x = _x().requires_grad_(True)
    w = torch.randn(B, C, H, W, generator=_gen(9))
    out = augment(x, 1, True, _gen(4))
    (out * w).sum().backward()
    # moving the input along its gradient changes the weighted output at the first order
    with torch.no_grad():
        step = 1e-3 * x.grad
        moved = augment(x + step, 1, True, _gen(4))
        change = float(((moved - out) * w).sum())
    torch.testing.assert_close(change, float((step * x.grad).sum()), rtol=1e-3, atol=1e-6)
