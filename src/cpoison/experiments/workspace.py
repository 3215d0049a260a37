"""A workspace ties a dataset, a preset, a role split, a device and the model cache together,
so that every experiment trains (or loads) models the same way and nothing is trained twice."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from cpoison.data import ImageDataset, load_dataset
from cpoison.data.splits import RoleSplit, make_split
from cpoison.device import get_device
from cpoison.experiments.presets import Preset
from cpoison.training import (
    TRAINER_VERSION,
    ModelCache,
    Recipe,
    TrainSet,
    build_seeded_model,
    cache_key,
    default_cache_dir,
    predict_features,
    predict_logits,
    tensor_digest,
    train_model,
)

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """Dataset + preset + split + device + cache. Build with :meth:`open`."""

    dataset: ImageDataset
    preset: Preset
    split: RoleSplit
    device: torch.device
    cache: ModelCache
    progress: bool = True
    train_seconds: float = field(default=0.0, init=False)

    @classmethod
    def open(
        cls,
        preset: Preset,
        seed: int = 0,
        setting: str = "black-box",
        data_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        device: str | None = None,
        progress: bool = True,
        use_cache: bool = True,
    ) -> Workspace:
        """``cache_dir`` None means the default model cache (``$CPOISON_CACHE`` or
        ``~/.cache/cpoison``); ``use_cache=False`` trains every model afresh."""
        dataset = load_dataset(preset.dataset, root=data_root, seed=seed)
        split = make_split(
            dataset.train_labels.numel(), seed, victim_size=preset.victim_size,
            attacker_size=preset.attacker_size, setting=setting,  # type: ignore[arg-type]
        )
        if use_cache and cache_dir is None:
            cache_dir = default_cache_dir()
        cache = ModelCache(cache_dir if use_cache else None)
        return cls(dataset, preset, split, get_device(device), cache, progress)

    def build(self, seed: int, arch: str | None = None, **kwargs: object) -> nn.Module:
        """A freshly initialised model of the preset's (or ``arch``'s) architecture."""
        c, h, _ = self.dataset.input_shape
        arch = arch or self.preset.model
        kw = dict(self.preset.model_kwargs) if arch == self.preset.model else {}
        kw.update(kwargs)
        return build_seeded_model(arch, c, self.dataset.num_classes, h, seed, **kw)

    def trainset(self, indices: torch.Tensor) -> TrainSet:
        return TrainSet(self.dataset.train_images, self.dataset.train_labels, indices)

    def train(
        self,
        data: TrainSet,
        seed: int,
        desc: str = "train",
        recipe: Recipe | None = None,
        arch: str | None = None,
    ) -> nn.Module:
        """Train (or load from cache) a model on ``data`` with initial weights and data order
        from ``seed``; the cache key covers dataset, indices, poisons, recipe, arch and seed."""
        recipe = recipe or self.preset.recipe
        arch = arch or self.preset.model
        key = cache_key(
            dataset=self.dataset.name, data=tensor_digest(data.indices),
            poisons=tensor_digest(data.poison_ids, data.poison_delta), recipe=recipe,
            arch=arch, kwargs=self.preset.model_kwargs if arch == self.preset.model else {},
            seed=seed, trainer=TRAINER_VERSION,
        )
        model = self.build(seed, arch).to(self.device)

        def _train(m: nn.Module) -> nn.Module:
            start = time.perf_counter()
            m = train_model(m, data, recipe, seed, self.device, self.progress, desc)
            self.train_seconds += time.perf_counter() - start
            return m

        model, cached = self.cache.get_or_train(key, model, _train, {"desc": desc, "seed": seed})
        if cached:
            log.info("%s: loaded cached model %s", desc, key)
        return model.to(self.device).eval()

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, images, self.device, self.preset.eval_batch_size)

    def features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, F] (on CPU) of ``model`` on ``images``."""
        return predict_features(model, images, self.device, self.preset.eval_batch_size)
