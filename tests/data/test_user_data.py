"""A user's own data (SPEC 12): ImageFolder of PNGs, .npz, torch Dataset; one clear
DataError per problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cpoison.data.user import (
    from_torch_dataset,
    load_image_folder,
    load_npz,
    load_user_data,
    stratified_split,
)
from cpoison.errors import DataError


def write_folder(root: Path, counts: dict[str, int], size: tuple[int, int] = (6, 5),
                 mode: str = "L", seed: int = 0) -> Path:
    """An ImageFolder of PNGs: root/<class>/<i>.png with random pixels (seeded)."""
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / cls / f"{i}.png")
    return root


def test_image_folder_reads_classes_sorted_with_a_stratified_split(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs", {"b_cat": 10, "a_dog": 5, "c_eel": 4})
    (root / "a_dog" / "notes.txt").write_text("ignored")
    ds = load_user_data(root, seed=3)
    assert ds.classes == ("a_dog", "b_cat", "c_eel")
    assert ds.input_shape == (1, 5, 6)  # (C, H, W) of 6x5 (width x height) PNGs
    assert ds.train_labels.numel() + ds.test_labels.numel() == 19
    assert torch.bincount(ds.test_labels, minlength=3).tolist() == [1, 2, 1]  # 20 % per class
    # pixels are exactly the PNG's
    first = np.array(Image.open(sorted((root / "a_dog").glob("*.png"))[0]))
    every = torch.cat([ds.train_images, ds.test_images])
    assert any(torch.equal(img[0], torch.from_numpy(first)) for img in every)
    again = load_user_data(root, seed=3)
    assert torch.equal(again.test_images, ds.test_images)
    other = load_user_data(root, seed=4)
    assert not torch.equal(other.test_images, ds.test_images)


def test_image_folder_with_train_and_test_folders_and_colour(tmp_path: Path) -> None:
    write_folder(tmp_path / "d" / "train", {"x": 3, "y": 3}, mode="RGB")
    write_folder(tmp_path / "d" / "test", {"x": 2, "y": 1}, mode="L", seed=1)
    ds = load_image_folder(tmp_path / "d")
    assert ds.input_shape == (3, 5, 6)  # a colour image anywhere: all read as RGB
    assert ds.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.test_labels.tolist() == [0, 0, 1]
    assert torch.equal(ds.test_images[:, 0], ds.test_images[:, 2])  # gray repeated


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_user_data(tmp_path / "nowhere")
    root = write_folder(tmp_path / "a", {"one": 2, "two": 2})
    (root / "three").mkdir()
    with pytest.raises(DataError, match=r"class folder .*three holds no image"):
        load_image_folder(root)
    root = write_folder(tmp_path / "b", {"one": 2})
    write_folder(root, {"two": 1}, size=(7, 7))
    with pytest.raises(DataError, match=r"mixed image sizes: .*0\.png is 6x5 but .*two.0\.png "
                                        r"is 7x7"):
        load_image_folder(root)
    root = write_folder(tmp_path / "c", {"one": 2, "two": 2})
    (root / "two" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        load_image_folder(root)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "data.txt").write_text("1,2")
    with pytest.raises(DataError, match="unsupported data file"):
        load_user_data(tmp_path / "data.txt")


def test_csv_feature_vectors_and_their_errors(tmp_path: Path) -> None:
    """A CSV of feature vectors: label column by name or last, names or 0..K-1 as labels,
    standardised with the train split's statistics; bad cells named by row and column."""
    rows = [f"{i % 7},{(i * 3) % 5},{['a', 'b'][i % 2]}" for i in range(40)]
    (tmp_path / "t.csv").write_text("x1,x2,kind\n" + "\n".join(rows) + "\n")
    ds = load_user_data(tmp_path / "t.csv", label="kind", seed=1)
    assert ds.kind == "features" and ds.input_shape == (2,) and ds.classes == ("a", "b")
    assert ds.train_images.dtype == torch.float32 and ds.clip is None
    assert float(ds.train_images.mean(0).abs().max()) < 1e-5
    assert torch.allclose(ds.train_images.std(0), torch.ones(2), atol=1e-5)
    assert ds.train_labels.numel() + ds.test_labels.numel() == 40
    (tmp_path / "n.csv").write_text("\n".join(f"{i},{i % 3}" for i in range(30)))
    assert load_user_data(tmp_path / "n.csv").classes == ("0", "1", "2")  # last column
    (tmp_path / "bad.csv").write_text("x1,y\n1,0\nfoo,1\n2,0\n")
    with pytest.raises(DataError, match=r"row 3, x1: 'foo' is not a number"):
        load_user_data(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="no column named 'label'"):
        load_user_data(tmp_path / "t.csv", label="label")
    (tmp_path / "ragged.csv").write_text("1,2,0\n3,1\n")
    with pytest.raises(DataError, match="row 2 has 2 columns"):
        load_user_data(tmp_path / "ragged.csv")
    (tmp_path / "nan.csv").write_text("x,y\n1,0\nnan,1\n2,0\n3,1\n")
    with pytest.raises(DataError, match="NaN or infinite"):
        load_user_data(tmp_path / "nan.csv")


