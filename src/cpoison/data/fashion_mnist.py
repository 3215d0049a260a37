"""Fashion-MNIST (SPEC 8): 60,000 train + 10,000 test images, 1x28x28, 10 classes.

The four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``) are looked up,
in order, in

1. the data root given by the user (the files directly in it, or in its ``fashion-mnist/`` or
   torchvision-style ``FashionMNIST/raw/`` sub-folder),
2. the user cache, ``$CPOISON_CACHE/fashion-mnist`` (default
   ``~/.cache/cpoison/fashion-mnist``),
3. the folder of the Debian package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist``).

The first folder holding all four files wins. If none does and downloading is allowed, the
missing files are downloaded into the user cache from the official mirrors (or from
``$CPOISON_FASHION_MNIST_URL`` / the ``base_url`` argument), each verified against the SHA-256
of the official ``.gz`` file.

Checksums. The Debian package ships the official *content* re-compressed: its ``.gz`` headers
carry no file name and a 2020 time stamp, so its bytes (and MD5s) differ from the official
files' published MD5s (e.g. ``8d4fb7e6...`` for ``train-images-idx3-ubyte.gz``), and hashing
the Debian ``.gz`` files would make every real download fail. Two constants are kept:

* :data:`OFFICIAL_GZ_SHA256` -- SHA-256 of the official ``.gz`` files as served by the
  mirrors, taken from published checksum lists (two independent ones agree); downloads are
  verified against it.
* :data:`CONTENT_SHA256` -- SHA-256 of the decompressed IDX files, computed from the Debian
  copies; identical for every faithful copy whatever its compression. :func:`verify_content`
  checks the files found against it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from cpoison.data.base import ImageDataset
from cpoison.data.download import download_file
from cpoison.data.idx import file_bytes, read_idx
from cpoison.data.paths import check_root, describe_dirs, unique_dirs, user_cache_dir
from cpoison.errors import DataError

__all__ = [
    "CLASSES",
    "CONTENT_SHA256",
    "FILES",
    "MIRRORS",
    "OFFICIAL_GZ_SHA256",
    "SYSTEM_DIRS",
    "URL_ENV",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "search_dirs",
    "verify_content",
]

NAME = "fashion-mnist"
SUBDIR = "fashion-mnist"

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
"""Base names of the four files; each may be stored raw or with a ``.gz`` suffix."""

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

OFFICIAL_GZ_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    TRAIN_LABELS: "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    TEST_IMAGES: "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    TEST_LABELS: "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
"""SHA-256 of the official ``<name>.gz`` files served by the mirrors."""

CONTENT_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of the decompressed IDX files (computed from the Debian package's copies)."""

MIRRORS: tuple[str, ...] = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
"""Official download locations, tried in order (HTTP is fine: files are SHA-256 checked)."""

URL_ENV = "CPOISON_FASHION_MNIST_URL"
"""Environment variable naming a base URL that replaces :data:`MIRRORS` (e.g. a local mirror)."""

SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
"""Folders of system packages (Debian ``dataset-fashion-mnist``), searched last."""

_HOW_TO_GET = (
    "install it with `apt-get install dataset-fashion-mnist`, or put the four files ("
    + ", ".join(f"{n}.gz" for n in FILES)
    + ") in a folder and pass it as the data root"
)


