"""The defense seam (SPEC 7): one interface for every poisoning defense.

A defense is two things:

* a **config**: a frozen pydantic model with ``extra="forbid"``, discriminated by its
  ``name`` field (see :mod:`cpoison.defenses.registry`); its ``model_dump()`` is part of the
  victims' cache keys (SPEC 11);
* a **behaviour**: a :class:`Defense` object built from the config, which acts through a
  small set of hooks. Every hook has a do-nothing default, so a defense overrides only what
  it changes (the Witches' Brew "forest" style of defenses as objects with hooks):

  ==================================  ====================================================
  hook                                overridden by
  ==================================  ====================================================
  :meth:`Defense.prepare`             filters (deep k-NN, spectral signatures, activation
                                      clustering): drop training points before training
  :meth:`Defense.training_hooks`      MaxUp, adversarial poisoning (the batch loss) and
                                      EPIC (which points are kept, after each epoch)
  :meth:`Defense.train_models`        RPS (k_t models on hash partitions of the data)
  :meth:`Defense.adapt`               head refit (the victim's head refitted on part of
                                      the clean calibration set, before calibration)
  :meth:`Defense.logits`              RPS (vote-based smoothed logits)
  :meth:`Defense.conformal`           RPS (majority vote over k_c calibration partitions)
  ==================================  ====================================================

What the experiment engine calls, for every victim (benign and poisoned alike, SPEC 6
pairing: both train under the same defense)::

    defense = build_defense(config.defense)              # once per config
    defense.check_sizes(n_train, n_calibration)          # early, before any training
    outcome = defense.fit(train_set, train_fn, seed)     # DefenseOutcome
    adapted = defense.adapt(outcome.models, cal_images, cal_labels, seed, device)
    cal_images, cal_labels = cal_images[adapted.calibration_keep], ...  # the rest calibrates
    logits = defense.logits(adapted.models, images, device)   # calibration / test / targets
    cp = defense.conformal(score, alpha, calibration_images)  # SplitConformal-like
    cp.calibrate(cal_logits, cal_labels, generator=g); sets = cp.predict(logits, generator=g)

``train_fn(data, seed, hooks)`` is supplied by the engine: it builds a fresh model from
``seed`` (``build_seeded_model``) and trains it with ``train_model(..., hooks=hooks)``, so
the engine keeps control of architecture, recipe, device and model caching. ``outcome``
carries the trained model(s), the pool ids the defense removed (filters, EPIC) and a
JSON-able ``record`` (for filters and EPIC: the shares of poisons and of clean points
removed, SPEC 7).

Adding a defense = one file with a config class and a :class:`Defense` subclass, plus one
entry in :mod:`cpoison.defenses.registry`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict

from cpoison.conformal.predictor import SplitConformal
from cpoison.conformal.scores import ConformalScore
from cpoison.errors import ConfigError
from cpoison.training.hooks import TrainingHooks
from cpoison.training.trainer import predict_logits
from cpoison.training.trainset import TrainSet

__all__ = [
    "Adapted",
    "ConformalPredictor",
    "Defense",
    "DefenseConfigBase",
    "DefenseOutcome",
    "FeatureFilter",
    "Prepared",
    "TrainFn",
    "TrainingHooks",
    "content_hash_partition",
    "model_device",
    "removal_shares",
    "subset",
    "train_features",
    "train_logits",
]


class DefenseConfigBase(BaseModel):
    """Base of every defense config: frozen, unknown fields rejected, ``name`` the tag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str


TrainFn = Callable[[TrainSet, int, "TrainingHooks | None"], nn.Module]
"""``train_fn(data, seed, hooks) -> model``: build a fresh model from ``seed`` and train it
on ``data`` with ``train_model(..., hooks=hooks)``; supplied by the engine."""


