"""A user's own model (SPEC 12): ``package.module:function`` returning an ``nn.Module``.

>>> model = load_user_model("my_pkg.models:build", in_channels=1, num_classes=10,
...                         image_size=28, weights="model.safetensors", seed=0)

The function is called as ``function(in_channels, num_classes, image_size)`` and must
return an ``nn.Module`` mapping float images ``[B, C, H, W]`` in [0, 1] to logits
``[B, num_classes]`` (one dummy forward checks it). The spec may also name a file,
``path/to/models.py:build``. Weights are read from ``.safetensors`` only: cpoison never
unpickles a file (SPEC 10), so ``.pt`` / ``.pth`` checkpoints must be converted first.

cpoison's attacks and nearest-base selection need ``features(x)`` (penultimate features)
and ``head`` (the final ``nn.Linear``) with ``model(x) == head(features(x))``. A model that
has both is returned as is; any other is wrapped in :class:`HookedClassifier`, which finds
the last ``nn.Linear`` run by the forward pass and captures its input with a forward
pre-hook. A model without an ``nn.Linear`` output layer is rejected.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from cpoison.errors import ConfigError

__all__ = ["HookedClassifier", "load_user_model", "load_weights", "resolve_function"]

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def resolve_function(spec: str) -> object:
    """Import ``package.module:function`` (or ``path/to/file.py:function``) and return the
    attribute.

    Raises:
        ConfigError: a malformed spec, a module that cannot be imported (or fails while
            importing), no such attribute.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"model spec {spec!r} must be 'package.module:function' (or "
                          "'path/to/file.py:function')")
    module_name, func_name = spec.split(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"model spec {spec!r}: no such file {path}")
            mod_id = f"cpoison_user_model_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(mod_id, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ConfigError(f"model spec {spec!r}: cannot load {path} as a module")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_id] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(f"model spec {spec!r}: cannot import module {module_name!r} "
                          f"({exc}); is it installed or on PYTHONPATH?") from None
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(f"model spec {spec!r}: importing {module_name!r} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not hasattr(module, func_name):
        public = sorted(n for n, v in vars(module).items()
                        if callable(v) and not n.startswith("_"))
        raise ConfigError(f"model spec {spec!r}: module {module_name!r} has no function "
                          f"{func_name!r}; it defines: {', '.join(public) or 'nothing callable'}")
    return getattr(module, func_name)


def load_weights(model: nn.Module, weights: str | Path) -> None:
    """Load a ``.safetensors`` file into ``model`` (strict: same names, same shapes).

    Raises:
        ConfigError: a missing file, a pickle checkpoint (``.pt`` / ``.pth`` ...), an
            unreadable file, missing / unexpected tensors, or a shape mismatch (naming the
            tensor and both shapes).
    """
    path = Path(weights)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError(
            f"weights {path}: cpoison reads .safetensors only, never pickle checkpoints "
            f"({path.suffix}). Convert it once: `from safetensors.torch import save_file; "
            f"save_file(torch.load('{path.name}', weights_only=True), 'model.safetensors')` "
            "(a state_dict of tensors)"
        )
    if path.suffix.lower() != ".safetensors":
        raise ConfigError(f"weights {path}: expected a .safetensors file")
    if not path.is_file():
        raise ConfigError(f"weights {path}: no such file")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"weights {path}: not a readable safetensors file ({exc})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}"
                         f"{' ...' if len(unexpected) > 5 else ''}")
        raise ConfigError(f"weights {path} do not match the model: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ConfigError(f"weights {path}: tensor {key!r} has shape "
                              f"{tuple(state[key].shape)} but the model's has "
                              f"{tuple(tensor.shape)}")
    model.load_state_dict(state, strict=True)