def _file_in(directory: Path, name: str) -> Path | None:
    """``directory/name.gz`` or ``directory/name`` (in that order), if it is a file."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _cache_dir() -> Path:
    return user_cache_dir() / SUBDIR


def search_dirs(root: str | Path | None = None) -> list[Path]:
    """The folders searched for the files, in order (see the module docstring)."""
    dirs: list[Path] = []
    root_path = check_root(root)
    if root_path is not None:
        dirs += [root_path, root_path / SUBDIR, root_path / "FashionMNIST" / "raw"]
    dirs.append(_cache_dir())
    dirs += list(SYSTEM_DIRS)
    return unique_dirs(dirs)


def find_fashion_mnist(root: str | Path | None = None) -> dict[str, Path] | None:
    """The four files (base name -> path) from the first folder holding all of them."""
    for directory in search_dirs(root):
        found = {name: _file_in(directory, name) for name in FILES}
        if all(found.values()):
            return {name: path for name, path in found.items() if path is not None}
    return None


def _base_urls(base_url: str | None) -> tuple[str, ...]:
    """``base_url`` if given, else ``$CPOISON_FASHION_MNIST_URL`` if set, else the mirrors."""
    chosen = base_url or os.environ.get(URL_ENV, "").strip()
    return (chosen,) if chosen else MIRRORS


def _download_missing(
    root: str | Path | None, base_url: str | None, timeout: float, progress: bool
) -> dict[str, Path]:
    """Download the files missing from the user cache; return the four cached files."""
    cache = _cache_dir()
    for name in FILES:
        if _file_in(cache, name) is not None:
            continue
        errors: list[str] = []
        for base in _base_urls(base_url):
            url = base.rstrip("/") + f"/{name}.gz"
            try:
                download_file(url, cache / f"{name}.gz", OFFICIAL_GZ_SHA256[name], timeout,
                              progress=progress)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            looked = describe_dirs(search_dirs(root))
            raise DataError(
                f"Fashion-MNIST was not found in {looked}, and downloading it failed "
                f"({'; '.join(errors)}); {_HOW_TO_GET}"
            )
    files = {name: _file_in(cache, name) for name in FILES}
    return {name: path for name, path in files.items() if path is not None}


def _to_tensors(images: np.ndarray, labels: np.ndarray, img_path: Path, lab_path: Path
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Check one split's arrays against each other and convert them to tensors."""
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{str(img_path)!r} holds {images.shape[0]} images but {str(lab_path)!r} holds "
            f"{labels.shape[0]} labels; the files do not belong together"
        )
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise DataError(
            f"{str(lab_path)!r} contains label {int(labels.max())} but Fashion-MNIST has "
            f"{len(CLASSES)} classes; the file is corrupt or not a Fashion-MNIST file"
        )
    return (
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
    )


def load_fashion_mnist(
    root: str | Path | None = None,
    download: bool = True,
    *,
    base_url: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> ImageDataset:
    """Load Fashion-MNIST as ``uint8`` ``[N, 1, 28, 28]`` images and ``int64`` labels.

    Args:
        root: optional data root, searched first (must exist if given).
        download: download the files into the user cache if they are found nowhere.
        base_url: download from this base URL instead of ``$CPOISON_FASHION_MNIST_URL`` or
            the official mirrors.
        timeout: seconds per network operation when downloading.
        progress: show a download progress bar (on a terminal only).

    Raises:
        DataError: if the files are missing everywhere and cannot be downloaded (the message
            lists where it looked and how to get them), or a file is truncated or corrupt.
    """
    files = find_fashion_mnist(root)
    if files is None:
        if not download:
            raise DataError(
                f"Fashion-MNIST was not found in {describe_dirs(search_dirs(root))}, and "
                f"downloading is disabled; {_HOW_TO_GET}"
            )
        files = _download_missing(root, base_url, timeout, progress)
    train_x, train_y = _to_tensors(
        read_idx(files[TRAIN_IMAGES], ndim=3, dtype="uint8"),
        read_idx(files[TRAIN_LABELS], ndim=1, dtype="uint8"),
        files[TRAIN_IMAGES], files[TRAIN_LABELS],
    )
    test_x, test_y = _to_tensors(
        read_idx(files[TEST_IMAGES], ndim=3, dtype="uint8"),
        read_idx(files[TEST_LABELS], ndim=1, dtype="uint8"),
        files[TEST_IMAGES], files[TEST_LABELS],
    )
    return ImageDataset(NAME, train_x, train_y, test_x, test_y, CLASSES)


def verify_content(root: str | Path | None = None) -> dict[str, bool]:
    """Whether each file found by :func:`find_fashion_mnist` has the official content.

    Compares the SHA-256 of the decompressed bytes with :data:`CONTENT_SHA256`.

    Raises:
        DataError: if the files are not found.
    """
    files = find_fashion_mnist(root)
    if files is None:
        raise DataError(
            f"Fashion-MNIST was not found in {describe_dirs(search_dirs(root))}; {_HOW_TO_GET}"
        )
    return {
        name: hashlib.sha256(file_bytes(path)).hexdigest() == CONTENT_SHA256[name]
        for name, path in files.items()
    }
