"""scikit-learn's handwritten digits (SPEC 8): 1,797 images, 1x8x8, 10 classes.

The data ships inside scikit-learn, so it needs no files and no network. Pixel values
0..16 are scaled to ``uint8`` 0..255 (``round(v * 255 / 16)``). There is no official split:
a permutation seeded with ``derive_seed(seed, "digits-split")`` gives ``n_train`` training
images (1500 by default) and the remaining 297 test images; the same seed always gives the
same split (each part keeps the original order).
"""

from __future__ import annotations

import numpy as np
import torch

from cpoison.data.base import ImageDataset
from cpoison.errors import DataError
from cpoison.seeding import derive_seed

__all__ = ["CLASSES", "N_SAMPLES", "load_digits"]

NAME = "digits"
N_SAMPLES = 1797
CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def load_digits(seed: int = 0, n_train: int = 1500) -> ImageDataset:
    """Load the digits as ``uint8 [N, 1, 8, 8]`` with a seeded train/test split.

    Args:
        seed: seed of the split permutation.
        n_train: number of training images; the rest (``1797 - n_train``) are the test set.

    Raises:
        DataError: if ``n_train`` leaves no training or no test image, or scikit-learn is
            missing.
    """
    if not 0 < n_train < N_SAMPLES:
        raise DataError(
            f"digits has {N_SAMPLES} images, so n_train must be between 1 and "
            f"{N_SAMPLES - 1}, got {n_train}"
        )
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise DataError(
            "the digits dataset comes with scikit-learn; install it with "
            "`pip install scikit-learn`"
        ) from exc
    bunch = sk_load_digits()
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0))
    images = np.clip(images, 0, 255).astype(np.uint8)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    if images.shape[0] != N_SAMPLES:
        raise DataError(
            f"scikit-learn's digits has {images.shape[0]} images, expected {N_SAMPLES}; "
            "reinstall scikit-learn"
        )
    perm = np.random.default_rng(derive_seed(seed, "digits-split")).permutation(N_SAMPLES)
    train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    return ImageDataset(
        NAME,
        torch.from_numpy(images[train]),
        torch.from_numpy(labels[train]),
        torch.from_numpy(images[test]),
        torch.from_numpy(labels[test]),
        CLASSES,
    )
