"""A user's own data (SPEC 12): an ImageFolder, an ``.npz`` file, a CSV file of feature
vectors or a torch ``Dataset``.

Every loader returns an :class:`~cpoison.data.base.ImageDataset` (``uint8 [N, C, H, W]``)
and checks what it reads, with one :class:`~cpoison.errors.DataError` naming each problem
(a missing path, an empty class folder, mixed image sizes naming two files, an unreadable
image by its path, labels outside 0..K-1, float pixels outside [0, 1], NaN, wrong ranks).

When the user gives no separate test split, :func:`stratified_split` draws one from their
data: per class, ``round(test_fraction * n_c)`` images (at least 1 when the class has 2 or
more, never all of them; a class with one image stays in the train pool), chosen by a
permutation seeded with ``derive_seed(seed, "user-split", class)``. Default
``test_fraction`` = 0.2 (:data:`DEFAULT_TEST_FRACTION`). The train pool is then split into
the SPEC 2 roles by :mod:`cpoison.data.splits`; targets come from the test set.

Pixels: uint8 are kept as they are; float pixels in [0, 1] are stored as
``round(255 * x)`` (the ImageDataset is uint8; the quantisation error is at most 1/510).
Grayscale images ("1", "L", "LA") give one channel; any other 8-bit mode is converted to
RGB (alpha dropped); if any image of a folder is colour, all are read as RGB.

>>> ds = load_user_data("my_images/")          # ImageFolder: my_images/<class>/<image>.png
>>> ds = load_user_data("my_data.npz", seed=1)  # x, y (and optionally x_test, y_test)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cpoison.data.base import ImageDataset
from cpoison.errors import DataError
from cpoison.seeding import derive_seed

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "IMAGE_SUFFIXES",
    "from_arrays",
    "from_torch_dataset",
    "load_csv",
    "load_image_folder",
    "load_npz",
    "load_user_data",
    "stratified_split",
]

log = logging.getLogger(__name__)

DEFAULT_TEST_FRACTION = 0.2
"""Share of each class held out as the test set when the user gives no test split."""

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""Files of a class folder read as images (case-insensitive); other files are ignored."""

_GRAY_MODES = ("1", "L", "LA")
_UNSUPPORTED_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def stratified_split(
    labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded per-class split of ``labels`` into (train pool, test) index tensors, each sorted
    (module docstring for the rule).

    Raises:
        DataError: ``test_fraction`` outside (0, 1), or no class with 2+ images.
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    train: list[torch.Tensor] = []
    test: list[torch.Tensor] = []
    for c in torch.unique(labels).tolist():
        ids = torch.nonzero(labels == c).flatten()
        n = ids.numel()
        n_test = 0 if n < 2 else min(n - 1, max(1, round(test_fraction * n)))
        gen = torch.Generator().manual_seed(derive_seed(seed, "user-split", c) % 2**63)
        perm = ids[torch.randperm(n, generator=gen)]
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    test_ids = torch.cat(test).sort().values
    if test_ids.numel() == 0:
        raise DataError("every class has a single image: no test set can be held out; "
                        "give at least 2 images per class or a separate test split")
    return torch.cat(train).sort().values, test_ids


def _check_labels(name: str, labels: torch.Tensor, num_classes: int, what: str) -> None:
    if labels.numel() == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise DataError(f"{name}: {what} holds label {bad}, outside 0..{num_classes - 1} "
                        f"({num_classes} classes); labels must be integers 0..K-1")


def _assemble(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor] | None,
    classes: Sequence[str] | None,
    num_classes: int | None,
    test_fraction: float,
    seed: int,
) -> ImageDataset:
    """Check labels against K, split off a test set when none is given, build the dataset."""
    every = labels if test is None else torch.cat([labels, test[1]])
    if classes is not None:
        k = len(classes)
    elif num_classes is not None:
        k = num_classes
    else:
        k = int(every.max()) + 1 if every.numel() else 0
    if k < 2:
        raise DataError(f"{name}: found {k} class; an audit needs at least 2 classes")
    _check_labels(name, labels, k, "y" if test is not None else "the labels")
    if test is not None:
        _check_labels(name, test[1], k, "y_test")
    missing = sorted(set(range(k)) - set(labels.tolist()))
    if missing:
        log.warning("%s: classes %s have no training image", name, missing[:10])
    if test is None:
        train_ids, test_ids = stratified_split(labels, test_fraction, seed)
        test = (images[test_ids], labels[test_ids])
        images, labels = images[train_ids], labels[train_ids]
    names = tuple(str(c) for c in classes) if classes is not None else tuple(
        str(c) for c in range(k))
    if images.dtype != torch.uint8:  # feature vectors: standardised with the train split's
        mean = images.mean(0, dtype=torch.float64)  # mean and standard deviation
        std = images.std(0).double() if images.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 0, std, torch.ones_like(std))
        images, test_x = ((t.double() - mean) / std for t in (images, test[0]))
        return ImageDataset(name, images.float().contiguous(), labels,
                            test_x.float().contiguous(), test[1], names, kind="features")
    return ImageDataset(name, images.contiguous(), labels, test[0].contiguous(), test[1], names)


