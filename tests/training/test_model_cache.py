"""ModelCache / cache_key: safetensors round trip, train once, corrupt files retrained."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors import safe_open

from cpoison.training import (
    ModelCache,
    Recipe,
    build_seeded_model,
    cache_key,
    default_cache_dir,
    tensor_digest,
)


def _model(seed: int, hidden: int = 16) -> nn.Module:
    return build_seeded_model("mlp", 1, 10, 8, seed, hidden=hidden)


def _equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class CountingTrainer:
    """A stand-in for training: counts calls and sets recognisable weights."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model: nn.Module) -> nn.Module:
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)
        return model.train()


def test_save_then_load_gives_equal_weights(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    src, dst = _model(1), _model(2)
    assert not _equal(src, dst)
    cache.save("k1", src, meta={"desc": "victim", "seed": 1})
    path = cache.path("k1")
    assert path == tmp_path / "models" / "k1.safetensors" and path.is_file()
    assert cache.load("k1", dst)
    assert _equal(src, dst)
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["meta"]) == {"desc": "victim", "seed": 1}
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temp file


def test_load_of_a_missing_key_is_false_and_leaves_the_model(tmp_path: Path) -> None:
    model, ref = _model(3), _model(3)
    assert not ModelCache(tmp_path).load("absent", model)
    assert _equal(model, ref)


def test_get_or_train_trains_once_then_loads(tmp_path: Path) -> None:
    cache, train = ModelCache(tmp_path), CountingTrainer()
    first, cached = cache.get_or_train("key", _model(0), train)
    assert (train.calls, cached, first.training) == (1, False, False)
    second, cached = cache.get_or_train("key", _model(0), train)
    assert (train.calls, cached, second.training) == (1, True, False)
    assert _equal(first, second)
    assert not _equal(second, _model(0))  # the trained weights, not the initial ones
    _, cached = cache.get_or_train("other-key", _model(0), train)
    assert (train.calls, cached) == (2, False)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a safetensors file" * 10, "truncate"],
    ids=["empty", "garbage", "truncated"],
)
def test_corrupt_cache_file_is_ignored_and_retrained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes | str
) -> None:
    cache, train = ModelCache(tmp_path), CountingTrainer()
    good, _ = cache.get_or_train("key", _model(0), train)
    path = cache.path("key")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    with caplog.at_level(logging.WARNING, logger="cpoison.training.cache"):
        model, cached = cache.get_or_train("key", _model(0), train)
    assert (train.calls, cached) == (2, False)
    assert any("ignoring unreadable cached model" in r.getMessage() for r in caplog.records)
    assert _equal(model, good)
    assert cache.load("key", _model(5))  # the retrained model replaced the bad file


def test_cached_model_of_another_architecture_is_retrained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, train = ModelCache(tmp_path), CountingTrainer()
    cache.save("key", _model(0, hidden=8))
    with caplog.at_level(logging.WARNING, logger="cpoison.training.cache"):
        model, cached = cache.get_or_train("key", _model(0, hidden=16), train)
    assert (train.calls, cached) == (1, False)
    assert model.state_dict()["body.1.weight"].shape[0] == 16
    assert "ignoring unreadable" in caplog.text


def test_root_none_disables_caching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cache, train = ModelCache(None), CountingTrainer()
    assert cache.root is None and cache.path("key") is None
    cache.save("key", _model(0))
    assert not cache.load("key", _model(1))
    cache.get_or_train("key", _model(0), train)
    _, cached = cache.get_or_train("key", _model(0), train)
    assert (train.calls, cached) == (2, False)
    assert not list(tmp_path.rglob("*"))  # nothing written anywhere


def test_cache_key_is_stable_and_sensitive() -> None:
    recipe = Recipe(epochs=3)
    key = cache_key(dataset="digits", recipe=recipe, seed=0, kwargs={"a": 1, "b": 2})
    assert len(key) == 24 and all(c in "0123456789abcdef" for c in key)
    # order of parts and of dict entries does not matter; a dumped model equals the model
    assert key == cache_key(kwargs={"b": 2, "a": 1}, seed=0, recipe=recipe.model_dump(),
                            dataset="digits")
    others = [
        cache_key(dataset="digits", recipe=Recipe(epochs=4), seed=0, kwargs={"a": 1, "b": 2}),
        cache_key(dataset="digits", recipe=recipe, seed=1, kwargs={"a": 1, "b": 2}),
        cache_key(dataset="fashion-mnist", recipe=recipe, seed=0, kwargs={"a": 1, "b": 2}),
        cache_key(dataset="digits", recipe=recipe, seed=0, kwargs={"a": 1, "b": 3}),
    ]
    assert len({key, *others}) == 5


def test_tensor_digest_covers_values_shape_and_dtype() -> None:
    t = torch.arange(6, dtype=torch.int32)
    d = tensor_digest(t)
    assert d == tensor_digest(t.clone()) and len(d) == 16
    assert d != tensor_digest(t.view(2, 3))  # same bytes, other shape
    assert d != tensor_digest(t.view(torch.float32))  # same bytes, other dtype
    assert d != tensor_digest(t + 1)
    assert tensor_digest(None) != tensor_digest(torch.empty(0))
    assert tensor_digest(t, None) != tensor_digest(None, t)


def test_default_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPOISON_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CPOISON_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "cpoison"
