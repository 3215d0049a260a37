"""Fashion-MNIST: IDX parsing, lookup order, corrupt files, downloads, and the real data."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import FMNIST_FILES, LocalServer, idx_bytes, write_fashion_mnist

from cpoison.data import ImageDataset, load_dataset
from cpoison.data import fashion_mnist as fm
from cpoison.data.idx import read_idx
from cpoison.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_system_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the Debian copy so that 'missing everywhere' can be tested."""
    monkeypatch.setattr(fm, "SYSTEM_DIRS", ())


def _check_matches(ds: ImageDataset, arrays: dict[str, np.ndarray]) -> None:
    train_x, train_y, test_x, test_y = (arrays[n] for n in FMNIST_FILES)
    assert ds.name == "fashion-mnist"
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert ds.train_images.shape == (len(train_x), 1, 28, 28)
    assert ds.test_images.shape == (len(test_x), 1, 28, 28)
    assert torch.equal(ds.train_images[:, 0], torch.from_numpy(train_x))
    assert torch.equal(ds.test_images[:, 0], torch.from_numpy(test_x))
    assert ds.train_labels.tolist() == train_y.tolist()
    assert ds.test_labels.tolist() == test_y.tolist()
    assert ds.classes == fm.CLASSES and ds.num_classes == 10
    assert ds.input_shape == (1, 28, 28)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_loads_files_from_root(tmp_path: Path, gz: bool, no_system_dirs: None) -> None:
    arrays = write_fashion_mnist(tmp_path / "root", gz=gz)
    _check_matches(fm.load_fashion_mnist(tmp_path / "root", download=False), arrays)


@pytest.mark.parametrize("sub", ["fashion-mnist", "FashionMNIST/raw"])
def test_root_subfolders(tmp_path: Path, sub: str, no_system_dirs: None) -> None:
    arrays = write_fashion_mnist(tmp_path / "root" / sub)
    ds = load_dataset("fashion-mnist", root=tmp_path / "root", download=False)
    _check_matches(ds, arrays)


def test_lookup_order_root_then_cache_then_system(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "system"
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (system,))
    in_system = write_fashion_mnist(system, n_train=3, seed=3)
    _check_matches(fm.load_fashion_mnist(download=False), in_system)
    in_cache = write_fashion_mnist(isolated_cache / "fashion-mnist", n_train=4, seed=2)
    _check_matches(fm.load_fashion_mnist(download=False), in_cache)
    in_root = write_fashion_mnist(tmp_path / "root", n_train=5, seed=1)
    _check_matches(fm.load_fashion_mnist(tmp_path / "root", download=False), in_root)
    assert fm.search_dirs(tmp_path / "root")[-2:] == [isolated_cache / "fashion-mnist", system]


def test_incomplete_folder_is_skipped(tmp_path: Path, isolated_cache: Path,
                                      no_system_dirs: None) -> None:
    root = tmp_path / "root"
    write_fashion_mnist(root)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    arrays = write_fashion_mnist(isolated_cache / "fashion-mnist", seed=5)
    _check_matches(fm.load_fashion_mnist(root, download=False), arrays)


def test_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does-not-exist.*does not exist"):
        fm.load_fashion_mnist(tmp_path / "does-not-exist", download=False)


def test_missing_everywhere_without_download(tmp_path: Path, isolated_cache: Path,
                                             no_system_dirs: None) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(DataError) as info:
        fm.load_fashion_mnist(tmp_path / "root", download=False)
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "downloading is disabled" in msg
    assert str(tmp_path / "root") in msg and str(isolated_cache / "fashion-mnist") in msg


# ---------------------------------------------------------------------------- corrupt files


def _write_one(directory: Path, name: str, data: bytes, gz: bool = True) -> Path:
    path = directory / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_truncated_idx_data_names_the_file(tmp_path: Path, gz: bool) -> None:
    write_fashion_mnist(tmp_path, gz=gz)
    good = idx_bytes(np.zeros((12, 28, 28), dtype=np.uint8))
    path = _write_one(tmp_path, FMNIST_FILES[0], good[:-100], gz=gz)
    with pytest.raises(DataError, match="truncated") as info:
        fm.load_fashion_mnist(tmp_path, download=False)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream_names_the_file(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path)
    path = tmp_path / f"{FMNIST_FILES[2]}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as info:
        fm.load_fashion_mnist(tmp_path, download=False)
    assert str(path) in str(info.value)


def test_bad_magic_and_trailing_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 12)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_idx(empty)
    trailing = tmp_path / "trailing"
    trailing.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"junk")
    with pytest.raises(DataError, match="unexpected bytes"):
        read_idx(trailing)
    header = tmp_path / "header"
    header.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(header)


