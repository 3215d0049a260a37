"""Activation clustering filter (Chen et al., 2018, "Detecting Backdoor Attacks on Deep
Neural Networks by Activation Clustering"; SPEC 7).

Per class: the penultimate activations of the class's training examples (model trained on
the possibly poisoned set) are centred and reduced to ``dims`` = 10 dimensions, clustered by
2-means (scikit-learn ``KMeans``, 10 initialisations), and the
smaller cluster is dropped when its relative size is at most ``size_threshold`` (default
0.35: Chen et al.'s relative-size analysis, IBM ART's default). A class whose smaller
cluster is larger than that is considered clean. Fewer dimensions are used when the class
has fewer examples or features than ``dims``.

Reduction: Chen et al. use independent component analysis (FastICA, unit-variance
whitening, also IBM ART's default); it is available as ``reduce: ica``. The default here is
PCA (``reduce: pca``), a deliberate deviation measured on this package's tiny models: on
the penultimate features of a digits MLP with 15 planted mislabelled points in one class,
ICA's whitening gives every independent component the same variance, noise components then
dominate the 2-means split, and 0 of 15 planted points were removed; with PCA all 15 were
(``tests/defenses/test_filters.py``).

Randomness (ICA start, k-means init) is seeded from the victim seed and the class.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA

from cpoison.defenses.base import DefenseConfigBase, FeatureFilter
from cpoison.seeding import derive_seed


class ActivationClusteringConfig(DefenseConfigBase):
    """``defense: {name: activation_clustering, dims: 10, size_threshold: 0.35}``."""

    name: Literal["activation_clustering"] = "activation_clustering"
    dims: int = Field(10, ge=1, description="dimensions after ICA / PCA")
    reduce: Literal["pca", "ica"] = "pca"
    size_threshold: float = Field(0.35, gt=0, le=0.5,
                                  description="drop the smaller cluster if its share <= this")


class ActivationClustering(FeatureFilter):
    """Drop, per class, a small second cluster of activations."""

    name = "activation_clustering"

    def __init__(self, config: ActivationClusteringConfig) -> None:
        super().__init__(config)
        self.config: ActivationClusteringConfig = config

    def _reduce(self, x: np.ndarray, seed: int) -> np.ndarray:
        dims = min(self.config.dims, x.shape[0] - 1, x.shape[1])
        if dims < 1:
            return x
        rs = seed % (2**32)
        if self.config.reduce == "pca":
            return PCA(n_components=dims, random_state=rs).fit_transform(x)
        with warnings.catch_warnings():  # FastICA may warn about convergence on tiny classes
            warnings.simplefilter("ignore")
            return FastICA(n_components=dims, whiten="unit-variance", max_iter=1000,
                           random_state=rs).fit_transform(x)

    def suspects(
        self, features: torch.Tensor, labels: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        drop = torch.zeros(features.shape[0], dtype=torch.bool)
        shares: dict[str, float] = {}
        for c in torch.unique(labels).tolist():
            idx = torch.nonzero(labels == c).flatten()
            if idx.numel() < 3:
                continue
            x = features[idx].double().numpy()
            x = x - x.mean(axis=0, keepdims=True)
            class_seed = derive_seed(seed, "activation-clustering", c)
            z = self._reduce(x, class_seed)
            km = KMeans(n_clusters=2, n_init=10, random_state=class_seed % (2**32)).fit(z)
            sizes = np.bincount(km.labels_, minlength=2)
            small = int(sizes.argmin())
            share = float(sizes[small] / sizes.sum())
            shares[str(c)] = round(share, 4)
            if share <= self.config.size_threshold:
                drop[idx[torch.from_numpy(km.labels_ == small)]] = True
        return drop, {"smaller_cluster_share": shares}