def _dummy_forward(
    model: nn.Module, in_channels: int, image_size: int
) -> tuple[torch.Tensor, list[nn.Linear], list[torch.Tensor]]:
    """Run a [2, C, S, S] batch of 0.5 through the model in eval mode (restored after),
    recording the nn.Linear layers in the order they run and their outputs."""
    order: list[nn.Linear] = []
    outputs: list[torch.Tensor] = []

    def hook(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        order.append(module)  # type: ignore[arg-type]
        outputs.append(out)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear)]
    was_training = model.training
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.full((2, in_channels, image_size, image_size), 0.5, device=device)
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ConfigError(f"the model's forward failed on a [2, {in_channels}, {image_size}, "
                          f"{image_size}] batch: {type(exc).__name__}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return out, order, outputs


class HookedClassifier(nn.Module):
    """Wraps a user's model to give cpoison's ``features(x)`` / ``head`` interface.

    ``head`` is the model's last ``nn.Linear`` (by execution order); ``features(x)`` is its
    input, captured by a forward pre-hook during a full forward of the wrapped model (so
    gradients flow through it). ``forward`` is the wrapped model's. ``head`` is not
    registered as a submodule a second time (the state dict has the model's own tensors,
    under ``net.``).
    """

    def __init__(self, net: nn.Module, head: nn.Linear, in_channels: int, num_classes: int,
                 image_size: int) -> None:
        super().__init__()
        self.net = net
        object.__setattr__(self, "_head_ref", head)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.feature_dim = head.in_features

    @property
    def head(self) -> nn.Linear:
        """The final linear layer (logits = head(features))."""
        return self._head_ref  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the wrapped model."""
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, feature_dim]: the input of ``head`` in a forward pass."""
        captured: list[torch.Tensor] = []

        def pre_hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            captured.append(inputs[0])

        handle = self.head.register_forward_pre_hook(pre_hook)
        try:
            self.net(x)
        finally:
            handle.remove()
        return captured[-1].flatten(1)


def load_user_model(
    spec: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    weights: str | Path | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Build a user's model from ``spec`` and check it (module docstring; SPEC 12).

    Args:
        spec: ``package.module:function`` or ``path/to/file.py:function``.
        in_channels: image channels, passed to the function.
        num_classes: number of classes, passed to the function; the dummy forward check
            expects an output of shape [2, num_classes].
        image_size: image height and width, passed to the function.
        weights: optional ``.safetensors`` file with the model's state dict.
        seed: if given, the function runs under ``torch.manual_seed(seed)`` in a forked RNG
            (same seed, same initial weights; the global RNG is untouched).

    Returns:
        The model itself when it has ``features`` and an ``nn.Linear`` ``head``, else a
        :class:`HookedClassifier` around it.

    Raises:
        ConfigError: import errors, no such function, a function that fails or returns no
            ``nn.Module``, bad weights, a forward that fails or gives the wrong shape, no
            ``nn.Linear`` output layer.
    """
    func = resolve_function(spec)
    if not callable(func):
        raise ConfigError(f"model spec {spec!r}: {spec.split(':')[1]!r} is not callable")
    try:
        if seed is None:
            model = func(in_channels, num_classes, image_size)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                model = func(in_channels, num_classes, image_size)
    except Exception as exc:
        raise ConfigError(f"model spec {spec!r}: calling it with (in_channels={in_channels}, "
                          f"num_classes={num_classes}, image_size={image_size}) failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model spec {spec!r} returned a {type(model).__name__}, not a "
                          "torch.nn.Module")
    if weights is not None:
        load_weights(model, weights)
    out, order, outputs = _dummy_forward(model, in_channels, image_size)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model spec {spec!r}: the output for a batch of 2 images must be "
                          f"logits of shape (2, {num_classes}), got {got}")
    head = getattr(model, "head", None)
    if callable(getattr(model, "features", None)) and isinstance(head, nn.Linear):
        return model
    if not order:
        raise ConfigError(f"model spec {spec!r}: the model has no nn.Linear layer; cpoison "
                          "needs a final nn.Linear (features -> logits) for its attacks")
    last = order[-1]
    if order.count(last) > 1 or not torch.equal(outputs[-1], out):
        raise ConfigError(f"model spec {spec!r}: the model's output is not the output of its "
                          "last nn.Linear (called once); cpoison needs logits = "
                          "last_linear(features), with no layer after it")
    return HookedClassifier(model, last, in_channels, num_classes, image_size)
