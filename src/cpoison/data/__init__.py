"""Datasets (SPEC 8): loaders returning :class:`ImageDataset` (``uint8 [N, C, H, W]``).

>>> from cpoison.data import load_dataset, to_float
>>> ds = load_dataset("digits", seed=0)
>>> ds.input_shape, ds.num_classes
((1, 8, 8), 10)
>>> x = to_float(ds.train_images[:4])  # float32 in [0, 1]
"""

from cpoison.data.base import ImageDataset, to_float
from cpoison.data.registry import DATASETS, load_dataset
from cpoison.data.user import load_user_data

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "load_user_data", "to_float"]
