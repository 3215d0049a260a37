"""load_dataset: names, aliases and the data root check."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpoison.data import DATASETS, load_dataset
from cpoison.data.registry import canonical_name
from cpoison.errors import DataError


def test_names() -> None:
    assert DATASETS == ("fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "digits")
    assert canonical_name("Fashion_MNIST") == "fashion-mnist"
    assert canonical_name("CIFAR-10") == "cifar10"
    assert canonical_name("tiny-imagenet-200") == "tiny-imagenet"


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'; choose one of: fashion-mnist"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", DATASETS)
def test_missing_root_is_named(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"data root '{missing}' does not exist"):
        load_dataset(name, root=missing)


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        load_dataset("cifar10", root=f)