# --------------------------------------------------------------------------------------------
# Arrays (.npz and torch datasets end here)


def _images_from_array(name: str, x: np.ndarray, key: str) -> torch.Tensor:
    """[N, H, W] or [N, H, W, C], uint8 / integer 0..255 / float in [0, 1] -> uint8 NCHW."""
    if x.ndim not in (3, 4):
        raise DataError(f"{name}: {key} must have shape [N, H, W] or [N, H, W, C] (images) "
                        f"or [N, D] (feature vectors), got {x.ndim} dimensions "
                        f"{tuple(x.shape)}")
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[0] == 0:
        raise DataError(f"{name}: {key} holds no image")
    if x.shape[-1] > 4:
        hint = " (channels first? use np.moveaxis(x, 1, -1))" if x.shape[1] <= 4 else ""
        raise DataError(f"{name}: {key} has {x.shape[-1]} channels in its last axis; "
                        f"expected [N, H, W, C] with C <= 4{hint}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{name}: {key} has dtype {x.dtype}; expected uint8 (0..255) or "
                        "float in [0, 1]")
    if np.issubdtype(x.dtype, np.floating):
        if np.isnan(x).any():
            raise DataError(f"{name}: {key} holds NaN pixel values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise DataError(f"{name}: float pixels of {key} must be in [0, 1], found "
                            f"[{lo:g}, {hi:g}] (scale by 1/255 or save as uint8)")
        x = np.rint(x.astype(np.float64) * 255.0).astype(np.uint8)
    elif x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{name}: integer pixels of {key} must be in 0..255, found "
                            f"[{lo}, {hi}]")
        x = x.astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _features_from_array(name: str, x: np.ndarray, key: str) -> torch.Tensor:
    """Feature vectors [N, D] (numbers, no NaN or infinity) -> float64 tensor."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{name}: {key} holds no feature vector (shape {tuple(x.shape)})")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{name}: {key} has dtype {x.dtype}; feature vectors must be numbers")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(x)))
        raise DataError(f"{name}: {key} holds NaN or infinite values (first at row {row}, "
                        f"column {col}); impute or drop them first")
    return torch.from_numpy(np.ascontiguousarray(x))


def _labels_from_array(name: str, y: np.ndarray, key: str, n: int) -> torch.Tensor:
    if y.ndim != 1:
        raise DataError(f"{name}: {key} must be a vector of N labels, got shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise DataError(f"{name}: {n} images but {y.shape[0]} labels in {key}")
    if np.issubdtype(y.dtype, np.floating):
        if np.isnan(y).any():
            raise DataError(f"{name}: {key} holds NaN labels")
        if not np.all(y == np.round(y)):
            raise DataError(f"{name}: {key} holds non-integer labels; labels are class "
                            "indices 0..K-1")
    elif not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{name}: {key} has dtype {y.dtype}; labels must be integers 0..K-1")
    if y.size and int(y.min()) < 0:
        raise DataError(f"{name}: {key} holds the negative label {int(y.min())}; labels must "
                        "be integers 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    name: str = "arrays",
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Build a dataset from NumPy arrays (the ``.npz`` layout of SPEC 12; see
    :func:`load_npz`). ``classes`` (names) or ``num_classes`` fix K; else K = max label + 1.

    A 2-D ``x`` ``[N, D]`` holds feature vectors (tabular data): any finite numbers,
    standardised with the train split's per-feature mean and standard deviation (a constant
    feature is only centred), so an attack's ``eps`` is in standard deviations.

    Raises:
        DataError: any check of the module docstring fails.
    """
    features = np.asarray(x).ndim == 2
    read = _features_from_array if features else _images_from_array
    images = read(name, np.asarray(x), "x")
    labels = _labels_from_array(name, np.asarray(y), "y", images.shape[0])
    test = None
    if (x_test is None) != (y_test is None):
        raise DataError(f"{name}: give both x_test and y_test, or neither")
    if x_test is not None and y_test is not None:
        x_test = np.asarray(x_test)
        if features and x_test.ndim != 2:
            raise DataError(f"{name}: x holds feature vectors [N, D] but x_test has shape "
                            f"{tuple(x_test.shape)}")
        t_images = read(name, x_test, "x_test")
        if t_images.shape[1:] != images.shape[1:]:
            what = "(D,)" if features else "(C, H, W)"
            raise DataError(f"{name}: x items are {tuple(images.shape[1:])} {what} but "
                            f"x_test items are {tuple(t_images.shape[1:])}")
        test = (t_images, _labels_from_array(name, np.asarray(y_test), "y_test",
                                             t_images.shape[0]))
    return _assemble(name, images, labels, test, classes, num_classes, test_fraction, seed)