def test_read_idx_other_types_are_big_endian(tmp_path: Path) -> None:
    values = np.array([[1, -2, 300], [70000, 5, -6]], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
                     + values.tobytes())
    got = read_idx(path)
    assert got.dtype == np.int32 and got.tolist() == values.tolist()
    with pytest.raises(DataError, match="int32 values but uint8"):
        read_idx(path, dtype="uint8")


def test_swapped_files_are_detected(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path)
    images = tmp_path / f"{FMNIST_FILES[0]}.gz"
    labels = tmp_path / f"{FMNIST_FILES[1]}.gz"
    img, lab = images.read_bytes(), labels.read_bytes()
    images.write_bytes(lab)
    labels.write_bytes(img)
    with pytest.raises(DataError, match="1-dimensional IDX array but a 3-dimensional"):
        fm.load_fashion_mnist(tmp_path, download=False)


def test_count_mismatch_and_bad_labels(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path, n_train=12)
    _write_one(tmp_path, FMNIST_FILES[1], idx_bytes(np.zeros(11, dtype=np.uint8)))
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        fm.load_fashion_mnist(tmp_path, download=False)
    _write_one(tmp_path, FMNIST_FILES[1], idx_bytes(np.full(12, 10, dtype=np.uint8)))
    with pytest.raises(DataError, match="contains label 10"):
        fm.load_fashion_mnist(tmp_path, download=False)


# ---------------------------------------------------------------------------- downloads


def _serve_fixture(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Put fixture files on the server and make their hashes the 'official' ones."""
    arrays = write_fashion_mnist(server.directory)
    hashes = {
        n: hashlib.sha256((server.directory / f"{n}.gz").read_bytes()).hexdigest()
        for n in FMNIST_FILES
    }
    monkeypatch.setattr(fm, "OFFICIAL_GZ_SHA256", hashes)
    return arrays


def test_download_into_cache(http_server: LocalServer, isolated_cache: Path,
                             monkeypatch: pytest.MonkeyPatch, no_system_dirs: None) -> None:
    arrays = _serve_fixture(http_server, monkeypatch)
    monkeypatch.setenv(fm.URL_ENV, http_server.url + "/")
    _check_matches(fm.load_fashion_mnist(), arrays)
    cache = isolated_cache / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FMNIST_FILES)
    (http_server.directory / f"{FMNIST_FILES[0]}.gz").unlink()  # now served from the cache
    _check_matches(fm.load_fashion_mnist(), arrays)


def test_download_only_missing_files(http_server: LocalServer, isolated_cache: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     no_system_dirs: None) -> None:
    arrays = _serve_fixture(http_server, monkeypatch)
    cache = isolated_cache / "fashion-mnist"
    cache.mkdir(parents=True)
    kept = f"{FMNIST_FILES[0]}.gz"
    (cache / kept).write_bytes((http_server.directory / kept).read_bytes())
    (http_server.directory / kept).unlink()  # would 404 if it were downloaded again
    _check_matches(fm.load_fashion_mnist(base_url=http_server.url), arrays)


def test_download_checksum_mismatch(http_server: LocalServer, isolated_cache: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    no_system_dirs: None) -> None:
    write_fashion_mnist(http_server.directory)  # official hashes will not match these
    with pytest.raises(DataError) as info:
        fm.load_fashion_mnist(base_url=http_server.url)
    msg = str(info.value)
    assert "checksum" in msg and "apt-get install dataset-fashion-mnist" in msg
    cache = isolated_cache / "fashion-mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_download_404(http_server: LocalServer, isolated_cache: Path,
                      monkeypatch: pytest.MonkeyPatch, no_system_dirs: None) -> None:
    monkeypatch.setenv(fm.URL_ENV, http_server.url)
    with pytest.raises(DataError, match="404.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    cache = isolated_cache / "fashion-mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_base_url_overrides_env(http_server: LocalServer, closed_port_url: str,
                                monkeypatch: pytest.MonkeyPatch, no_system_dirs: None) -> None:
    arrays = _serve_fixture(http_server, monkeypatch)
    monkeypatch.setenv(fm.URL_ENV, closed_port_url)
    _check_matches(fm.load_fashion_mnist(base_url=http_server.url, timeout=5), arrays)


# ---------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist() -> None:
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.train_images.shape == (60000, 1, 28, 28)
    assert ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.num_classes == 10 and ds.classes[0] == "T-shirt/top"
    assert ds.train_labels.bincount().tolist() == [6000] * 10
    assert ds.test_labels.bincount().tolist() == [1000] * 10
    assert int(ds.train_images.max()) == 255 and int(ds.train_images.min()) == 0
    assert fm.verify_content() == dict.fromkeys(FMNIST_FILES, True)


def test_verify_content_rejects_other_files(tmp_path: Path, no_system_dirs: None) -> None:
    write_fashion_mnist(tmp_path)
    assert fm.verify_content(tmp_path) == dict.fromkeys(FMNIST_FILES, False)
    with pytest.raises(DataError, match="not found"):
        fm.verify_content()