def test_npz_uint8_and_float_with_and_without_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 4, 4), dtype=np.uint8)
    y = np.repeat(np.arange(3), 10)
    np.savez(tmp_path / "u8.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    ds = load_user_data(tmp_path / "u8.npz")
    assert ds.classes == ("a", "b", "c") and ds.input_shape == (1, 4, 4)
    assert ds.test_labels.numel() == 6 and ds.train_labels.numel() == 24
    xf = rng.random((12, 4, 4, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=xf, y=np.arange(12) % 2, x_test=xf[:4],
             y_test=np.array([0, 1, 0, 1]))
    ds = load_npz(tmp_path / "f.npz")
    assert ds.input_shape == (3, 4, 4) and ds.classes == ("0", "1")
    assert ds.test_labels.tolist() == [0, 1, 0, 1]
    back = ds.train_images.float().permute(0, 2, 3, 1).numpy() / 255
    assert np.abs(back - xf).max() <= 1 / 510 + 1e-6  # round(255 x) / 255


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((4, 3, 3), np.float32) + 2, "y": np.array([0, 1, 0, 1])},
     r"float pixels of x must be in \[0, 1\], found \[2, 2\]"),
    ({"x": np.full((4, 3, 3), np.nan, np.float32), "y": np.array([0, 1, 0, 1])}, "NaN"),
    ({"x": np.zeros((4, 3, 3, 1, 1), np.uint8), "y": np.array([0, 1, 0, 1])},
         r"\[N, D\] \(feature vectors\), got 5 dimensions"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, -1, 1])}, "negative label -1"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, 5, 1]),
      "classes": np.array(["a", "b"])}, r"label 5, outside 0\.\.1"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, 0])}, "4 images but 3 labels"),
    ({"x": np.zeros((4, 3, 8, 8), np.uint8), "y": np.array([0, 1, 0, 1])}, "channels first"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0.0, 1.0, np.nan, 1.0])},
     "NaN labels"),
    ({"x": np.zeros((4, 3, 3), np.uint8)}, "no array 'y'"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, 0, 1]),
      "x_test": np.zeros((2, 3, 3), np.uint8)}, "give both x_test and y_test"),
])
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_user_data(tmp_path / "bad.npz")


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.zeros((4, 3, 3), np.uint8),
             y=np.array([0, 1, 0, {"evil": 1}], dtype=object))
    with pytest.raises(DataError, match="object arrays, which need pickle"):
        load_npz(tmp_path / "obj.npz")


class Pairs(torch.utils.data.Dataset):
    """(float image [1, 4, 4], int label) pairs."""

    classes = ("zero", "one")

    def __init__(self, n: int, bad: int | None = None) -> None:
        gen = torch.Generator().manual_seed(n)
        self.x = torch.rand(n, 1, 4, 4, generator=gen)
        self.bad = bad

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i == self.bad:
            return torch.rand(1, 5, 5), 0
        return self.x[i], i % 2


def test_torch_dataset(tmp_path: Path) -> None:
    ds = load_user_data(Pairs(10))
    assert ds.classes == ("zero", "one") and ds.input_shape == (1, 4, 4)
    assert ds.train_labels.numel() == 8 and ds.test_labels.numel() == 2
    with_test = from_torch_dataset(Pairs(10), Pairs(4))
    assert with_test.test_labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match=r"mixed image sizes: train item 0 is \(4, 4, 1\) but "
                                        r"item 3 is \(5, 5, 1\)"):
        from_torch_dataset(Pairs(6, bad=3))


def test_stratified_split_keeps_every_class_in_train() -> None:
    labels = torch.tensor([0] * 10 + [1] * 2 + [2])
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(torch.cat([train, test]).tolist()) == list(range(13))
    assert torch.bincount(labels[test], minlength=3).tolist() == [2, 1, 0]
    assert torch.bincount(labels[train], minlength=3).tolist() == [8, 1, 1]
    with pytest.raises(DataError, match="test_fraction"):
        stratified_split(labels, 1.0, seed=0)
