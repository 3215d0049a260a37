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

import copy
import functools
import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cpoison.errors import ConfigError

__all__ = [
    "HookedClassifier", "build_user_model", "check_model", "input_args", "is_python_object",
    "load_user_model", "load_weights", "register_object", "resolve_function",
]

log = logging.getLogger(__name__)

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def resolve_function(spec: str) -> object:
    """Import ``package.module:function`` (or ``path/to/file.py:function``) and return the
    attribute.

    Raises:
        ConfigError: a malformed spec, a module that cannot be imported (or fails while
            importing), no such attribute.
    """
    if isinstance(spec, str) and spec in _OBJECTS:
        return _OBJECTS[spec]
    if isinstance(spec, str) and spec.startswith(OBJECT_PREFIX):
        raise ConfigError(f"{spec!r} names a model or function given from Python in another "
                          "process; objects given from Python run with the local executor "
                          "only (name them as 'package.module:function' for Ray)")
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


def input_args(input_shape: tuple[int, ...]) -> tuple[Any, ...]:
    """The leading arguments a model factory is called with for inputs of ``input_shape``:
    ``(in_channels, image_size)`` for images ``(C, H, W)``, where ``image_size`` is an int
    for square images and ``(height, width)`` otherwise; ``(num_features,)`` for feature
    vectors ``(D,)``. The number of classes follows them."""
    if len(input_shape) == 1:
        return (int(input_shape[0]),)
    c, h, w = (int(v) for v in input_shape)
    return (c, h if h == w else (h, w))


def _call_args(input_shape: tuple[int, ...], num_classes: int) -> tuple[Any, ...]:
    args = input_args(input_shape)
    return (args[0], num_classes, *args[1:])


def _describe_args(input_shape: tuple[int, ...], num_classes: int) -> str:
    if len(input_shape) == 1:
        return f"num_features={input_shape[0]}, num_classes={num_classes}"
    c, size = input_args(input_shape)
    return f"in_channels={c}, num_classes={num_classes}, image_size={size}"


def _dummy_forward(
    model: nn.Module, input_shape: tuple[int, ...]
) -> tuple[torch.Tensor, list[nn.Linear], list[torch.Tensor]]:
    """Run a batch of two inputs of ``input_shape`` (all 0.5) through the model in eval mode
    (restored after), recording the nn.Linear layers in the order they run and their
    outputs."""
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
    x = torch.full((2, *input_shape), 0.5, device=device)
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        shape = ", ".join(str(v) for v in (2, *input_shape))
        raise ConfigError(f"the model's forward failed on a [{shape}] batch: "
                          f"{type(exc).__name__}: {exc}") from exc
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
                 image_size: int | tuple[int, int] | None) -> None:
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


def check_model(model: Any, input_shape: tuple[int, ...], num_classes: int,
                what: str = "the model") -> nn.Module:
    """Check a user's ``nn.Module`` on inputs of ``input_shape`` (one dummy forward: logits
    ``[2, num_classes]`` from its last ``nn.Linear``) and give it cpoison's ``features`` /
    ``head`` interface (module docstring): the model itself when it has both, else a
    :class:`HookedClassifier` around it.

    Raises:
        ConfigError: not an ``nn.Module``, a forward that fails or gives the wrong shape, no
            ``nn.Linear`` output layer.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{what} is a {type(model).__name__}, not a torch.nn.Module")
    out, order, outputs = _dummy_forward(model, tuple(input_shape))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{what}: the output for a batch of 2 inputs must be "
                          f"logits of shape (2, {num_classes}), got {got}")
    head = getattr(model, "head", None)
    if callable(getattr(model, "features", None)) and isinstance(head, nn.Linear):
        return model
    if not order:
        raise ConfigError(f"{what}: the model has no nn.Linear layer; cpoison "
                          "needs a final nn.Linear (features -> logits) for its attacks")
    last = order[-1]
    if order.count(last) > 1 or not torch.equal(outputs[-1], out):
        raise ConfigError(f"{what}: the model's output is not the output of its "
                          "last nn.Linear (called once); cpoison needs logits = "
                          "last_linear(features), with no layer after it")
    args = input_args(tuple(input_shape))
    return HookedClassifier(model, last, args[0], num_classes,
                            args[1] if len(args) > 1 else None)


def build_user_model(
    spec: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    weights: str | Path | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Build and check a user's model for inputs of ``input_shape`` (``(C, H, W)`` images
    or ``(D,)`` feature vectors).

    ``spec`` is ``package.module:function`` / ``path/to/file.py:function``, or the name of
    an ``nn.Module`` object or a factory given from Python (:func:`register_object`). A
    function is called as ``function(in_channels, num_classes, image_size)`` for images
    (``image_size`` an int when square, else ``(height, width)``) and as
    ``function(num_features, num_classes)`` for feature vectors; an ``nn.Module`` object is
    deep-copied (every model starts from its weights). ``seed``: the function runs under
    ``torch.manual_seed(seed)`` in a forked RNG (the global RNG is untouched)."""
    func = resolve_function(spec)
    shape = tuple(int(v) for v in input_shape)
    if isinstance(func, nn.Module):
        model: Any = copy.deepcopy(func)
    else:
        if not callable(func):
            raise ConfigError(f"model spec {spec!r}: {spec.split(':')[1]!r} is not callable")
        args = _call_args(shape, num_classes)
        try:
            if seed is None:
                model = func(*args)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed))
                    model = func(*args)
        except Exception as exc:
            raise ConfigError(f"model spec {spec!r}: calling it with "
                              f"({_describe_args(shape, num_classes)}) failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model spec {spec!r} returned a {type(model).__name__}, not a "
                              "torch.nn.Module")
    if weights is not None:
        load_weights(model, weights)
    return check_model(model, shape, num_classes, f"model spec {spec!r}")


