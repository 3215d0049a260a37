"""CIFAR-10/100 from pickle batches in the official format, via the restricted unpickler."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_helpers import (
    cifar_data,
    dump_cifar,
    py2_pickle_dumps,
    write_cifar10,
    write_cifar100,
)

from cpoison.data import load_dataset
from cpoison.data.cifar import load_cifar10, load_cifar100
from cpoison.data.safe_pickle import load_restricted_pickle
from cpoison.errors import DataError

FLAVORS = ["py2", "py3"]


def test_fixture_is_in_the_python2_format(tmp_path: Path) -> None:
    data = py2_pickle_dumps({b"data": cifar_data(2, 0), b"labels": [1, 2]})
    assert data.startswith(b"\x80\x02}")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    assert b"U\x04data" in data and b"_codecs" not in data


@pytest.mark.parametrize("flavor", FLAVORS)
def test_cifar10(tmp_path: Path, flavor: str) -> None:
    written = write_cifar10(tmp_path / "cifar-10-batches-py", n=4, flavor=flavor)
    ds = load_cifar10(tmp_path)
    batches = written["batches"]
    assert ds.name == "cifar10" and ds.classes == tuple(written["names"])
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (4, 3, 32, 32)
    train_rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(ds.train_images, torch.from_numpy(train_rows.reshape(20, 3, 32, 32)))
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
    row = batches["test_batch"][b"data"][1]
    assert int(ds.test_images[1, 0, 0, 5]) == row[5]
    assert int(ds.test_images[1, 1, 2, 3]) == row[1024 + 2 * 32 + 3]
    assert int(ds.test_images[1, 2, 31, 31]) == row[3071]
    labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert ds.train_labels.tolist() == labels and ds.train_labels.dtype == torch.int64
    assert ds.test_labels.tolist() == batches["test_batch"][b"labels"]
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10


@pytest.mark.parametrize("flavor", FLAVORS)
def test_cifar100_uses_fine_labels(tmp_path: Path, flavor: str) -> None:
    written = write_cifar100(tmp_path / "cifar-100-python", flavor=flavor)
    ds = load_dataset("cifar100", root=tmp_path)
    assert ds.num_classes == 100 and ds.classes[7] == "fine_7"
    assert ds.train_images.shape == (6, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert ds.train_labels.tolist() == written["parts"]["train"][b"fine_labels"]
    assert ds.test_labels.tolist() == written["parts"]["test"][b"fine_labels"]
    expected = written["parts"]["train"][b"data"].reshape(6, 3, 32, 32)
    assert torch.equal(ds.train_images, torch.from_numpy(expected))


def test_root_may_be_the_folder_itself_or_cache(tmp_path: Path, isolated_cache: Path) -> None:
    write_cifar10(tmp_path / "plain", n=2)
    assert load_cifar10(tmp_path / "plain").train_labels.numel() == 10
    write_cifar10(isolated_cache / "cifar-10-batches-py", n=3)
    assert load_dataset("cifar-10").train_labels.numel() == 15


def test_not_found_says_where_and_how(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar100(tmp_path)
    msg = str(info.value)
    assert "cifar-100-python.tar.gz" in msg and str(tmp_path) in msg
    assert str(isolated_cache / "cifar-100-python") in msg


def test_incomplete_folder(tmp_path: Path) -> None:
    write_cifar10(tmp_path, n=2)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match="incomplete: data_batch_3 missing"):
        load_cifar10(tmp_path)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("where", ["meta", "batch"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, where: str) -> None:
    write_cifar10(tmp_path, n=2)
    marker = tmp_path / "pwned"
    if where == "meta":
        (tmp_path / "batches.meta").write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    else:  # hidden inside an otherwise valid-looking batch
        batch = {b"batch_label": b"x", b"labels": [0, 1], b"data": _Evil(marker),
                 b"filenames": [b"a", b"b"]}
        (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataError, match="refusing to load .*not a CIFAR batch"):
        load_cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}, protocol=5),  # _frombuffer
        pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}, protocol=2),  # _codecs.encode
        pickle.dumps(range(3), protocol=2),  # builtins.range
        b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",  # eval("1+1")
    ],
    ids=["numpy-frombuffer", "codecs", "builtins-range", "eval"],
)
def test_any_other_global_is_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "batch"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="refusing to load"):
        load_restricted_pickle(path)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_batch(tmp_path: Path, cut: float) -> None:
    write_cifar10(tmp_path, n=2)
    path = tmp_path / "test_batch"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


def test_garbage_and_wrong_contents(tmp_path: Path) -> None:
    write_cifar10(tmp_path, n=2)
    batch = tmp_path / "data_batch_2"
    batch.write_bytes(b"this is not a pickle at all" * 4)
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar10(tmp_path)
    dump_cifar(batch, [1, 2, 3], "py2")
    with pytest.raises(DataError, match="holds a list, not the dict"):
        load_cifar10(tmp_path)
    dump_cifar(batch, {b"labels": [0]}, "py2")
    with pytest.raises(DataError, match="no 'data' entry"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "10 classes"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"a", b"b"]}, "integers"),
    ],
    ids=["width", "dtype", "count", "range", "type"],
)
def test_bad_batch_contents(tmp_path: Path, entry: dict[bytes, Any], match: str) -> None:
    write_cifar10(tmp_path, n=2)
    dump_cifar(tmp_path / "data_batch_4", entry, "py2")
    with pytest.raises(DataError, match=match):
        load_cifar10(tmp_path)


def test_bad_meta(tmp_path: Path) -> None:
    write_cifar10(tmp_path, n=2)
    dump_cifar(tmp_path / "batches.meta", {b"label_names": [b"a"] * 9}, "py2")
    with pytest.raises(DataError, match="should list 10 class names but has 9"):
        load_cifar10(tmp_path)
