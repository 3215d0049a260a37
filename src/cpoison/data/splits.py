"""Seeded, recorded data roles (SPEC 2).

From a dataset's train pool the splitter draws disjoint index sets for the attacker's
training fold D^tr and calibration fold D^ca and the victim's training and calibration
sets (calibration = ``victim_cal_fraction`` of the victim data, 10% by default). In the
white-box setting the attacker's training fold *is* the victim training set. Targets are
chosen later (they depend on the surrogate, SPEC 4) by :func:`select_targets`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch

from cpoison.errors import ConfigError
from cpoison.seeding import derive_seed, make_generator
from cpoison.store.keys import tensor_digest

Setting = Literal["black-box", "white-box"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleSplit:
    """Index sets into the train pool for every role, and the seed that drew them."""

    attacker_train: torch.Tensor
    attacker_cal: torch.Tensor
    victim_train: torch.Tensor
    victim_cal: torch.Tensor
    setting: str
    seed: int
    public: torch.Tensor | None = None  # transfer setting: the extractor's pretraining data

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "setting": self.setting,
            "seed": self.seed,
            **{
                k: getattr(self, k).tolist()
                for k in ("attacker_train", "attacker_cal", "victim_train", "victim_cal")
            },
        }
        if self.public is not None:
            out["public"] = self.public.tolist()
        return out

    def fingerprint(self) -> str:
        """Short hash of the recorded indices."""
        roles = [self.attacker_train, self.attacker_cal, self.victim_train, self.victim_cal]
        if self.public is not None:
            roles.append(self.public)
        return tensor_digest(*roles) + ("-wb" if self.setting == "white-box" else "")

    def save(self, path: str) -> None:
        from cpoison.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict()))


def make_split(
    pool_size: int,
    seed: int,
    victim_size: int | None = None,
    attacker_size: int | None = None,
    victim_cal_fraction: float = 0.1,
    attacker_cal_fraction: float = 0.1,
    setting: Setting = "black-box",
    public_fraction: float | None = None,
) -> RoleSplit:
    """Draw the roles from a pool of ``pool_size`` training examples.

    Black-box: attacker and victim data are disjoint; by default each gets half the pool.
    White-box: the attacker's training fold is the victim training set; the attacker's
    calibration fold is drawn from the rest of the pool.

    ``public_fraction`` (transfer setting, SPEC 2): that share of the pool is first set
    aside as the *public* role (the feature extractor's pretraining data), drawn with
    ``derive_seed(seed, "public")``; the other roles are then drawn as above from the rest
    of the pool (the default halves are halves of the rest), so the public role is disjoint
    from attacker and victim data. ``None`` (default) gives exactly the split without it.
    """
    if public_fraction is not None:
        if not 0 < public_fraction < 1:
            raise ConfigError(f"transfer.public_fraction must be in (0, 1), got "
                              f"{public_fraction}")
        n_public = max(1, round(pool_size * public_fraction))
        perm = torch.randperm(pool_size,
                              generator=make_generator(derive_seed(seed, "public")))
        public, rest = perm[:n_public].sort().values, perm[n_public:].sort().values
        inner = make_split(rest.numel(), seed, victim_size, attacker_size, victim_cal_fraction,
                           attacker_cal_fraction, setting)
        return RoleSplit(rest[inner.attacker_train], rest[inner.attacker_cal],
                         rest[inner.victim_train], rest[inner.victim_cal], setting, seed,
                         public)
    if setting not in ("black-box", "white-box"):
        raise ConfigError(f"setting must be 'black-box' or 'white-box', got {setting!r}")
    for name, frac in (("victim_cal_fraction", victim_cal_fraction),
                       ("attacker_cal_fraction", attacker_cal_fraction)):
        if not 0 < frac < 1:
            raise ConfigError(f"{name} must be in (0, 1), got {frac}")
    half = pool_size // 2
    victim_size = half if victim_size is None else victim_size
    attacker_size = half if attacker_size is None else attacker_size
    if setting == "white-box":
        attacker_size = math.ceil(victim_size * attacker_cal_fraction)
    if victim_size < 2 or attacker_size < 2:
        raise ConfigError("victim_size and attacker_size must be at least 2")
    if victim_size + attacker_size > pool_size:
        raise ConfigError(
            f"victim_size ({victim_size}) + attacker_size ({attacker_size}) exceed the "
            f"train pool ({pool_size})"
        )
    perm = torch.randperm(pool_size, generator=make_generator(derive_seed(seed, "split")))
    victim = perm[:victim_size]
    attacker = perm[victim_size : victim_size + attacker_size]
    n_vcal = max(1, round(victim_size * victim_cal_fraction))
    victim_cal, victim_train = victim[:n_vcal].sort().values, victim[n_vcal:].sort().values
    if setting == "white-box":
        return RoleSplit(victim_train, attacker.sort().values, victim_train, victim_cal,
                         setting, seed)
    n_acal = max(1, round(attacker_size * attacker_cal_fraction))
    return RoleSplit(
        attacker[n_acal:].sort().values, attacker[:n_acal].sort().values,
        victim_train, victim_cal, setting, seed,
    )


def select_targets(
    test_labels: torch.Tensor,
    target_class: int,
    n_targets: int,
    seed: int,
    eligible: torch.Tensor | None = None,
    rule: str = "the surrogate classifies correctly",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of one class (SPEC 4): ``n_targets`` test images of ``target_class``, drawn
    among the ``eligible`` ones (bool [N]; by default those the surrogate classifies
    correctly, see ``rule``, which names the criterion in error messages) when given.

    Returns (targets, other images of the class), both indices into the test set.
    """
    in_class = test_labels == target_class
    if not bool(in_class.any()):
        raise ConfigError(f"target class {target_class} has no test images")
    mask = in_class & eligible if eligible is not None else in_class
    candidates = torch.nonzero(mask).flatten()
    if candidates.numel() == 0:
        raise ConfigError(f"no test image of class {target_class} is eligible as a target "
                          f"(images that {rule}); relax targets.correct_only / "
                          "targets.set_size")
    if candidates.numel() < n_targets:
        log.warning("class %d has only %d eligible test images; using them all as targets "
                    "(asked for %d)", target_class, candidates.numel(), n_targets)
    gen = make_generator(derive_seed(seed, "targets", target_class))
    pick = candidates[torch.randperm(candidates.numel(), generator=gen)[:n_targets]]
    targets = pick.sort().values
    others = torch.nonzero(in_class).flatten()
    others = others[~torch.isin(others, targets)]
    return targets, others


def evaluation_indices(n_test: int, targets: torch.Tensor) -> torch.Tensor:
    """Evaluation set = test set minus targets (SPEC 2)."""
    mask = torch.ones(n_test, dtype=torch.bool)
    mask[targets] = False
    return torch.nonzero(mask).flatten()
