"""Presets (SPEC 9): data sizes, architecture and training recipes per dataset and scale.

``cpu`` presets run on a 2-core laptop in minutes (subsets of the train pool, a narrow
ConvNet, few epochs); ``paper`` presets follow the paper's scale for a GPU (whole pool,
ResNet-18 victims, 40 epochs with the step schedule of Geiping et al.).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cpoison.errors import ConfigError
from cpoison.training.recipe import Recipe


class Preset(BaseModel):
    """Everything about scale that an experiment takes from its preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    victim_size: int | None = Field(None, description="victim train + calibration (None: half)")
    attacker_size: int | None = Field(None, description="attacker D^tr + D^ca (None: half)")
    model: str = "convnet"
    model_kwargs: dict[str, object] = Field(default_factory=dict)
    recipe: Recipe = Recipe()
    rscp_samples: int = 256
    eval_batch_size: int = 256


_CPU_RECIPE = Recipe(epochs=6, batch_size=128, milestones=(0.5, 0.8), crop_padding=2, flip=True)
_PAPER_RECIPE = Recipe(epochs=40, batch_size=128, milestones=(0.375, 0.625, 0.875),
                       crop_padding=4, flip=True)

PRESETS: dict[tuple[str, str], Preset] = {
    ("fashion-mnist", "cpu"): Preset(
        dataset="fashion-mnist", victim_size=6000, attacker_size=6000, model="convnet",
        model_kwargs={"width": 12}, recipe=_CPU_RECIPE, rscp_samples=32,
    ),
    # The paper's poisons-per-target ratio on a CPU: the whole train pool (half each for the
    # attacker and the victim, so 2 % is 540 poisons for 50 targets, as 2 % of CIFAR-10 is
    # ~1,000), with victims that fit their training data (a 2x512 MLP, 40 epochs, no
    # augmentation), trained under bfloat16 autocast: about 2x faster than fp32 on CPUs with
    # avx512_bf16 (docs/results.md has the effect under both).
    ("fashion-mnist", "cpu-full"): Preset(
        dataset="fashion-mnist", model="mlp", model_kwargs={"hidden": 512},
        recipe=Recipe(epochs=40, lr=0.05, milestones=(0.5, 0.8), crop_padding=0, flip=False,
                      precision="auto"),
        rscp_samples=32,
    ),
    ("fashion-mnist", "paper"): Preset(
        dataset="fashion-mnist", model="resnet18", recipe=_PAPER_RECIPE,
    ),
    ("digits", "cpu"): Preset(
        dataset="digits", model="mlp",
        recipe=Recipe(epochs=30, lr=0.05, crop_padding=0, flip=False),
        rscp_samples=32,
    ),
    ("cifar10", "cpu"): Preset(
        dataset="cifar10", victim_size=6000, attacker_size=6000, model="convnet",
        model_kwargs={"width": 12}, recipe=_CPU_RECIPE.model_copy(update={"crop_padding": 4}),
        rscp_samples=32,
    ),
    ("cifar10", "paper"): Preset(dataset="cifar10", model="resnet18", recipe=_PAPER_RECIPE),
    ("cifar100", "paper"): Preset(dataset="cifar100", model="resnet18", recipe=_PAPER_RECIPE),
    ("tiny-imagenet", "paper"): Preset(
        dataset="tiny-imagenet", model="resnet18",
        recipe=_PAPER_RECIPE.model_copy(update={"crop_padding": 8}),
    ),
}


# Presets for any dataset, a user's own above all (SPEC 12, ``cpoison audit``): sized for a
# laptop CPU. ``audit`` is the recipe of fashion-mnist/cpu-full (the demo's victims: 40 epochs
# of SGD, lr 0.05, steps at 50 % and 80 %, no augmentation, so that a 2x512 MLP fits its
# training data) in fp32 (bf16 autocast is only faster on CPUs with avx512_bf16), on the
# whole train pool split in halves between attacker and victim; default architecture
# (when the config names none) a 2x512 MLP. ``audit-quick``: 10 epochs, for a first look
# and for tests.
_AUDIT_RECIPE = Recipe(epochs=40, lr=0.05, milestones=(0.5, 0.8), crop_padding=0, flip=False)
GENERIC_PRESETS: dict[str, Preset] = {
    "audit": Preset(dataset="any", model="mlp", model_kwargs={"hidden": 512},
                    recipe=_AUDIT_RECIPE, rscp_samples=32),
    "audit-quick": Preset(dataset="any", model="mlp", model_kwargs={"hidden": 512},
                          recipe=_AUDIT_RECIPE.model_copy(update={"epochs": 10}),
                          rscp_samples=32),
}


def get_preset(dataset: str, preset: str) -> Preset:
    """The preset named ``preset`` for ``dataset`` (a registry name or a user's data path),
    else the generic preset of that name (:data:`GENERIC_PRESETS`); ConfigError lists the
    available ones."""
    if (dataset, preset) in PRESETS:
        return PRESETS[(dataset, preset)]
    if preset in GENERIC_PRESETS:
        return GENERIC_PRESETS[preset].model_copy(update={"dataset": dataset})
    known = ", ".join([f"{d}/{p}" for d, p in sorted(PRESETS)] + [
        f"any dataset/{p}" for p in GENERIC_PRESETS])
    raise ConfigError(f"no preset {preset!r} for dataset {dataset!r}; available: {known}")
