"""Model registry: build any ``cpoison`` model by name.

>>> model = build_model("convnet", in_channels=1, num_classes=10, image_size=28, width=32)

Names are matched case-insensitively and ignoring ``-`` and ``_`` (``"ResNet-18"`` is
``"resnet18"``). Unknown names and unknown keyword arguments raise
:class:`~cpoison.errors.ConfigError` with one message that lists what is valid.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from cpoison.errors import ConfigError
from cpoison.models.base import ImageClassifier
from cpoison.models.convnet import convnet
from cpoison.models.mlp import mlp
from cpoison.models.mobilenet import mobilenetv2
from cpoison.models.resnet import resnet18
from cpoison.models.vgg import vgg16

ModelBuilder = Callable[..., ImageClassifier]
"""``builder(in_channels, num_classes, image_size, **kwargs) -> ImageClassifier``."""

MODELS: dict[str, ModelBuilder] = {
    "convnet": convnet,
    "resnet18": resnet18,
    "vgg16": vgg16,
    "mobilenetv2": mobilenetv2,
    "mlp": mlp,
}
"""Name -> builder for every model (see :func:`build_model`)."""

_POSITIONAL = ("in_channels", "num_classes", "image_size")


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add a model to the table (a plugin, a test; a model of the package is one line in
    :data:`MODELS`): ``builder(in_channels, num_classes, image_size, **kwargs)`` returns an
    :class:`~cpoison.models.base.ImageClassifier`. Configs may then name it."""
    MODELS[_canonical(name)] = builder


def available_models() -> list[str]:
    """Sorted names accepted by :func:`build_model`."""
    return sorted(MODELS)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def model_kwargs(name: str) -> list[str]:
    """Keyword arguments (besides in_channels, num_classes, image_size) model ``name`` takes."""
    builder = _lookup(name)
    params = inspect.signature(builder).parameters
    return [p for p in params if p not in _POSITIONAL]


def _lookup(name: str) -> ModelBuilder:
    if not isinstance(name, str) or _canonical(name) not in MODELS:
        raise ConfigError(
            f"unknown model {name!r}; valid models are: {', '.join(available_models())}"
        )
    return MODELS[_canonical(name)]


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    seed: int | None = None,
    **kwargs: object,
) -> ImageClassifier:
    """Build model ``name`` for ``[B, in_channels, image_size, image_size]`` inputs.

    Args:
        name: one of :func:`available_models` (case and ``-``/``_`` are ignored).
        in_channels: number of image channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: number of output classes.
        image_size: input height/width.
        seed: if given, the weights are initialised from ``torch.manual_seed(seed)`` inside a
            forked RNG, so the global torch RNG is left untouched and the same seed always
            gives the same weights. If ``None`` the global torch RNG is used (so
            ``torch.manual_seed(s)`` before the call also gives reproducible weights).
        **kwargs: model-specific options, e.g. ``width`` (convnet, resnet18, vgg16),
            ``width_mult`` (mobilenetv2), ``hidden``/``depth`` (mlp), ``batch_norm``
            (convnet) and ``normalize=(mean, std)`` (all models).

    Returns:
        An :class:`~cpoison.models.base.ImageClassifier` with ``features(x)`` and ``head``.

    Raises:
        ConfigError: unknown model name, unknown keyword argument, or invalid value.
    """
    builder = _lookup(name)
    accepted = model_kwargs(name)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ConfigError(
            f"unknown argument {unknown[0]!r} for model {_canonical(name)!r}; "
            f"valid arguments are: {', '.join(accepted)}"
        )
    if seed is None:
        return builder(in_channels, num_classes, image_size, **kwargs)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"model seed must be an integer, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(in_channels, num_classes, image_size, **kwargs)
