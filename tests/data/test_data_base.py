"""ImageDataset validation and to_float."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cpoison.data import ImageDataset, to_float
from cpoison.errors import DataError


def _make(**overrides: object) -> ImageDataset:
    fields: dict[str, object] = {
        "name": "toy",
        "train_images": torch.zeros(4, 1, 5, 6, dtype=torch.uint8),
        "train_labels": torch.tensor([0, 1, 2, 1]),
        "test_images": torch.zeros(2, 1, 5, 6, dtype=torch.uint8),
        "test_labels": torch.tensor([2, 0]),
        "classes": ("a", "b", "c"),
    }
    fields.update(overrides)
    return ImageDataset(**fields)  # type: ignore[arg-type]


def test_properties_and_repr() -> None:
    ds = _make()
    assert ds.num_classes == 3 and ds.input_shape == (1, 5, 6)
    assert repr(ds) == "ImageDataset(name='toy', train=4, test=2, shape=(1, 5, 6), classes=3)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"train_images": torch.zeros(4, 1, 5, 6)}, "train_images must be a uint8"),
        ({"test_images": torch.zeros(2, 5, 6, dtype=torch.uint8)}, "test_images must be"),
        ({"train_labels": torch.tensor([0, 1, 2, 1], dtype=torch.int32)}, "int64"),
        ({"train_labels": torch.tensor([0, 1, 2])}, "4 train images but 3 train labels"),
        ({"test_labels": torch.tensor([3, 0])}, r"test labels range over \[0, 3\]"),
        ({"train_labels": torch.tensor([0, -1, 2, 1])}, "train labels range"),
        ({"test_images": torch.zeros(2, 1, 5, 5, dtype=torch.uint8)}, "train images are"),
        ({"classes": ()}, "non-empty tuple"),
        ({"classes": ["a", "b", "c"]}, "non-empty tuple"),
        ({"classes": ("a", 2, "c")}, "must be a string"),
        ({"name": ""}, "non-empty string"),
        ({"train_images": "pixels"}, "got str"),
    ],
)
def test_validation(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        _make(**overrides)


def test_to_float() -> None:
    x = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y, torch.tensor([[0.0, 128 / 255, 1.0]]))
    assert x.tolist() == [[0, 128, 255]]  # input untouched
    with pytest.raises(TypeError, match="uint8"):
        to_float(y)
