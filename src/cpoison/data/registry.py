"""One entry point for every dataset: :func:`load_dataset` by name (SPEC 8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cpoison.data.base import ImageDataset
from cpoison.data.paths import check_root
from cpoison.errors import DataError

__all__ = ["DATASETS", "canonical_name", "load_dataset", "register_dataset"]

DATASETS: tuple[str, ...] = ("fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "digits")
"""Names of the package's datasets (:func:`load_dataset` also takes registered ones)."""

_ALIASES: dict[str, str] = {
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet",
}


def canonical_name(name: str) -> str:
    """The registry name for ``name`` (case, ``_`` vs ``-`` and a few aliases are forgiven).

    Raises:
        DataError: for an unknown name, listing the valid ones.
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(_LOADERS)}")
    return key


def _fashion_mnist(root: Path | None, download: bool, seed: int) -> ImageDataset:
    from cpoison.data.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist(root, download=download)


def _cifar10(root: Path | None, download: bool, seed: int) -> ImageDataset:
    from cpoison.data.cifar import load_cifar10

    return load_cifar10(root)


def _cifar100(root: Path | None, download: bool, seed: int) -> ImageDataset:
    from cpoison.data.cifar import load_cifar100

    return load_cifar100(root)


def _tiny_imagenet(root: Path | None, download: bool, seed: int) -> ImageDataset:
    from cpoison.data.tiny_imagenet import load_tiny_imagenet

    return load_tiny_imagenet(root)


def _digits(root: Path | None, download: bool, seed: int) -> ImageDataset:
    from cpoison.data.digits import load_digits

    return load_digits(seed=seed)


_LOADERS: dict[str, Callable[[Path | None, bool, int], ImageDataset]] = {
    "fashion-mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "tiny-imagenet": _tiny_imagenet,
    "digits": _digits,
}


def register_dataset(name: str, loader: Callable[[Path | None, bool, int], ImageDataset]
                     ) -> None:
    """Add a dataset to the table (a plugin, a test; a dataset of the package is a loader
    module and one line in ``_LOADERS``): ``loader(root, download, seed)`` returns an
    :class:`~cpoison.data.base.ImageDataset`. Configs may then name it (with a preset that
    exists for any dataset, e.g. ``audit``, unless one is added for it)."""
    _LOADERS[str(name).strip().lower().replace("_", "-")] = loader


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
) -> ImageDataset:
    """Load a dataset by name.

    Args:
        name: one of :data:`DATASETS`.
        root: data root searched first (must be an existing directory if given); each
            loader's docstring says which layouts it accepts under it.
        download: allow downloading into the user cache. Only Fashion-MNIST is downloaded;
            CIFAR and Tiny-ImageNet must be placed under ``root`` or the user cache by hand,
            and digits ships with scikit-learn.
        seed: seed of the train/test split of datasets without an official one (digits);
            ignored by the others.

    Raises:
        DataError: for an unknown name (listing the valid ones), a missing root (naming it),
            or any loader error (missing, truncated or corrupt files).
    """
    key = canonical_name(name)
    root_path = check_root(root)
    return _LOADERS[key](root_path, download, seed)