class ConformalPredictor(Protocol):
    """What :meth:`Defense.conformal` returns: the :class:`SplitConformal` interface."""

    def calibrate(
        self, logits: torch.Tensor, labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Any: ...

    def predict(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


@dataclass
class Prepared:
    """What :meth:`Defense.prepare` returns: the kept training set and what was removed."""

    data: TrainSet
    removed: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class DefenseOutcome:
    """What :meth:`Defense.fit` returns.

    ``models``: the trained model(s) (one, or RPS's k_t); pass them to
    :meth:`Defense.logits`. ``removed``: pool ids the defense dropped (filters before
    training, EPIC during it). ``record``: JSON-able facts for the results store, among
    them ``poisons_removed_share`` / ``clean_removed_share`` (SPEC 7) for every defense
    (0.0 when nothing is removed; ``None`` for the poison share when there are no poisons).
    """

    models: list[nn.Module]
    removed: torch.Tensor
    record: dict[str, Any]


@dataclass
class Adapted:
    """What :meth:`Defense.adapt` returns: the model(s) to evaluate, the bool mask [n_cal] of
    calibration examples left for conformal calibration (those the defense used are out:
    calibration must stay disjoint from whatever fitted the model, SPEC 3.2), and JSON-able
    facts."""

    models: list[nn.Module]
    calibration_keep: torch.Tensor
    record: dict[str, Any] = field(default_factory=dict)


class Defense:
    """Behaviour of a defense; subclasses override the hooks they need (see module doc)."""

    #: the config's ``name``
    name: str = "none"
    #: whether RSCP (which smooths one model over noisy inputs) can run on this defense's
    #: models; RPS replaces the conformal predictor, so the engine reports RSCP as missing
    supports_rscp: bool = True
    #: whether the defense makes sense when victims fit a head on frozen features (the
    #: transfer setting): it then gets ``train_fn`` fitting heads and models that are
    #: extractor + head; a defense that says no is refused there with one message
    frozen_features: bool = False

    def __init__(self, config: DefenseConfigBase) -> None:
        self.config = config

    # -- checks ----------------------------------------------------------------------------

    def check_sizes(self, n_train: int, n_calibration: int) -> None:
        """Raise :class:`ConfigError` when a setting does not fit the data sizes (e.g. RPS's
        k_t above the training set size). Cheap; call it before any training."""

    # -- training --------------------------------------------------------------------------

    def prepare(self, data: TrainSet, train_fn: TrainFn, seed: int) -> Prepared:
        """Filter the training set before training (default: keep everything)."""
        return Prepared(data)

    def training_hooks(self) -> TrainingHooks | None:
        """Fresh per-run hooks for ``train_model`` (default ``None``: plain training)."""
        return None

    def train_models(
        self, data: TrainSet, train_fn: TrainFn, seed: int
    ) -> tuple[list[nn.Module], list[TrainingHooks]]:
        """Train the victim model(s) on the prepared data (default: one model)."""
        hooks = self.training_hooks()
        model = train_fn(data, seed, hooks)
        return [model], [hooks] if hooks is not None else []

    def fit(self, data: TrainSet, train_fn: TrainFn, seed: int) -> DefenseOutcome:
        """The engine's one training call: :meth:`prepare`, then :meth:`train_models`."""
        prepared = self.prepare(data, train_fn, seed)
        models, hooks = self.train_models(prepared.data, train_fn, seed)
        removed = [prepared.removed] + [h.removed for h in hooks]
        removed_ids = torch.unique(torch.cat(removed)) if removed else prepared.removed
        record: dict[str, Any] = {"defense": self.name, **prepared.record}
        for h in hooks:
            record.update(h.record)
        record.update(removal_shares(data, removed_ids))
        return DefenseOutcome(models, removed_ids, record)

    # -- prediction and conformal calibration ----------------------------------------------

    def adapt(
        self, models: list[nn.Module], calibration_images: torch.Tensor,
        calibration_labels: torch.Tensor, seed: int, device: torch.device | str = "cpu",
    ) -> Adapted:
        """Use the defender's clean calibration data on the trained model(s) before
        calibration (default: nothing; every calibration example calibrates). ``seed`` is
        the victim's, so a benign victim and its poisoned twin are adapted alike."""
        return Adapted(models, torch.ones(calibration_labels.numel(), dtype=torch.bool))

    def logits(
        self, models: list[nn.Module], images: torch.Tensor,
        device: torch.device | str = "cpu", batch_size: int = 256,
    ) -> torch.Tensor:
        """Logits [N, K] of the victim on ``images`` (default: the single model's)."""
        if len(models) != 1:
            raise ConfigError(f"defense {self.name!r} expects one model, got {len(models)}")
        return predict_logits(models[0], images, device, batch_size)

    def conformal(
        self, score: ConformalScore | str, alpha: float,
        calibration_images: torch.Tensor | None = None,
    ) -> ConformalPredictor:
        """The victim's conformal predictor (default: split CP, SPEC 3.2)."""
        return SplitConformal(score, alpha)


# -- helpers shared by defenses ------------------------------------------------------------


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a parameter-less model)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def subset(data: TrainSet, keep: torch.Tensor) -> TrainSet:
    """The view of ``data`` restricted to positions where the bool mask ``keep`` is true.

    Poisons stay attached (applied on load). Kept clean positions stay ahead of kept
    injected ones, so :meth:`TrainSet.epoch_order` still slots injected poisons in
    separately (``n_clean`` = number of kept clean positions).
    """
    keep = torch.as_tensor(keep, dtype=torch.bool)
    if keep.numel() != len(data):
        raise ValueError(f"keep mask has {keep.numel()} entries for {len(data)} examples")
    n_clean = int(keep[: int(data.n_clean)].sum())
    return TrainSet(data.images, data.labels, data.indices[keep], data.poison_ids,
                    data.poison_delta, n_clean=n_clean)


def poison_mask(data: TrainSet) -> torch.Tensor:
    """Bool [len(data)]: which training examples are poisons (carry a perturbation)."""
    if data.poison_ids is None:
        return torch.zeros(len(data), dtype=torch.bool)
    return torch.isin(data.indices, data.poison_ids)


def removal_shares(data: TrainSet, removed_ids: torch.Tensor) -> dict[str, Any]:
    """SPEC 7 filter metrics: counts and shares of poisons and of clean points removed.

    ``removed_ids`` are pool ids. ``poisons_removed_share`` is ``None`` when ``data`` holds
    no poisons (a benign victim)."""
    removed = torch.isin(data.indices, torch.as_tensor(removed_ids, dtype=torch.long))
    is_poison = poison_mask(data)
    n_poison, n_clean = int(is_poison.sum()), int((~is_poison).sum())
    p_removed, c_removed = int((removed & is_poison).sum()), int((removed & ~is_poison).sum())
    return {
        "removed": p_removed + c_removed,
        "poisons_total": n_poison,
        "poisons_removed": p_removed,
        "clean_total": n_clean,
        "clean_removed": c_removed,
        "poisons_removed_share": p_removed / n_poison if n_poison else None,
        "clean_removed_share": c_removed / n_clean if n_clean else 0.0,
    }


@torch.no_grad()
def _over_trainset(
    model: nn.Module, data: TrainSet, forward: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    """``forward`` on every training example (poisons applied, no augmentation), eval mode."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    out = []
    try:
        for start in range(0, len(data), batch_size):
            x, _ = data.load(torch.arange(start, min(len(data), start + batch_size)), device)
            out.append(forward(x).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def train_features(model: nn.Module, data: TrainSet, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features [len(data), D] (``model.features``) of the training examples as
    the model saw them (poisons applied, no augmentation)."""
    return _over_trainset(model, data, model.features, batch_size)  # type: ignore[arg-type]


def train_logits(model: nn.Module, data: TrainSet, batch_size: int = 256) -> torch.Tensor:
    """Logits [len(data), K] of the training examples (poisons applied, no augmentation)."""
    return _over_trainset(model, data, model, batch_size)


def content_hash_partition(
    images: torch.Tensor, labels: torch.Tensor | None, k: int
) -> torch.Tensor:
    """Assign each example to one of ``k`` partitions by a hash of its content (RPS).

    The partition of an example depends only on its own bytes (image, and label if given):
    SHA-256 of the tensor's contiguous CPU bytes, read as an integer, modulo ``k``.
    Deterministic across runs and machines, and independent of the order and of the other
    examples, so inserting or deleting a point changes exactly one partition (the property
    the RPS certificate needs). Scholten and Guennemann's reference code uses
    ``int(image.sum()) % k``; a cryptographic hash spreads near-identical images uniformly.
    """
    if k < 1:
        raise ConfigError(f"the number of partitions must be >= 1, got {k}")
    if k == 1:
        return torch.zeros(images.shape[0], dtype=torch.long)
    x = images.detach().cpu().contiguous()
    lab = labels.detach().cpu().to(torch.int64) if labels is not None else None
    out = np.empty(x.shape[0], dtype=np.int64)
    for i in range(x.shape[0]):
        h = hashlib.sha256(x[i].numpy().tobytes())
        if lab is not None:
            h.update(int(lab[i]).to_bytes(8, "little", signed=True))
        out[i] = int.from_bytes(h.digest()[:8], "little") % k
    return torch.from_numpy(out)


# -- filters -------------------------------------------------------------------------------


class FeatureFilter(Defense):
    """Base of the filters (SPEC 7): train a model on the (possibly poisoned) training set,
    take its penultimate features of every training example, drop the suspects, and train
    the victim on the rest.

    The feature model is ``train_fn(data, seed, None)``, i.e. the undefended victim with
    the same seed (as in the original papers, which filter with the poisoned model); an
    engine with a model cache therefore trains it once for all filters. Subclasses
    implement :meth:`suspects`.
    """

    frozen_features = True

    def suspects(
        self, features: torch.Tensor, labels: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Bool mask [n] of training examples to drop, and JSON-able facts."""
        raise NotImplementedError

    def prepare(self, data: TrainSet, train_fn: TrainFn, seed: int) -> Prepared:
        model = train_fn(data, seed, None)
        features = train_features(model, data)
        labels = data.labels[data.indices]
        drop, facts = self.suspects(features, labels, seed)
        removed = data.indices[drop]
        record = {"filter": facts, **{f"filter_{k}": v for k, v in
                                      removal_shares(data, removed).items()}}
        return Prepared(subset(data, ~drop), removed, record)


def expected_count(fraction: float, n: int) -> int:
    """``ceil(fraction * n)`` guarded against float error (``0.1 * 30 -> 3``, not 4)."""
    return int(math.ceil(fraction * n - 1e-9))