def load_npz(
    path: str | Path,
    *,
    name: str | None = None,
    num_classes: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Read an ``.npz`` with ``np.load(..., allow_pickle=False)`` (SPEC 10, 12).

    Keys: ``x`` ([N, H, W] or [N, H, W, C]; uint8, or float in [0, 1]; or feature vectors
    [N, D], see :func:`from_arrays`), ``y`` (int labels
    0..K-1), optionally ``x_test`` / ``y_test`` (else a seeded stratified split holds out
    ``test_fraction`` of each class) and ``classes`` (a string array of class names).

    Raises:
        DataError: a missing or unreadable file, a missing key, object (pickled) arrays, or
            any check of the module docstring.
    """
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            for key in ("x", "y"):
                if key not in keys:
                    raise DataError(f"{path}: no array {key!r} in the file (it holds "
                                    f"{', '.join(sorted(keys)) or 'nothing'}); expected x, y "
                                    "and optionally x_test, y_test, classes")
            arrays = {k: npz[k] for k in ("x", "y", "x_test", "y_test", "classes") if k in keys}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: holds object arrays, which need pickle; cpoison never "
                            "unpickles data. Save plain numeric arrays (np.savez(path, x=..., "
                            "y=...)) with a string array for class names") from None
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    classes = None
    if "classes" in arrays:
        c = arrays["classes"]
        if c.ndim != 1 or c.dtype.kind not in "US":
            raise DataError(f"{path}: 'classes' must be a 1-D string array, got dtype "
                            f"{c.dtype} and shape {tuple(c.shape)}")
        classes = [str(v.decode() if isinstance(v, bytes) else v) for v in c.tolist()]
    return from_arrays(arrays["x"], arrays["y"], arrays.get("x_test"), arrays.get("y_test"),
                       name=name, classes=classes, num_classes=num_classes,
                       test_fraction=test_fraction, seed=seed)


# --------------------------------------------------------------------------------------------
# CSV (feature vectors)


def load_csv(
    path: str | Path,
    *,
    label: str | int | None = None,
    name: str | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Read tabular data from a CSV file: one row per example, numeric feature columns and
    one label column (``label``: its header name or index; default the last column). With a
    header row (detected when the first row is not all numbers) columns have names. Labels
    that are exactly the integers 0..K-1 are used as they are; any other labels (names,
    other numbers) are classes in sorted order. Features are standardised (:func:`from_arrays`).

    Raises:
        DataError: a missing or empty file, rows of different lengths, an unknown label
            column, a non-numeric or missing feature value (naming its row and column).
    """
    import csv

    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the file holds no rows")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = None if all(numeric(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header is not None else rows
    if not body:
        raise DataError(f"{path}: a header row but no data rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column")
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"{path}: row {i + 1 + (header is not None)} has {len(row)} "
                            f"columns, the first row {width}")
    if label is None:
        col = width - 1
    elif header is not None and str(label) in header:
        col = header.index(str(label))
    elif isinstance(label, int) or str(label).lstrip("-").isdigit():
        col = int(label) % width if -width <= int(label) < width else -1
        if col < 0:
            raise DataError(f"{path}: label column {label} is outside 0..{width - 1}")
    else:
        raise DataError(f"{path}: no column named {label!r}"
                        + (f"; columns: {', '.join(header)}" if header else " (no header row)"))
    features = np.empty((len(body), width - 1), dtype=np.float64)
    feature_cols = [c for c in range(width) if c != col]
    for i, row in enumerate(body):
        for j, c in enumerate(feature_cols):
            try:
                features[i, j] = float(row[c])
            except ValueError:
                what = header[c] if header else f"column {c}"
                raise DataError(f"{path}: row {i + 1 + (header is not None)}, {what}: "
                                f"{row[c]!r} is not a number (encode categories as numbers "
                                "first)") from None
    raw = [row[col].strip() for row in body]
    distinct = set(raw)
    if all(v.isdigit() for v in distinct) and {int(v) for v in distinct} == set(
            range(len(distinct))):
        y, classes = np.asarray([int(v) for v in raw], dtype=np.int64), None
    else:  # names (or other numbers): classes in sorted order, numbers by value
        classes = sorted(distinct, key=lambda v: (0, float(v), v) if numeric(v) else (1, 0.0, v))
        index = {c: k for k, c in enumerate(classes)}
        y = np.asarray([index[v] for v in raw], dtype=np.int64)
    return from_arrays(features, y, name=name, classes=classes, test_fraction=test_fraction,
                       seed=seed)


