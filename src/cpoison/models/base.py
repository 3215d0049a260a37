"""Common base class and argument checks for every ``cpoison`` model.

Every model maps float images ``[B, C, H, W]`` with pixels in ``[0, 1]`` to logits
``[B, num_classes]``. Attacks work in pixel space, so per-dataset normalisation is an optional
part of the model (the ``normalize=(mean, std)`` argument), applied first inside
:meth:`ImageClassifier.features`. The model is split into

* :meth:`ImageClassifier.features` -- penultimate features ``[B, feature_dim]`` (used by
  transfer learning, deep k-NN and EPIC), and
* :attr:`ImageClassifier.head` -- the final ``nn.Linear(feature_dim, num_classes)``,

so that ``model(x) == model.head(model.features(x))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cpoison.errors import ConfigError

Normalize = tuple[Sequence[float], Sequence[float]]
"""``(mean, std)``: one value per input channel, or a single value for all channels."""


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise :class:`ConfigError` if it is not an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model argument {name!r} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise :class:`ConfigError` if it is not a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"model argument {name!r} must be a positive number, got {value!r}")
    return float(value)


def _channel_values(name: str, values: object, in_channels: int) -> torch.Tensor:
    """Turn a per-channel ``mean``/``std`` spec into a ``[1, C, 1, 1]`` float tensor."""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    try:
        t = torch.as_tensor(values, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(
            f"model argument 'normalize' {name} must be a list of numbers, got {values!r}"
        ) from None
    if t.numel() == 1:
        t = t.expand(in_channels).clone()
    if t.numel() != in_channels:
        raise ConfigError(
            f"model argument 'normalize' {name} has {t.numel()} values but the model has "
            f"{in_channels} input channels"
        )
    if not torch.isfinite(t).all():
        raise ConfigError(f"model argument 'normalize' {name} must be finite, got {values!r}")
    return t.view(1, in_channels, 1, 1)


class ImageClassifier(nn.Module):
    """Base class: optional input normalisation, ``features`` and a linear ``head``.

    Subclasses build their layers, then call :meth:`_set_head` with the feature dimension
    and implement :meth:`extract_features` (normalised images -> ``[B, D]``).

    Args:
        in_channels: number of input channels ``C``.
        num_classes: number of output classes.
        image_size: input height/width the model is built for: an int for square images,
            or ``(height, width)``.
        normalize: optional ``(mean, std)`` per channel (or one value for all channels);
            when given, ``(x - mean) / std`` is applied to the ``[0, 1]`` input before the
            first layer. ``None`` (default) leaves the input as is. Stored as buffers, so
            they move with ``.to(device)`` and are saved in the ``state_dict``.
    """

    mean: torch.Tensor | None
    std: torch.Tensor | None
    head: nn.Linear

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
            h, w = (check_positive_int("image_size", v) for v in image_size)
            self.image_size: int | tuple[int, int] = h if h == w else (h, w)
        else:
            self.image_size = check_positive_int("image_size", image_size)
        self._init_normalize(normalize)

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` the model is built for."""
        size = self.image_size
        return (size, size) if isinstance(size, int) else size

    def _init_normalize(self, normalize: Normalize | None) -> None:
        if normalize is None:
            self.mean = None
            self.std = None
        else:
            if not isinstance(normalize, (tuple, list)) or len(normalize) != 2:
                raise ConfigError(
                    f"model argument 'normalize' must be a pair (mean, std), got {normalize!r}"
                )
            mean = _channel_values("mean", normalize[0], self.in_channels)
            std = _channel_values("std", normalize[1], self.in_channels)
            if not (std > 0).all():
                raise ConfigError(
                    f"model argument 'normalize' std must be positive, got {normalize[1]!r}"
                )
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
        self.feature_dim = 0

    def _set_head(self, feature_dim: int) -> None:
        """Create the final linear layer ``head: feature_dim -> num_classes``."""
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, self.num_classes)

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the optional ``(x - mean) / std`` normalisation (identity when unset)."""
        if self.mean is None or self.std is None:
            return x
        return (x - self.mean) / self.std

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised images ``[B, C, H, W]`` to penultimate features ``[B, D]``."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, feature_dim]`` of ``[0, 1]`` images ``[B, C, H, W]``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{type(self).__name__} expects images of shape [B, {self.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        return self.extract_features(self.normalize_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``; equal to ``head(features(x))``."""
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        norm = "none" if self.mean is None else "mean/std"
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"image_size={self.image_size}, feature_dim={self.feature_dim}, normalize={norm}"
        )