def load_user_model(
    spec: str,
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    weights: str | Path | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Build a user's model from ``spec`` and check it (module docstring; SPEC 12).

    Args:
        spec: ``package.module:function`` or ``path/to/file.py:function``.
        in_channels: image channels, passed to the function.
        num_classes: number of classes, passed to the function; the dummy forward check
            expects an output of shape [2, num_classes].
        image_size: image height and width (an int), or ``(height, width)``.
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
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return build_user_model(spec, (in_channels, h, w), num_classes, weights, seed)


# --------------------------------------------------------------------------------------------
# Objects given from Python (cpoison.audit(model=nn.Module or a factory, train_fn=...))

OBJECT_PREFIX = "@python"
"""The module part of the names of objects given from Python (never an importable module)."""

_OBJECTS: dict[str, Any] = {}
_IDENTITIES: dict[str, dict[str, Any]] = {}


def source_digest(obj: Any) -> tuple[str, str | None]:
    """(digest, note) of what defines ``obj``: the SHA-256 of its source
    (``inspect.getsource`` of the function, or of the class of an ``nn.Module`` object);
    when the source cannot be read (defined in a REPL, a C extension), the digest of its
    qualified name and a note saying that editing it will not be noticed."""
    if isinstance(obj, functools.partial):
        obj = obj.func
    target = obj if inspect.isroutine(obj) or inspect.isclass(obj) else type(obj)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    try:
        text = inspect.getsource(target)
        note = None
    except (OSError, TypeError):
        text = name
        note = (f"the source of {name} cannot be read, so its qualified name stands for it "
                "in the models' keys: after editing it, use another name or a fresh store")
        log.warning(note)
    return hashlib.sha256(text.encode()).hexdigest()[:16], note


def state_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex) of a model's state dict: names, shapes, dtypes and values."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def object_identity(obj: Any) -> dict[str, Any]:
    """What determines an object given from Python, for the models' keys: the digest of its
    source (:func:`source_digest`) and, for an ``nn.Module``, of its initial weights."""
    code, note = source_digest(obj)
    out: dict[str, Any] = {"code": code}
    if note:
        out["code_note"] = "qualified name"
    if isinstance(obj, nn.Module):
        out["init"] = state_digest(obj)
    return out


def register_object(obj: Any, what: str = "model") -> str:
    """Name an ``nn.Module`` object, a model factory or a training function given from
    Python, for configs: ``@python:<name>-<digest>``, where the digest covers its source and
    (for a module) its weights, so that another object gets another name. The object lives
    in this process only (runs that name it use the local executor)."""
    if not (isinstance(obj, nn.Module) or callable(obj)):
        raise ConfigError(f"{what}: expected an nn.Module, a function or a "
                          f"'package.module:function' string, got a {type(obj).__name__}")
    ident = object_identity(obj)
    base = obj if inspect.isroutine(obj) or inspect.isclass(obj) else type(obj)
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", getattr(base, "__qualname__", "object"))
    key = hashlib.sha256(repr(sorted(ident.items())).encode()).hexdigest()[:12]
    name = f"{OBJECT_PREFIX}:{label}-{key}"
    _OBJECTS[name] = obj
    _IDENTITIES[name] = ident
    return name


def identity_of(spec: str) -> dict[str, Any]:
    """:func:`object_identity` of what ``spec`` names (computed once for objects given from
    Python: the object is copied for every model, never changed)."""
    if spec in _IDENTITIES:
        return _IDENTITIES[spec]
    return object_identity(resolve_function(spec))


def is_python_object(spec: str | None) -> bool:
    """Whether ``spec`` names an object given from Python (:func:`register_object`)."""
    return isinstance(spec, str) and spec.startswith(OBJECT_PREFIX + ":")
