"""What every unit of work needs to rebuild its world, in any process: the run options
(picklable, sent to Ray workers) and the per-process caches of loaded datasets and
workspaces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cpoison.data import ImageDataset, load_dataset
from cpoison.device import get_device
from cpoison.experiments.config import ExperimentConfig, is_user_dataset
from cpoison.experiments.presets import get_preset
from cpoison.experiments.protocol import clear_caches as clear_protocol
from cpoison.experiments.settings import setting_for
from cpoison.experiments.settings.transfer import clear_caches as clear_transfer
from cpoison.experiments.workspace import Workspace
from cpoison.store.artifacts import ArtifactStore


@dataclass(frozen=True)
class RunOptions:
    """How a run's units of work find data, store artifacts and use the machine.

    ``threads``: torch intra-op threads each unit sets (None leaves torch's default; Ray
    workers default to their CPU share, as two torch processes spinning on the same cores
    slow each other several-fold). ``layers``: stores only read, after ``store`` (SPEC 11,
    stores in layers: e.g. a folder of exported cells)."""

    store: str
    data_root: str | None = None
    device: str | None = None
    progress: bool = True
    any_device: bool = False
    threads: int | None = None
    layers: tuple[str, ...] = ()

    def artifact_store(self) -> ArtifactStore:
        """The artifact store: ``store`` written, ``layers`` read after it."""
        return ArtifactStore(self.store, self.layers)


_DATASETS: dict[tuple[object, ...], ImageDataset] = {}
_WORKSPACES: dict[tuple[object, ...], Workspace] = {}


def dataset_for(config: ExperimentConfig, data_root: str | None) -> ImageDataset:
    """The config's dataset, loaded once per process (digits' split depends on the seed).

    A user's data (``dataset: PATH``, SPEC 12) is read by
    :func:`cpoison.data.user.load_user_data`; when it has no test split of its own,
    ``data.test_fraction`` of each class is held out with a split seeded by ``config.seed``.
    Its keys come from its content digest, never from the path."""
    if is_user_dataset(config.dataset):
        from cpoison.data.user import DEFAULT_TEST_FRACTION, load_user_data

        path = Path(config.dataset).expanduser()
        fraction = config.data.test_fraction if config.data else DEFAULT_TEST_FRACTION
        label = config.data.label if config.data else None
        user_key = ("user", str(path.resolve()), fraction, config.seed, label)
        if user_key not in _DATASETS:
            _DATASETS[user_key] = load_user_data(path, test_fraction=fraction,
                                                 seed=config.seed, label=label)
        return _DATASETS[user_key]
    seed = config.seed if config.dataset == "digits" else 0
    key = (config.dataset, str(Path(data_root).resolve()) if data_root else None, seed)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(config.dataset, root=data_root, seed=seed)
    return _DATASETS[key]


def workspace_for(opts: RunOptions, config: ExperimentConfig) -> Workspace:
    """The workspace of ``config``'s dataset, preset, split seed and setting (cached)."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    public = setting_for(config).public_fraction()
    key = (opts, config.dataset, config.data, config.preset, config.precision, config.seed,
           config.setting, public)
    if key not in _WORKSPACES:
        dataset = dataset_for(config, opts.data_root)
        preset = get_preset(config.dataset, config.preset)
        if config.precision is not None:  # pinned by the config over the preset's recipe
            preset = preset.model_copy(update={"recipe": preset.recipe.model_copy(
                update={"precision": config.precision})})
        _WORKSPACES[key] = Workspace.for_dataset(
            dataset, preset, opts.artifact_store(), get_device(opts.device),
            seed=config.seed, setting=config.setting, progress=opts.progress,
            any_device=opts.any_device, public_fraction=public)
    return _WORKSPACES[key]


def clear_caches() -> None:
    """Forget loaded datasets and workspaces (tests; a long-lived process between runs)."""
    _DATASETS.clear()
    _WORKSPACES.clear()
    clear_transfer()
    clear_protocol()