# --------------------------------------------------------------------------------------------
# ImageFolder


def _read_image(path: Path, rgb: bool | None) -> np.ndarray:
    """One image file -> uint8 [H, W, C] (C = 1 grayscale, 3 colour); ``rgb`` None: native."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in _UNSUPPORTED_MODES:
                raise DataError(f"{path}: {mode} images (16-bit or float) are not supported; "
                                "save 8-bit grayscale or RGB images")
            gray = mode in _GRAY_MODES if rgb is None else not rgb
            arr = np.asarray(img.convert("L" if gray else "RGB"))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class subfolders; the ImageFolder layout is "
                        f"{root}/<class name>/<image>.png (one subfolder per class)")
    return folders


def _folder_files(root: Path, class_names: list[str], labels: list[int]) -> list[tuple[Path, int]]:
    """(file, label) of ``root/<class>/*`` for each class name with its label."""
    files: list[tuple[Path, int]] = []
    for label, cls in zip(labels, class_names):
        folder = root / cls
        found = _image_files(folder) if folder.is_dir() else []
        if not found:
            raise DataError(f"class folder {folder} holds no image "
                            f"({'/'.join(IMAGE_SUFFIXES)}); remove it or add images")
        files += [(f, label) for f in found]
    return files


def _read_files(files: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, C, H, W] (all RGB if any is colour) and labels of ``files``."""
    arrays = [_read_image(f, None) for f, _ in files]
    if any(a.shape[2] == 3 for a in arrays):
        arrays = [a if a.shape[2] == 3 else np.repeat(a, 3, axis=2) for a in arrays]
    first_shape, first_file = arrays[0].shape[:2], files[0][0]
    for a, (f, _) in zip(arrays, files):
        if a.shape[:2] != first_shape:
            raise DataError(
                f"mixed image sizes: {first_file} is {first_shape[1]}x{first_shape[0]} but "
                f"{f} is {a.shape[1]}x{a.shape[0]} (width x height); resize every image to "
                "one size"
            )
    images = torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return images, labels


def load_image_folder(
    path: str | Path,
    *,
    name: str | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Read an ImageFolder: ``path/<class>/<image>`` (PNG / JPEG via Pillow); classes sorted
    by folder name, label k = k-th folder.

    If ``path`` holds exactly a ``train/`` folder and a ``test/`` (or ``val/``) folder, each
    in the ImageFolder layout with the same class folders, they are the train pool and the
    test set; otherwise a seeded stratified split holds out ``test_fraction`` of each class.

    Raises:
        DataError: a missing path, no class folder, an empty class folder, an unreadable
            image (by path), mixed image sizes (two files named), train / test folders with
            different classes.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"no such folder: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; the ImageFolder layout is "
                        f"<folder>/<class name>/<image>.png")
    name = name or root.resolve().name or "image-folder"
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    test_name = next((t for t in ("test", "val") if t in subdirs), None)
    if "train" in subdirs and test_name is not None and len(subdirs) == 2:
        train_classes = [p.name for p in _class_folders(root / "train")]
        test_classes = [p.name for p in _class_folders(root / test_name)]
        extra = sorted(set(test_classes) - set(train_classes))
        if extra:
            raise DataError(f"{root / test_name}: class folders {extra} are not in "
                            f"{root / 'train'}")
        train_files = _folder_files(root / "train", train_classes,
                                    list(range(len(train_classes))))
        present = [c for c in train_classes if c in test_classes]
        test_files = _folder_files(root / test_name, present,
                                   [train_classes.index(c) for c in present])
        images, labels = _read_files(train_files + test_files)
        n = len(train_files)
        return _assemble(name, images[:n], labels[:n], (images[n:], labels[n:]),
                         train_classes, None, test_fraction, seed)
    classes = [p.name for p in _class_folders(root)]
    images, labels = _read_files(_folder_files(root, classes, list(range(len(classes)))))
    return _assemble(name, images, labels, None, classes, None, test_fraction, seed)


# --------------------------------------------------------------------------------------------
# torch Dataset


def _item_image(item: Any, index: int) -> np.ndarray:
    """One dataset image (tensor [C, H, W] / [H, W], ndarray [H, W(, C)] or PIL) -> HWC."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None  # type: ignore[assignment]  # noqa: N806
    if Image is not None and isinstance(item, Image.Image):
        arr = np.asarray(item.convert("L" if item.mode in _GRAY_MODES else "RGB"))
        return arr[..., None] if arr.ndim == 2 else arr
    if isinstance(item, torch.Tensor):
        t = item.detach().cpu()
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3:
            raise DataError(f"dataset item {index}: the image tensor must be [C, H, W], got "
                            f"shape {tuple(item.shape)}")
        return t.permute(1, 2, 0).numpy()
    if isinstance(item, np.ndarray):
        return item[..., None] if item.ndim == 2 else item
    raise DataError(f"dataset item {index}: the image is a {type(item).__name__}; expected a "
                    "tensor [C, H, W], a NumPy array or a PIL image")


def from_torch_dataset(
    dataset: Any,
    test_dataset: Any | None = None,
    *,
    name: str = "torch-dataset",
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Read a map-style torch ``Dataset`` of ``(image, int label)`` (image: a tensor
    [C, H, W] float in [0, 1] or uint8, or a PIL image). Class names: ``classes``, else the
    dataset's ``classes`` attribute (torchvision's convention), else "0".."K-1".

    Raises:
        DataError: an empty dataset, an item that is not a pair, mixed image sizes (naming
            two indices), pixels outside [0, 1], NaN, labels that are not integers 0..K-1.
    """

    def read(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            n = len(ds)
        except TypeError:
            raise DataError(f"{name}: the {what} dataset has no len(); give a map-style "
                            "torch Dataset") from None
        if n == 0:
            raise DataError(f"{name}: the {what} dataset is empty")
        images, labels = [], []
        for i in range(n):
            item = ds[i]
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                raise DataError(f"{name}: {what} item {i} is not an (image, label) pair")
            arr = _item_image(item[0], i)
            if images and arr.shape != images[0].shape:
                raise DataError(f"{name}: mixed image sizes: {what} item 0 is "
                                f"{tuple(images[0].shape)} but item {i} is {tuple(arr.shape)} "
                                "(H, W, C)")
            label = item[1]
            if isinstance(label, torch.Tensor):
                if label.numel() != 1:
                    raise DataError(f"{name}: {what} item {i}: the label must be one integer")
                label = label.item()
            integral = isinstance(label, (int, np.integer)) and not isinstance(label, bool)
            whole = isinstance(label, float) and math.isfinite(label) and label.is_integer()
            if not (integral or whole):
                raise DataError(f"{name}: {what} item {i}: the label {label!r} is not an "
                                    "integer class index")
            images.append(arr)
            labels.append(int(label))
        return np.stack(images), np.asarray(labels, dtype=np.int64)

    x, y = read(dataset, "train")
    x_test = y_test = None
    if test_dataset is not None:
        x_test, y_test = read(test_dataset, "test")
    if classes is None and hasattr(dataset, "classes"):
        classes = [str(c) for c in dataset.classes]
    return from_arrays(x, y, x_test, y_test, name=name, classes=classes,
                       num_classes=num_classes, test_fraction=test_fraction, seed=seed)


# --------------------------------------------------------------------------------------------


def load_user_data(
    source: str | Path | Any,
    *,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    name: str | None = None,
    label: str | int | None = None,
) -> ImageDataset:
    """A user's data by what ``source`` is (SPEC 12): a folder -> :func:`load_image_folder`,
    an ``.npz`` file -> :func:`load_npz`, a ``.csv`` file -> :func:`load_csv` (its
    ``label`` column), a torch ``Dataset`` -> :func:`from_torch_dataset`.

    Args:
        source: a path, or a map-style dataset object.
        test_fraction: share of each class held out as the test set when the data has no
            test split of its own (default :data:`DEFAULT_TEST_FRACTION`).
        seed: seed of that split.
        name: dataset name in reports (default: the folder / file name).

    Raises:
        DataError: a missing path, a file that is not ``.npz``, or any loader's check.
    """
    if not isinstance(source, (str, Path)):
        return from_torch_dataset(source, name=name or type(source).__name__,
                                  test_fraction=test_fraction, seed=seed)
    path = Path(source)
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    if path.is_dir():
        return load_image_folder(path, name=name, test_fraction=test_fraction, seed=seed)
    if path.suffix.lower() == ".npz":
        return load_npz(path, name=name, test_fraction=test_fraction, seed=seed)
    if path.suffix.lower() == ".csv":
        return load_csv(path, label=label, name=name, test_fraction=test_fraction, seed=seed)
    raise DataError(f"{path}: unsupported data file; give an ImageFolder (a folder with one "
                    "subfolder per class), an .npz file with arrays x and y, or a .csv file")
