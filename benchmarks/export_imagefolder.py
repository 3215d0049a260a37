"""Export a built-in dataset (default Fashion-MNIST) as a practitioner's data for
``cpoison audit`` (SPEC 12, issue 13): an ImageFolder of PNGs with ``train/`` and ``test/``
subfolders (the dataset's own train pool and test set, one subfolder per class named
``NN-name`` so that the sorted folder order is the label order), or an ``.npz``.

    python benchmarks/export_imagefolder.py runs/fmnist-folder            # ImageFolder
    python benchmarks/export_imagefolder.py runs/fmnist.npz --format npz  # same arrays

PNG is lossless, so the pixels and labels are those of the built-in dataset; only the order
of the images differs (the folder is read class by class), hence the dataset digest, the
role split and the drawn targets differ from the built-in run's: an audit of the export
measures the same effect up to the noise of another draw. The ``.npz`` keeps the order.
Writing the 70,000 Fashion-MNIST PNGs takes about a minute; files already there are kept.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

from cpoison.data import load_dataset


def folder_name(label: int, name: str) -> str:
    return f"{label:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}"


def export(dataset: str, out: Path, fmt: str, data_root: str | None) -> Path:
    ds = load_dataset(dataset, root=data_root)
    if fmt == "npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x=ds.train_images.permute(0, 2, 3, 1).numpy(),
                 y=ds.train_labels.numpy(), x_test=ds.test_images.permute(0, 2, 3, 1).numpy(),
                 y_test=ds.test_labels.numpy(), classes=np.array(ds.classes, dtype=str))
        return out
    for split, images, labels in (("train", ds.train_images, ds.train_labels),
                                  ("test", ds.test_images, ds.test_labels)):
        for i, (img, label) in enumerate(zip(images, labels.tolist())):
            folder = out / split / folder_name(label, ds.classes[label])
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:05d}.png"
            if not path.exists():
                arr = img.permute(1, 2, 0).numpy()
                Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder (ImageFolder) or file (.npz) to write")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--format", choices=("imagefolder", "npz"), default="imagefolder")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    print(f"wrote {export(args.dataset, Path(args.out), args.format, args.data_root)}")


if __name__ == "__main__":
    main()
