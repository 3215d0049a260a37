"""Random-noise baselines of the paper (SPEC 5.3): RandUn and RandGa."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import ConfigDict

from cpoison.attacks.base import Attack, AttackConfigBase
from cpoison.attacks.context import AttackContext
from cpoison.attacks.poison_set import PoisonSet
from cpoison.seeding import derive_seed, make_generator


class RandomNoiseConfig(AttackConfigBase):
    """``randun``: delta ~ U[-eps, eps] per pixel; ``randga``: delta ~ N(0, (eps/2)^2)
    clipped to [-eps, eps]. Both then keep x + delta inside [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["randun", "randga"]
    label: str | None = None


class RandomNoise(Attack):
    def __init__(self, config: RandomNoiseConfig) -> None:
        self.config = config
        self.name = config.name

    def craft(self, ctx: AttackContext) -> PoisonSet:
        gen = make_generator(derive_seed(ctx.seed, self.name))
        shape = ctx.bases.shape
        if self.name == "randun":
            delta = (torch.rand(shape, generator=gen) * 2 - 1) * ctx.eps
        else:
            delta = (torch.randn(shape, generator=gen) * (ctx.eps / 2)).clamp(-ctx.eps, ctx.eps)
        bases = ctx.bases.cpu()
        if ctx.clip is not None:
            delta = (bases + delta).clamp(*ctx.clip) - bases
        return PoisonSet(ctx.base_ids, delta, ctx.inject, {"attack": self.name})
