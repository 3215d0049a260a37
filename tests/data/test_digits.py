"""scikit-learn digits: scaling to uint8, seeded 1500/297 split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from cpoison.data import load_dataset
from cpoison.data.digits import load_digits
from cpoison.errors import DataError


def test_shapes_scaling_and_classes() -> None:
    ds = load_digits()
    assert ds.name == "digits" and ds.classes == tuple("0123456789")
    assert ds.train_images.shape == (1500, 1, 8, 8) and ds.test_images.shape == (297, 1, 8, 8)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert int(ds.train_images.max()) == 255 and int(ds.train_images.min()) == 0
    values = set(torch.cat([ds.train_images, ds.test_images]).unique().tolist())
    assert values == {round(v * 255 / 16) for v in range(17)}


def test_split_is_a_partition_of_the_data() -> None:
    ds = load_digits(seed=3)
    sk = sk_load_digits()
    expected = np.rint(sk.images * 255 / 16).astype(np.uint8).reshape(len(sk.images), -1)
    got = torch.cat([ds.train_images, ds.test_images]).reshape(1797, -1).numpy()
    rows = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert rows(got) == rows(expected)
    labels = torch.cat([ds.train_labels, ds.test_labels]).bincount().tolist()
    assert labels == np.bincount(sk.target).tolist()


def test_split_is_seeded() -> None:
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)
    via_registry = load_dataset("digits", seed=2)
    assert torch.equal(via_registry.test_images, c.test_images)


def test_n_train() -> None:
    ds = load_digits(n_train=1000)
    assert ds.train_labels.numel() == 1000 and ds.test_labels.numel() == 797
    for bad in (0, 1797, -5):
        with pytest.raises(DataError, match="n_train must be between 1 and 1796"):
            load_digits(n_train=bad)
