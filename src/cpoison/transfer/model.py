"""A frozen feature extractor plus a trainable head (SPEC 2, transfer setting).

:class:`TransferModel` exposes ``features(x)`` and ``head`` like every cpoison model, and
only the head's parameters require gradients, so the attack code, which differentiates with
respect to ``trainable(model)`` (:mod:`cpoison.attacks.params`), works on the head alone
while the poisons' pixels still go through the extractor.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from cpoison.errors import CpoisonError
from cpoison.training.trainer import predict_features

__all__ = ["NoFeatureLayerError", "TransferModel", "check_extractor", "extract_features"]


class NoFeatureLayerError(CpoisonError):
    """A model without a penultimate feature layer was given as a feature extractor."""


def check_extractor(model: nn.Module) -> nn.Module:
    """Return ``model`` if it has a ``features(x)`` penultimate-feature method, else raise
    :class:`NoFeatureLayerError` naming its architecture.

    Every cpoison model (:class:`cpoison.models.base.ImageClassifier`) has one; a plain
    ``nn.Module`` (an ``nn.Sequential``, a third-party network) does not, and which of its
    layers is "penultimate" cannot be guessed safely.
    """
    features = getattr(model, "features", None)
    if not isinstance(model, nn.Module) or not callable(features) \
            or isinstance(features, nn.Module):
        # torchvision's VGG/AlexNet have a ``features`` *submodule* (the conv stack, not the
        # penultimate features): refused too.
        raise NoFeatureLayerError(
            f"the feature extractor {type(model).__name__} has no feature layer: transfer "
            "learning needs a model with a features(x) method returning penultimate features "
            "[B, D] (every cpoison model has one; wrap other networks in a cpoison "
            "ImageClassifier subclass)"
        )
    return model


def extract_features(
    model: nn.Module,
    images: Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> Tensor:
    """Penultimate features ``[N, D]`` (float32, on CPU) of uint8 or float ``images``.

    Batched, no-grad, model in eval mode (:func:`cpoison.training.trainer.predict_features`).
    Raises :class:`NoFeatureLayerError` for a model without a feature layer.
    """
    check_extractor(model)
    try:
        return predict_features(model, images, device=device, batch_size=batch_size)
    except NotImplementedError:
        raise NoFeatureLayerError(
            f"the feature extractor {type(model).__name__} does not implement "
            "extract_features, so it has no feature layer"
        ) from None


class TransferModel(nn.Module):
    """``head(extractor.features(x))`` with the extractor frozen (eval mode, no gradients).

    Args:
        extractor: a model with ``features(x)`` (checked by :func:`check_extractor`); its
            parameters are set to ``requires_grad=False`` and it stays in eval mode even
            when :meth:`train` is called (BatchNorm statistics never move).
        head: the trainable head (``nn.Linear``, e.g. :meth:`FittedHead.linear`, or the MLP
            head). Features are cast to the head's dtype (heads are float64).
    """

    def __init__(self, extractor: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.extractor = check_extractor(extractor)
        self.extractor.requires_grad_(False)
        self.extractor.eval()
        self.head = head

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        self.extractor.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        """Frozen penultimate features, in the head's dtype."""
        dtype = next(self.head.parameters()).dtype
        return self.extractor.features(x).to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
