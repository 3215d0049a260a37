"""Tiny-ImageNet-200 from its extracted folder (SPEC 8).

Layout (as extracted from ``tiny-imagenet-200.zip``)::

    tiny-imagenet-200/
        wnids.txt                       one WordNet id per line; line k is class k
        words.txt                       "<wnid>\\t<names>" for (many more than) 200 wnids
        train/<wnid>/images/<wnid>_<i>.JPEG
        val/images/val_<i>.JPEG
        val/val_annotations.txt         "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"

The labelled validation set is used as the test set (the official test set has no labels).
Images are 64x64; the few grayscale JPEGs are converted to RGB. Class names are the full
``words.txt`` entries (e.g. ``"goldfish, Carassius auratus"``), or the wnid when
``words.txt`` is absent. Train images are ordered by class, then by their number ``<i>``;
test images follow ``val_annotations.txt``.

Decoding needs Pillow. The folder is looked up in ``ROOT/tiny-imagenet-200``, ``ROOT``, then
the user cache (``$CPOISON_CACHE/tiny-imagenet-200``); it is not downloaded automatically.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from tqdm.auto import tqdm

from cpoison.data.base import ImageDataset
from cpoison.data.paths import check_root, describe_dirs, unique_dirs, user_cache_dir
from cpoison.errors import DataError

__all__ = ["FOLDER", "IMAGE_SIZE", "URL", "find_tiny_imagenet", "load_tiny_imagenet"]

NAME = "tiny-imagenet"
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_SIZE = 64
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_NUMBER = re.compile(r"(\d+)(?=\.[^.]+$)")


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    return [line.rstrip("\r") for line in text.split("\n")]


def _search_dirs(root: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    root_path = check_root(root)
    if root_path is not None:
        dirs += [root_path / FOLDER, root_path]
    dirs.append(user_cache_dir() / FOLDER)
    return unique_dirs(dirs)


def find_tiny_imagenet(root: str | Path | None = None) -> Path:
    """The first searched folder holding ``wnids.txt``; DataError if none does."""
    dirs = _search_dirs(root)
    for directory in dirs:
        if (directory / "wnids.txt").is_file():
            return directory
    raise DataError(
        f"Tiny-ImageNet-200 was not found in {describe_dirs(dirs)}; download {URL} and "
        f"unzip it into the data root (it creates {FOLDER}/)"
    )


def _read_wnids(directory: Path) -> list[str]:
    path = directory / "wnids.txt"
    wnids = [line.strip() for line in _read_lines(path) if line.strip()]
    if not wnids:
        raise DataError(f"{str(path)!r} lists no classes; unzip the dataset again")
    dupes = sorted({w for w in wnids if wnids.count(w) > 1})
    if dupes:
        raise DataError(f"{str(path)!r} lists {', '.join(dupes)} more than once; it is corrupt")
    return wnids


def _read_words(directory: Path, wnids: list[str]) -> tuple[str, ...]:
    path = directory / "words.txt"
    words: dict[str, str] = {}
    if path.is_file():
        for line in _read_lines(path):
            wnid, sep, text = line.partition("\t")
            if sep and text.strip():
                words[wnid.strip()] = text.strip()
    return tuple(words.get(w, w) for w in wnids)


def _image_number(path: Path) -> tuple[int, str]:
    match = _NUMBER.search(path.name)
    return (int(match.group(1)) if match else -1, path.name)


def _train_files(directory: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for k, wnid in enumerate(wnids):
        folder = directory / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(
                f"Tiny-ImageNet in {str(directory)!r} is incomplete: {str(folder)!r} is "
                "missing; unzip the dataset again"
            )
        images = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES),
            key=_image_number,
        )
        if not images:
            raise DataError(f"{str(folder)!r} holds no images; unzip the dataset again")
        files += images
        labels += [k] * len(images)
    return files, labels


def _val_files(directory: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    path = directory / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DataError(
            f"Tiny-ImageNet in {str(directory)!r} is incomplete: {str(path)!r} is missing; "
            "unzip the dataset again"
        )
    index = {w: k for k, w in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(
                f"{str(path)!r} line {lineno} is not '<file>\\t<wnid>\\t...'; it is corrupt"
            )
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise DataError(
                f"{str(path)!r} line {lineno} names class {wnid!r}, which is not in wnids.txt"
            )
        if not name or Path(name).name != name:
            raise DataError(f"{str(path)!r} line {lineno} has a bad file name {name!r}")
        files.append(directory / "val" / "images" / name)
        labels.append(index[wnid])
    if not files:
        raise DataError(f"{str(path)!r} lists no images; unzip the dataset again")
    return files, labels


def _decoder() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError(
            "reading Tiny-ImageNet needs Pillow to decode its JPEGs; install it with "
            "`pip install pillow`"
        ) from exc
    return Image


def _decode_into(out: np.ndarray, i: int, path: Path, image_module: ModuleType) -> None:
    """Decode ``path`` as RGB into ``out[i]`` (``[3, 64, 64]``); DataError naming the file."""
    try:
        with image_module.open(path) as im:
            rgb = im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image {str(path)!r} is missing; unzip the dataset again") from exc
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise DataError(
            f"cannot decode image {str(path)!r} ({exc}); it is corrupt or truncated, unzip "
            "the dataset again"
        ) from exc
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"image {str(path)!r} is {rgb.size[0]}x{rgb.size[1]} but Tiny-ImageNet images "
            f"are {IMAGE_SIZE}x{IMAGE_SIZE}; it is not part of the dataset"
        )
    out[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _decode_all(
    files: list[Path], desc: str, progress: bool, workers: int
) -> torch.Tensor:
    image_module = _decoder()
    out = np.empty((len(files), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=None if progress else True)
    with bar:
        if workers <= 1:
            for i, path in enumerate(files):
                _decode_into(out, i, path, image_module)
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_decode_into, out, i, p, image_module)
                           for i, p in enumerate(files)]
                try:
                    for future in futures:
                        future.result()
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    return torch.from_numpy(out)


def load_tiny_imagenet(
    root: str | Path | None = None, *, progress: bool = True, workers: int | None = None
) -> ImageDataset:
    """Tiny-ImageNet-200: ``uint8 [N, 3, 64, 64]``, 200 classes, val set as test set.

    Args:
        root: data root holding ``tiny-imagenet-200/`` (or that folder itself).
        progress: show a progress bar while decoding (on a terminal only).
        workers: decoding threads (default: up to 8, at most the number of CPUs).

    Raises:
        DataError: if the folder is not found (the message says where it looked and where to
            get it), is incomplete, an annotation is malformed, an image is missing, corrupt
            or not 64x64, or Pillow is not installed.
    """
    directory = find_tiny_imagenet(root)
    wnids = _read_wnids(directory)
    classes = _read_words(directory, wnids)
    train_files, train_labels = _train_files(directory, wnids)
    test_files, test_labels = _val_files(directory, wnids)
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    return ImageDataset(
        NAME,
        _decode_all(train_files, "tiny-imagenet train", progress, n_workers),
        torch.tensor(train_labels, dtype=torch.int64),
        _decode_all(test_files, "tiny-imagenet val", progress, n_workers),
        torch.tensor(test_labels, dtype=torch.int64),
        classes,
    )
