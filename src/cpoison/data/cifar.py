"""CIFAR-10 and CIFAR-100 from the official "python version" pickle files (SPEC 8).

Layouts (as extracted from ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``)::

    cifar-10-batches-py/  data_batch_1 ... data_batch_5, test_batch, batches.meta
    cifar-100-python/     train, test, meta

Every batch is a pickled dict with byte-string keys: ``data`` (``uint8 [N, 3072]``, each row
1024 red, then 1024 green, then 1024 blue values of a 32x32 image in row-major order, so it
reshapes to ``[N, 3, 32, 32]``), ``labels`` (CIFAR-10) or ``fine_labels`` / ``coarse_labels``
(CIFAR-100; the fine labels are used), plus ``batch_label`` and ``filenames``. The meta file
holds ``label_names`` (CIFAR-10) or ``fine_label_names`` / ``coarse_label_names``.

The files are read with :mod:`cpoison.data.safe_pickle` (never the stock unpickler). They are
looked up in ``ROOT/<folder>``, then ``ROOT`` itself, then the user cache
(``$CPOISON_CACHE/<folder>``). They are not downloaded automatically: the error message says
where to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cpoison.data.base import ImageDataset
from cpoison.data.paths import check_root, describe_dirs, unique_dirs, user_cache_dir
from cpoison.data.safe_pickle import load_restricted_pickle
from cpoison.errors import DataError

__all__ = ["CIFAR10", "CIFAR100", "CifarLayout", "load_cifar", "load_cifar10", "load_cifar100"]

_ROW = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """On-disk layout of one CIFAR variant."""

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    url: str


CIFAR10 = CifarLayout(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)

CIFAR100 = CifarLayout(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
)


def _text(value: object) -> str:
    """A key or name from the pickle (bytes under ``encoding='bytes'``) as ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _load_dict(path: Path) -> dict[str, Any]:
    """Unpickle ``path`` (restricted) and return the dict with ``str`` keys."""
    obj = load_restricted_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(
            f"{str(path)!r} holds a {type(obj).__name__}, not the dict of a CIFAR batch; "
            "extract it again from the official archive"
        )
    return {_text(k): v for k, v in obj.items()}


def _require(d: dict[str, Any], key: str, path: Path) -> Any:
    if key not in d:
        raise DataError(
            f"{str(path)!r} has no {key!r} entry (it has {sorted(d)}); it is not a CIFAR "
            "file of this kind, extract it again from the official archive"
        )
    return d[key]


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]`` of one batch file."""
    d = _load_dict(path)
    data = _require(d, "data", path)
    raw_labels = _require(d, layout.label_key, path)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _ROW):
        desc = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise DataError(
            f"{str(path)!r}: 'data' should be a uint8 array [N, {_ROW}] but is a {desc}"
        )
    try:
        labels = np.array(raw_labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{str(path)!r}: {layout.label_key!r} is not a list of integers") from exc
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(
            f"{str(path)!r} holds {data.shape[0]} images but {labels.size} "
            f"{layout.label_key!r}; the file is corrupt"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DataError(
            f"{str(path)!r}: labels range over [{labels.min()}, {labels.max()}] but "
            f"{layout.title} has {layout.num_classes} classes; the file is corrupt"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _read_names(path: Path, layout: CifarLayout) -> tuple[str, ...]:
    names = _require(_load_dict(path), layout.names_key, path)
    if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
        count = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise DataError(
            f"{str(path)!r}: {layout.names_key!r} should list {layout.num_classes} class "
            f"names but has {count}; the file is corrupt"
        )
    return tuple(_text(n) for n in names)


def _search_dirs(layout: CifarLayout, root: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    root_path = check_root(root)
    if root_path is not None:
        dirs += [root_path / layout.folder, root_path]
    dirs.append(user_cache_dir() / layout.folder)
    return unique_dirs(dirs)


def find_cifar(layout: CifarLayout, root: str | Path | None = None) -> Path:
    """The first searched folder holding the layout's meta file; DataError if none does."""
    dirs = _search_dirs(layout, root)
    for directory in dirs:
        if (directory / layout.meta_file).is_file():
            return directory
    raise DataError(
        f"{layout.title} was not found in {describe_dirs(dirs)}; download {layout.url} and "
        f"extract it into the data root (it creates {layout.folder}/)"
    )


def load_cifar(layout: CifarLayout, root: str | Path | None = None) -> ImageDataset:
    """Load a CIFAR variant described by ``layout`` (see :func:`load_cifar10`)."""
    directory = find_cifar(layout, root)
    needed = (*layout.train_files, layout.test_file)
    missing = [f for f in needed if not (directory / f).is_file()]
    if missing:
        raise DataError(
            f"{layout.title} in {str(directory)!r} is incomplete: {', '.join(missing)} "
            f"missing; extract {layout.url} again"
        )
    classes = _read_names(directory / layout.meta_file, layout)
    parts = [_read_batch(directory / f, layout) for f in layout.train_files]
    train_x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0].copy()
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_batch(directory / layout.test_file, layout)
    return ImageDataset(
        layout.name,
        torch.from_numpy(np.ascontiguousarray(train_x)),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x.copy()),
        torch.from_numpy(test_y),
        classes,
    )


def load_cifar10(root: str | Path | None = None) -> ImageDataset:
    """CIFAR-10: 50,000 train + 10,000 test images, ``uint8 [N, 3, 32, 32]``, 10 classes.

    Raises:
        DataError: if ``cifar-10-batches-py`` is not found (the message says where it looked
            and where to download it), is incomplete, or a file is corrupt or not a CIFAR
            batch (including pickles that reference anything but numpy arrays).
    """
    return load_cifar(CIFAR10, root)


def load_cifar100(root: str | Path | None = None) -> ImageDataset:
    """CIFAR-100 with its 100 fine labels: 50,000 train + 10,000 test, ``uint8 [N,3,32,32]``.

    Raises:
        DataError: as :func:`load_cifar10`, for ``cifar-100-python``.
    """
    return load_cifar(CIFAR100, root)
