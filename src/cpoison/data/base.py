"""The in-memory form every loader returns: :class:`ImageDataset` (SPEC 8).

Images are kept as ``uint8`` tensors ``[N, C, H, W]`` (exactly what is on disk, four times
smaller than float32); :func:`to_float` maps a batch to ``float32`` in ``[0, 1]``, the pixel
space in which attacks and models work (SPEC 2: ``x + delta`` stays in ``[0, 1]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cpoison.errors import DataError

__all__ = ["ImageDataset", "to_float", "to_inputs"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images (any shape) -> ``float32`` in ``[0, 1]`` (divides by 255).

    Raises:
        TypeError: when ``images`` is not a ``uint8`` tensor (a programming error).
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"to_float expects a uint8 tensor, got {got}")
    return images.to(torch.float32).div_(255.0)


def to_inputs(x: torch.Tensor) -> torch.Tensor:
    """A model's float32 inputs from stored data: ``uint8`` images are divided by 255 (into
    [0, 1]), feature vectors (stored as float32) are returned as float32."""
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def _check_split(name: str, split: str, images: object, labels: object,
                 kind: str = "images") -> None:
    """Raise DataError unless ``images`` is uint8 [N, C, H, W] (float32 [N, D] for feature
    vectors) and ``labels`` int64 [N]."""
    if kind == "features":
        if (not isinstance(images, torch.Tensor) or images.dtype != torch.float32
                or images.ndim != 2):
            desc = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                    if isinstance(images, torch.Tensor) else type(images).__name__)
            raise DataError(f"dataset {name!r}: {split} feature vectors must be a float32 "
                            f"tensor [N, D], got {desc}")
    elif not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        desc = (
            f"{images.dtype} tensor of shape {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise DataError(
            f"dataset {name!r}: {split}_images must be a uint8 tensor [N, C, H, W], got {desc}"
        )
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
        desc = (
            f"{labels.dtype} tensor of shape {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise DataError(f"dataset {name!r}: {split}_labels must be an int64 tensor [N], got {desc}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"dataset {name!r}: {images.shape[0]} {split} images but {labels.shape[0]} "
            f"{split} labels; the files are inconsistent"
        )
    if min(images.shape[1:]) < 1:
        raise DataError(f"dataset {name!r}: {split} images have an empty shape {images.shape}")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image dataset, or a dataset of feature vectors: a train pool and a test
    set (SPEC 2).

    Attributes:
        name: registry name (``"fashion-mnist"``, ``"cifar10"``, ...).
        train_images: ``uint8`` tensor ``[N, C, H, W]``.
        train_labels: ``int64`` tensor ``[N]`` with values in ``[0, num_classes)``.
        test_images: ``uint8`` tensor ``[M, C, H, W]`` (same ``C, H, W`` as train).
        test_labels: ``int64`` tensor ``[M]``.
        classes: class names; label ``k`` is ``classes[k]``.
        kind: ``"images"`` (uint8 ``[N, C, H, W]``; models see ``[0, 1]`` pixels and
            perturbed images are clipped to ``[0, 1]``) or ``"features"`` (float32
            ``[N, D]`` feature vectors, standardised; no clipping, no augmentation).

    Equality is identity (tensors have no boolean ``==``); the repr is a summary.
    """

    name: str
    train_images: torch.Tensor = field(repr=False)
    train_labels: torch.Tensor = field(repr=False)
    test_images: torch.Tensor = field(repr=False)
    test_labels: torch.Tensor = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)
    kind: str = "images"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"dataset name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.classes, tuple) or not self.classes:
            raise DataError(f"dataset {self.name!r}: classes must be a non-empty tuple of names")
        if not all(isinstance(c, str) for c in self.classes):
            raise DataError(f"dataset {self.name!r}: every class name must be a string")
        if self.kind not in ("images", "features"):
            raise DataError(f"dataset {self.name!r}: kind must be 'images' or 'features', "
                            f"got {self.kind!r}")
        _check_split(self.name, "train", self.train_images, self.train_labels, self.kind)
        _check_split(self.name, "test", self.test_images, self.test_labels, self.kind)
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(
                f"dataset {self.name!r}: train images are {tuple(self.train_images.shape[1:])} "
                f"but test images are {tuple(self.test_images.shape[1:])}"
            )
        k = len(self.classes)
        for split, labels in (("train", self.train_labels), ("test", self.test_labels)):
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise DataError(
                    f"dataset {self.name!r}: {split} labels range over "
                    f"[{int(labels.min())}, {int(labels.max())}] but there are {k} classes"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image, or ``(D,)`` of one feature vector."""
        return tuple(int(v) for v in self.train_images.shape[1:])

    @property
    def clip(self) -> tuple[float, float] | None:
        """The range a perturbed input is clipped to: ``(0, 1)`` for images, None (no
        clipping) for feature vectors."""
        return (0.0, 1.0) if self.kind == "images" else None

    def __repr__(self) -> str:
        shape = ", ".join(str(v) for v in self.input_shape)
        kind = "" if self.kind == "images" else ", kind='features'"
        return (
            f"ImageDataset(name={self.name!r}, train={self.train_labels.numel()}, "
            f"test={self.test_labels.numel()}, shape=({shape}{',' if kind else ''}), "
            f"classes={self.num_classes}{kind})"
        )
