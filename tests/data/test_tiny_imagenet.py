"""Tiny-ImageNet-200 from a tiny fixture in its exact folder layout (JPEGs made with PIL)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cpoison.data import load_dataset
from cpoison.data.tiny_imagenet import load_tiny_imagenet
from cpoison.errors import DataError

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

WNIDS = ["n01443537", "n01629819", "n01641577"]
WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
    "n99999999": "not in this dataset",
}
TRAIN_PER_CLASS = (3, 2, 2)
VAL = [("val_0.JPEG", 2), ("val_1.JPEG", 0), ("val_2.JPEG", 1), ("val_3.JPEG", 2)]


def _save_jpeg(path: Path, seed: int, mode: str = "RGB", size: int = 64) -> None:
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    base = rng.integers(0, 256, 3 if mode == "RGB" else 1).astype(np.float64)
    pixels = np.clip(base + rng.normal(0, 20, shape).squeeze(), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path, format="JPEG", quality=90)


def make_tiny_imagenet(directory: Path, words: bool = True) -> Path:
    """Write a 3-class Tiny-ImageNet-200 folder; class 1's image 0 is grayscale."""
    directory.mkdir(parents=True)
    (directory / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    if words:
        (directory / "words.txt").write_text("".join(f"{k}\t{v}\n" for k, v in WORDS.items()))
    for k, (wnid, n) in enumerate(zip(WNIDS, TRAIN_PER_CLASS)):
        # numbers chosen so that numeric and lexicographic order differ (2 < 10)
        for j, i in enumerate([10, 2, 0][:n]):
            mode = "L" if (k, j) == (1, 0) else "RGB"
            _save_jpeg(directory / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", 10 * k + i,
                       mode)
        (directory / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, (name, k) in enumerate(VAL):
        _save_jpeg(directory / "val" / "images" / name, 100 + i)
        lines.append(f"{name}\t{WNIDS[k]}\t0\t0\t63\t63\n")
    (directory / "val" / "val_annotations.txt").write_text("".join(lines))
    (directory / "test" / "images").mkdir(parents=True)  # unlabelled; ignored
    return directory


def _decoded(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_imagenet(tmp_path / "root" / "tiny-imagenet-200")


def test_loads_fixture(tiny: Path) -> None:
    ds = load_tiny_imagenet(tiny.parent, progress=False)
    assert ds.name == "tiny-imagenet"
    assert ds.classes == tuple(WORDS[w] for w in WNIDS)
    assert ds.train_images.shape == (7, 3, 64, 64) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (4, 3, 64, 64)
    assert ds.train_labels.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert ds.test_labels.tolist() == [k for _, k in VAL]
    # train images: class order, then numeric order of <i> (0, 2, 10)
    first = tiny / "train" / WNIDS[0] / "images"
    for pos, i in enumerate([0, 2, 10]):
        assert torch.equal(ds.train_images[pos], _decoded(first / f"{WNIDS[0]}_{i}.JPEG"))
    assert torch.equal(ds.test_images[2], _decoded(tiny / "val" / "images" / "val_2.JPEG"))


def test_grayscale_is_converted_to_rgb(tiny: Path) -> None:
    ds = load_tiny_imagenet(tiny, progress=False)
    gray = ds.train_images[4]  # class 1, image number 10 (written as mode "L")
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_threads_give_the_same_result(tiny: Path) -> None:
    a = load_tiny_imagenet(tiny, progress=False, workers=1)
    b = load_tiny_imagenet(tiny, progress=False, workers=3)
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.test_images, b.test_images)


def test_registry_and_cache_lookup(tmp_path: Path, isolated_cache: Path) -> None:
    make_tiny_imagenet(isolated_cache / "tiny-imagenet-200")
    assert load_dataset("tiny-imagenet").test_labels.numel() == len(VAL)


def test_without_words_uses_wnids(tmp_path: Path) -> None:
    tiny = make_tiny_imagenet(tmp_path / "t", words=False)
    assert load_tiny_imagenet(tiny, progress=False).classes == tuple(WNIDS)


def test_not_found(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(DataError, match="tiny-imagenet-200.zip") as info:
        load_tiny_imagenet(tmp_path)
    assert str(isolated_cache / "tiny-imagenet-200") in str(info.value)


def test_truncated_jpeg_names_the_file(tiny: Path) -> None:
    path = tiny / "val" / "images" / "val_3.JPEG"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot decode image") as info:
        load_tiny_imagenet(tiny, progress=False)
    assert str(path) in str(info.value)


def test_not_an_image(tiny: Path) -> None:
    path = tiny / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_0.JPEG"
    path.write_bytes(b"definitely not a JPEG")
    with pytest.raises(DataError, match="cannot decode image .*_0.JPEG"):
        load_tiny_imagenet(tiny, progress=False, workers=2)


def test_wrong_size(tiny: Path) -> None:
    _save_jpeg(tiny / "val" / "images" / "val_0.JPEG", 0, size=32)
    with pytest.raises(DataError, match="is 32x32 but Tiny-ImageNet images are 64x64"):
        load_tiny_imagenet(tiny, progress=False)


def test_missing_val_image(tiny: Path) -> None:
    (tiny / "val" / "images" / "val_1.JPEG").unlink()
    with pytest.raises(DataError, match="val_1.JPEG.* is missing"):
        load_tiny_imagenet(tiny, progress=False)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("val_0.JPEG\tn00000000\t0\t0\t1\t1", "names class 'n00000000'"),
        ("val_0.JPEG", "line 1 is not"),
        ("../../wnids.txt\tn01443537\t0\t0\t1\t1", "bad file name"),
    ],
)
def test_bad_annotations(tiny: Path, line: str, match: str) -> None:
    (tiny / "val" / "val_annotations.txt").write_text(line + "\n")
    with pytest.raises(DataError, match=match):
        load_tiny_imagenet(tiny, progress=False)


def test_incomplete_layout(tiny: Path) -> None:
    (tiny / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt' is missing"):
        load_tiny_imagenet(tiny, progress=False)
    (tiny / "wnids.txt").write_text("\n".join([*WNIDS, "n12345678"]) + "\n")
    with pytest.raises(DataError, match="n12345678/images' is missing"):
        load_tiny_imagenet(tiny, progress=False)


def test_duplicate_or_empty_wnids(tiny: Path) -> None:
    (tiny / "wnids.txt").write_text("\n".join([*WNIDS, WNIDS[0]]))
    with pytest.raises(DataError, match="more than once"):
        load_tiny_imagenet(tiny, progress=False)
    (tiny / "wnids.txt").write_text("\n\n")
    with pytest.raises(DataError, match="lists no classes"):
        load_tiny_imagenet(tiny, progress=False)


def test_without_pillow(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match="needs Pillow"):
        load_tiny_imagenet(tiny, progress=False)
