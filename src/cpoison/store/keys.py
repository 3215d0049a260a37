"""Identity from content, in one place (SPEC 11): every artifact's key is a hash of what
determines it, never of a name or a path.

- a dataset is identified by the digest of its pixels, labels and class names;
- a role split by its recorded indices;
- a trained model by the dataset digest, its training indices, its poisons' digest, the
  recipe, the architecture with its arguments, the seed, the defense (only for a model
  trained with a defense's training hooks; a model a defense trains without hooks, such as
  a filter's feature model, is keyed by its content alone), the device type and the
  trainer's version;
- a poison set by the surrogate's key, everything in the config that shapes crafting, the
  attack's settings and the repeat's seed;
- an evaluation cell by the poison set's key, the benign victim's key, the victim spec,
  the evaluation settings and the defense (when there is one).

Every cache lookup, stored artifact and result row goes through the functions here.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import torch

KEY_LENGTH = 24
EVALUATION_VERSION = 1  # bump when the per-victim figures change their numbers

_DATASET_DIGESTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _normalise(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _normalise(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, torch.Tensor):
        return tensor_digest(value)
    return value


def digest(**parts: Any) -> str:
    """A stable key from JSON-serialisable parts (pydantic models are dumped, tensors are
    digested); key order never matters."""
    text = json.dumps(_normalise(parts), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """SHA-256 (hex, 16 chars) of the raw bytes, shapes and dtypes of ``tensors`` (None
    hashes as a marker distinct from an empty tensor)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"<none>")
            continue
        t = t.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_digest(dataset: Any) -> str:
    """Digest of a dataset's content (train and test pixels and labels, class names),
    computed once per loaded dataset object. Two datasets with the same name but other
    content never share a key; the same content under two paths does."""
    cached = _DATASET_DIGESTS.get(dataset)
    if cached is None:
        h = hashlib.sha256(json.dumps(list(dataset.classes)).encode())
        h.update(tensor_digest(dataset.train_images, dataset.train_labels,
                               dataset.test_images, dataset.test_labels).encode())
        cached = h.hexdigest()[:KEY_LENGTH]
        _DATASET_DIGESTS[dataset] = cached
    return cached


def split_digest(split: Any) -> str:
    """Digest of a role split's recorded indices and setting (and of the transfer
    setting's public role when there is one; splits without it keep their digest)."""
    extra = {} if getattr(split, "public", None) is None else {
        "public": tensor_digest(split.public)}
    return digest(setting=split.setting, indices=tensor_digest(
        split.attacker_train, split.attacker_cal, split.victim_train, split.victim_cal),
        **extra)


def model_key(
    *, dataset: str, indices: torch.Tensor, poison_ids: torch.Tensor | None,
    poison_delta: torch.Tensor | None, recipe: Any, arch: str, arch_kwargs: dict[str, Any],
    seed: int, device_type: str, trainer_version: int, defense: Any = None,
    user: dict[str, Any] | None = None,
) -> str:
    """Key of a trained model (surrogate or victim). ``user``: the content of a user's model
    (:func:`user_model_identity`: its code and initial weights), only for such models, so
    the keys of registry models without weights are unchanged."""
    extra = {"user": user} if user else {}
    return digest(
        kind="model", dataset=dataset, indices=tensor_digest(indices),
        poisons=tensor_digest(poison_ids, poison_delta), recipe=recipe, arch=arch,
        arch_kwargs=arch_kwargs, seed=seed, device=device_type, trainer=trainer_version,
        defense=defense, **extra,
    )


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex, 16 chars) of a file's bytes, cached per (path, size, mtime)."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    cache = (str(path), stat.st_size, stat.st_mtime_ns)
    if cache not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_DIGESTS[cache] = h.hexdigest()[:16]
    return _FILE_DIGESTS[cache]


def user_model_identity(arch: str, weights: str | None, user_arch: bool,
                        train_fn: str | None = None) -> dict[str, Any] | None:
    """What determines a user's model besides its name (SPEC 11, 12): the digest of the
    source file that defines its function (so editing the function makes new keys), of an
    object given from Python (its source and initial weights), of its initial weights file
    and of the user's training function (its source). None for a registry model without
    weights or training function, so their keys are unchanged."""
    from cpoison.models.user import identity_of, is_python_object, resolve_function

    out: dict[str, Any] = {}
    if user_arch:
        import inspect

        if is_python_object(arch):
            out["code"] = identity_of(arch)
        else:
            func = resolve_function(arch)
            try:
                source = inspect.getsourcefile(func)  # type: ignore[arg-type]
            except TypeError:
                source = None
            out["code"] = file_digest(source) if source and Path(source).is_file() else None
    if weights:
        out["weights"] = file_digest(weights)
    if train_fn:
        out["train_fn"] = identity_of(train_fn)
    return out or None


def poisons_key(*, surrogate: str, crafting: dict[str, Any], attack: Any, repeat_seed: int,
                device_type: str) -> str:
    """Key of a poison set: the surrogate it was crafted on, the config fields that shape
    crafting (goal, targets, budget, eps, alpha, base selection, setting), the attack's
    settings and the repeat's seed."""
    return digest(kind="poisons", surrogate=surrogate, crafting=crafting, attack=attack,
                  repeat_seed=repeat_seed, device=device_type)


def features_key(*, extractor: str, train_ids: torch.Tensor, dataset: str,
                 device_type: str) -> str:
    """Key of the clean features of one extractor (transfer setting, SPEC 2): the
    extractor's model key, the dataset digest and the train-pool ids they cover (the test
    set is always covered whole)."""
    return digest(kind="features", extractor=extractor, dataset=dataset,
                  ids=tensor_digest(train_ids), device=device_type)


def head_key(*, extractor: str, indices: torch.Tensor, poison_ids: torch.Tensor | None,
             poison_delta: torch.Tensor | None, head: Any, seed: int | None,
             device_type: str) -> str:
    """Key of a head fitted on frozen features (transfer setting: the attacker's head, a
    benign victim's): the extractor's key (which holds the dataset digest and the public
    ids), the training indices, the poisons' digest, the head's settings (kind, penalty,
    width, tolerance) and its seed (``None`` for the deterministic convex head)."""
    return digest(kind="head", extractor=extractor, indices=tensor_digest(indices),
                  poisons=tensor_digest(poison_ids, poison_delta), head=head, seed=seed,
                  device=device_type)


def cell_key(*, poisons: str, benign: str, victim: dict[str, Any],
             evaluation: dict[str, Any], defense: Any = None) -> str:
    """Key of one evaluation cell: a poisoned victim paired with its benign victim.

    ``defense`` (SPEC 7, 11): the settings of the defense both victims train and calibrate
    under; ``None`` for no defense, which leaves the key exactly as it was before defenses
    existed (stored cells stay valid)."""
    extra = {} if defense is None else {"defense": defense}
    return digest(kind="cell", poisons=poisons, benign=benign, victim=victim,
                  evaluation=evaluation, version=EVALUATION_VERSION, **extra)


def config_hash(config: Any) -> str:
    """Digest of a whole (validated) config."""
    return digest(config=config)
