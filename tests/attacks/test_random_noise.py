"""RandUn / RandGa baselines (SPEC 5.3): distribution, bounds, [0, 1] box, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from cpoison.attacks import AttackContext, Goal, RandomNoise, RandomNoiseConfig, build_attack

EPS = 16 / 255


def context(bases: torch.Tensor, seed: int = 0, eps: float = EPS) -> AttackContext:
    """A context with only what the random baselines read (bases, ids, eps, seed)."""
    n = bases.shape[0]
    empty = torch.zeros(0, *bases.shape[1:])
    return AttackContext(
        surrogate=nn.Linear(1, 1), bases=bases, base_labels=torch.zeros(n, dtype=torch.long),
        base_ids=torch.arange(n), inject=True, cal_x=empty,
        cal_y=torch.zeros(0, dtype=torch.long), target_x=empty,
        target_y=torch.zeros(0, dtype=torch.long), train_x=empty,
        train_y=torch.zeros(0, dtype=torch.long), goal=Goal(), alpha=0.1, eps=eps, seed=seed,
        device=torch.device("cpu"), progress=False,
    )


def craft(name: str, bases: torch.Tensor, seed: int = 0) -> torch.Tensor:
    poisons = RandomNoise(RandomNoiseConfig(name=name)).craft(context(bases, seed))
    assert poisons.ids.tolist() == list(range(bases.shape[0]))
    assert poisons.meta["attack"] == name
    return poisons.delta


MID = torch.full((200, 1, 16, 16), 0.5)  # 51,200 pixels far from 0 and 1: no box clipping


def test_randun_is_uniform_on_the_eps_ball():
    delta = craft("randun", MID).flatten()
    assert float(delta.abs().max()) <= EPS
    assert float(delta.abs().max()) > 0.999 * EPS
    # U[-eps, eps]: mean 0, std eps / sqrt(3), 10 % of pixels within 0.1 eps of the bounds,
    # and every tenth of the interval gets about a tenth of the pixels.
    assert abs(float(delta.mean())) < 0.01 * EPS
    assert float(delta.std()) == pytest.approx(EPS / math.sqrt(3), rel=0.01)
    near_bounds = float((delta.abs() > 0.9 * EPS).float().mean())
    assert near_bounds == pytest.approx(0.1, abs=0.006)
    hist = torch.histc(delta, bins=10, min=-EPS, max=EPS) / delta.numel()
    assert torch.all((hist - 0.1).abs() < 0.006), hist


def test_randga_is_a_clipped_gaussian_with_std_eps_over_two():
    delta = craft("randga", MID).flatten()
    sigma = EPS / 2
    assert float(delta.abs().max()) <= EPS + 1e-7
    # Before clipping delta ~ N(0, sigma^2): clipping at 2 sigma leaves the median absolute
    # value (0.6745 sigma) unchanged and puts P(|N| > 2 sigma) = 4.55 % exactly on +-eps.
    assert abs(float(delta.mean())) < 0.01 * EPS
    assert float(delta.abs().median()) == pytest.approx(0.6745 * sigma, rel=0.02)
    at_bounds = float((delta.abs() >= EPS - 1e-7).float().mean())
    assert at_bounds == pytest.approx(0.0455, abs=0.004)
    # The std of N(0, sigma^2) clipped at 2 sigma is 0.9594 sigma.
    assert float(delta.std()) == pytest.approx(0.9594 * sigma, rel=0.015)


@pytest.mark.parametrize("name", ["randun", "randga"])
def test_poisons_stay_in_the_unit_box(name):
    gen = torch.Generator().manual_seed(0)
    bases = torch.rand(50, 3, 8, 8, generator=gen)
    bases[:20] = (bases[:20] > 0.5).float()  # many saturated pixels at exactly 0 and 1
    delta = craft(name, bases)
    poisoned = bases + delta
    assert float(poisoned.min()) >= 0.0
    assert float(poisoned.max()) <= 1.0
    assert float(delta.abs().max()) <= EPS + 1e-7
    # Clipping happened (pixels at 0 cannot go down) but the noise is not all gone.
    assert bool((delta[bases == 0] >= 0).all())
    assert bool((delta[bases == 1] <= 0).all())
    assert float((delta != 0).float().mean()) > 0.5


@pytest.mark.parametrize("name", ["randun", "randga"])
def test_deterministic_for_a_seed(name):
    bases = torch.full((10, 1, 8, 8), 0.5)
    first, again = craft(name, bases, seed=7), craft(name, bases, seed=7)
    other = craft(name, bases, seed=8)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # The registry builds the same baseline from its config.
    built = build_attack(RandomNoiseConfig(name=name)).craft(context(bases, seed=7))
    assert torch.equal(built.delta, first)


def test_randun_and_randga_differ():
    assert not torch.equal(craft("randun", MID[:4]), craft("randga", MID[:4]))
