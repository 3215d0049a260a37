"""A workspace is one experiment point's view of the world: the dataset, the preset, the
role split, the model specs, the device and the artifact store. Models are trained through
it under keys from :mod:`cpoison.store.keys`, so the same model is never trained twice and
a model trained elsewhere (another run, another worker) is reused."""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cpoison.data import ImageDataset
from cpoison.data.splits import RoleSplit, make_split
from cpoison.errors import ConfigError
from cpoison.experiments.config import ModelSpec, is_user_arch
from cpoison.experiments.presets import Preset
from cpoison.seeding import derive_seed
from cpoison.store import keys
from cpoison.store.artifacts import ArtifactStore
from cpoison.training import (
    TRAINER_VERSION,
    Recipe,
    TrainSet,
    build_seeded_model,
    predict_features,
    predict_logits,
    train_model,
)
from cpoison.training.hooks import TrainingHooks
from cpoison.training.precision import resolve_recipe

log = logging.getLogger(__name__)

DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass
class Workspace:
    """Dataset + preset + split + device + artifact store.

    ``any_device``: a model not found under this device type may be served from one trained
    on another device type (off by default: GPU and CPU training give other numbers)."""

    dataset: ImageDataset
    preset: Preset
    split: RoleSplit
    device: torch.device
    store: ArtifactStore
    progress: bool = True
    any_device: bool = False
    train_seconds: float = field(default=0.0, init=False)
    trained: list[str] = field(default_factory=list, init=False)

    @classmethod
    def for_dataset(
        cls, dataset: ImageDataset, preset: Preset, store: ArtifactStore, device: torch.device,
        seed: int = 0, setting: str = "black-box", progress: bool = True,
        any_device: bool = False, public_fraction: float | None = None,
    ) -> Workspace:
        """The workspace of ``preset`` on a loaded ``dataset``, with the SPEC 2 role split
        drawn from ``seed`` for ``setting`` (with a public role of ``public_fraction`` of
        the pool in the transfer setting)."""
        split = make_split(
            dataset.train_labels.numel(), seed, victim_size=preset.victim_size,
            attacker_size=preset.attacker_size, setting=setting,  # type: ignore[arg-type]
            public_fraction=public_fraction,
        )
        return cls(dataset, preset, split, device, store, progress, any_device)

    @classmethod
    def open(
        cls, preset: Preset, seed: int = 0, setting: str = "black-box",
        data_root: str | Path | None = None, store: Any = None,
        device: str | None = None, progress: bool = True, use_cache: bool = True,
    ) -> Workspace:
        """Load ``preset``'s dataset and open its workspace (library use and ``cpoison cp``).

        ``store`` None means the default artifact store (``$CPOISON_CACHE`` or
        ``~/.cache/cpoison``); ``use_cache=False`` trains every model afresh into a
        temporary store, deleted at exit."""
        from cpoison.data import load_dataset
        from cpoison.device import get_device
        from cpoison.store.artifacts import split_stores

        dataset = load_dataset(preset.dataset, root=data_root, seed=seed)
        written, layers = split_stores(store)
        if not use_cache:  # a private store, removed when the process exits
            written = tempfile.mkdtemp(prefix="cpoison-store-")
            atexit.register(shutil.rmtree, written, ignore_errors=True)
        return cls.for_dataset(dataset, preset, ArtifactStore(written, layers),
                               get_device(device), seed, setting, progress)

    @property
    def digest(self) -> str:
        return keys.dataset_digest(self.dataset)

    def spec(self, spec: ModelSpec | None) -> ModelSpec:
        """``spec`` with explicit arguments, or the preset's model when None."""
        if spec is None:
            return ModelSpec(arch=self.preset.model, kwargs=dict(self.preset.model_kwargs))
        return spec.resolve(self.preset.model, dict(self.preset.model_kwargs))

    def build(self, seed: int, spec: ModelSpec | None = None) -> nn.Module:
        """A freshly initialised model of ``spec`` (default: the preset's). A user's model
        function (SPEC 12) is called under ``derive_seed(seed, "init")`` as registry models
        are built (an ``nn.Module`` given from Python is copied: every model starts from its
        weights); ``spec.weights`` are loaded over the initial weights. On feature vectors
        the registry's ``mlp`` is :func:`cpoison.models.mlp.feature_mlp`; images that are
        not square give model functions ``image_size = (height, width)``."""
        shape, k = self.dataset.input_shape, self.dataset.num_classes
        spec = self.spec(spec)
        if is_user_arch(spec.arch):
            from cpoison.models.user import build_user_model

            return build_user_model(spec.arch, shape, k, weights=spec.weights,
                                    seed=derive_seed(seed, "init"))
        if len(shape) == 1:
            if spec.arch.replace("-", "").lower() != "mlp":
                raise ConfigError(f"model {spec.arch!r} takes images; for feature vectors "
                                  "use mlp or a model of your own")
            from cpoison.models.mlp import feature_mlp

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(seed, "init"))
                model: nn.Module = feature_mlp(shape[0], k, **(spec.kwargs or {}))
        else:
            c, h, w = shape
            model = build_seeded_model(spec.arch, c, k, h if h == w else (h, w), seed,
                                       **(spec.kwargs or {}))
        if spec.weights:
            from cpoison.models.user import load_weights

            load_weights(model, spec.weights)
        return model

    def trainset(self, indices: torch.Tensor) -> TrainSet:
        return TrainSet(self.dataset.train_images, self.dataset.train_labels, indices)

    def model_key(self, data: TrainSet, seed: int, spec: ModelSpec | None = None,
                  recipe: Recipe | None = None, device_type: str | None = None,
                  defense: Any = None) -> str:
        """The key of the model :meth:`train` would give (SPEC 11); a recipe's ``auto``
        precision enters it resolved for this device (``cpoison.training.precision``), as
        ``train_model`` resolves it, so the key names the precision really trained in."""
        spec = self.spec(spec)
        return keys.model_key(
            dataset=self.digest, indices=data.indices, poison_ids=data.poison_ids,
            poison_delta=data.poison_delta,
            recipe=resolve_recipe(recipe or self.preset.recipe, self.device),
            arch=spec.arch, arch_kwargs=spec.kwargs or {}, seed=seed,
            device_type=device_type or self.device.type, trainer_version=TRAINER_VERSION,
            defense=defense,
            user=keys.user_model_identity(spec.arch, spec.weights, is_user_arch(spec.arch),
                                          spec.train_fn),
        )

    def train(
        self, data: TrainSet, seed: int, desc: str = "train", spec: ModelSpec | None = None,
        recipe: Recipe | None = None, hooks: TrainingHooks | None = None,
        defense: Any = None,
    ) -> nn.Module:
        """Load the model of this key from the store, or train it with initial weights and
        data order from ``seed`` and store it.

        ``hooks`` (SPEC 7): a defense's training hooks, passed to ``train_model``; then
        ``defense`` (the defense's config) must be given and is part of the model's key, and
        the hooks' record (``removed`` ids, ``record`` facts) is saved in the model's meta
        and restored onto ``hooks`` when the model comes from the store, so the defense's
        outcome never depends on whether its model was cached. Without hooks, ``defense`` is
        ignored: such a model (a filter's feature model, RPS's partition models) is keyed
        by its content alone and shared with plain training."""
        if hooks is not None and defense is None:
            raise ValueError("a model trained with defense hooks needs the defense's "
                             "settings for its key")
        defense = defense if hooks is not None else None
        recipe = recipe or self.preset.recipe
        own = self.model_key(data, seed, spec, recipe, defense=defense)
        candidates = [own] + ([self.model_key(data, seed, spec, recipe, other, defense)
                               for other in DEVICE_TYPES if other != self.device.type]
                              if self.any_device else [])
        meta: dict[str, Any] = {"desc": desc, "seed": seed, "device": self.device.type}
        if hooks is not None:
            meta["defense"] = (defense.model_dump(mode="json") if hasattr(defense, "model_dump")
                               else defense)

        train_fn = self.spec(spec).train_fn
        if train_fn and hooks is not None:
            raise ConfigError("a defense that changes how models train (its training hooks) "
                              "cannot run with your own train_fn; audit that defense with "
                              "cpoison's training, or without train_fn")

        def fit(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
            if train_fn:
                return user_train(train_fn, model.to(self.device), data, seed), {}
            extra = {} if hooks is None else {"hooks": hooks}  # plain training: the same call
            return train_model(model.to(self.device), data, recipe, seed, self.device,
                               self.progress, desc, **extra), {}

        model, _ = self.load_or_fit(candidates, lambda: self.build(seed, spec), fit, desc,
                                    meta, hooks)
        return model

    def load_or_fit(
        self, keys: list[str], build: Callable[[], nn.Module],
        fit: Callable[[nn.Module], tuple[nn.Module, dict[str, Any]]], desc: str,
        meta: dict[str, Any] | None = None, hooks: TrainingHooks | None = None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The one way a model (a network, a head) comes into being: the model stored under
        the first of ``keys`` found (``keys[0]`` is its own key; any others, e.g. the same
        model trained on another device type, are only read) with the meta it was saved
        with; else ``fit(build())``, timed, counted in :attr:`trained` and stored under
        ``keys[0]`` with ``meta`` and the facts ``fit`` returns (that meta is returned).

        ``hooks``: a defense's training hooks used by ``fit``; their record (``removed``
        ids, ``record`` facts) is saved with the model and put back onto ``hooks`` when the
        model comes from the store, so a defense's outcome never depends on whether its
        model was cached (a stored model without that record is trained again)."""
        model = build()
        for key in keys:
            stored = self.store.load_model_meta(key, model)
            if stored is None:
                continue
            if hooks is not None and "defense_record" not in stored:
                log.warning("%s: stored model %s lacks its defense record; training it "
                            "again", desc, key)
                model = build()
                break
            if hooks is not None:
                restore_hooks(hooks, stored)
            log.debug("%s: loaded stored model %s", desc, key)
            return model.to(self.device).eval(), stored
        start = time.perf_counter()
        model, facts = fit(model)
        self.train_seconds += time.perf_counter() - start
        self.trained.append(desc)
        record = {**(meta or {}), **facts}
        if hooks is not None:
            record.update(hooks_meta(hooks))
        self.store.save_model(keys[0], model, record)
        return model.to(self.device).eval(), record

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, images, self.device, self.preset.eval_batch_size)

    def features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, F] (on CPU) of ``model`` on ``images``."""
        return predict_features(model, images, self.device, self.preset.eval_batch_size)


def check_train_fn(spec: str) -> Any:
    """The user's training function named by ``spec`` (``package.module:function`` or an
    object given from Python); ConfigError when it cannot be imported or is not callable."""
    from cpoison.models.user import resolve_function

    func = resolve_function(spec)
    if not callable(func) or isinstance(func, nn.Module):
        raise ConfigError(f"train_fn {spec!r} is not a function")
    return func


def user_train(spec: str, model: nn.Module, data: TrainSet, seed: int) -> nn.Module:
    """Train ``model`` with the user's function: ``train_fn(model, data, generator)``, where
    ``data`` is the :class:`~cpoison.training.TrainSet` (a torch ``Dataset`` of ``(x, y)``
    with the poisons applied) and ``generator`` a ``torch.Generator`` seeded from ``seed``
    (for the data order and augmentation, so the benign and poisoned victims of one seed
    draw alike). The function returns the trained model (or None: trained in place)."""
    from cpoison.seeding import make_generator

    func = check_train_fn(spec)
    generator = make_generator(derive_seed(seed, "order"))
    model.train()
    try:
        out = func(model, data, generator)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"train_fn {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    out = model if out is None else out
    if not isinstance(out, nn.Module):
        raise ConfigError(f"train_fn {spec!r} returned a {type(out).__name__}, not the "
                          "trained nn.Module")
    if out is not model:  # a new module: keep the checked wrapper (features, head)
        model.load_state_dict(out.state_dict() if not hasattr(model, "net") or hasattr(
            out, "net") else {f"net.{k}": v for k, v in out.state_dict().items()})
    return model.eval()


def hooks_meta(hooks: TrainingHooks) -> dict[str, Any]:
    """What a defense's training hooks learnt during a run (SPEC 7: the pool ids removed,
    e.g. by EPIC, and the JSON-able record), as saved with the model."""
    return {"defense_removed": [int(i) for i in hooks.removed.flatten().tolist()],
            "defense_record": hooks.record}


def restore_hooks(hooks: TrainingHooks, meta: dict[str, Any]) -> None:
    """Put the saved :func:`hooks_meta` back onto fresh ``hooks`` (a model from the store)."""
    hooks.removed = torch.tensor(meta.get("defense_removed") or [], dtype=torch.long)
    hooks.record = dict(meta.get("defense_record") or {})
