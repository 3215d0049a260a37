"""The artifact store (SPEC 11): models, poison sets and JSON under content keys, in a
folder or behind an fsspec URL, written atomically, unreadable files treated as absent."""

from __future__ import annotations

import pytest
import torch

from cpoison.attacks import PoisonSet
from cpoison.engine.artifacts import ArtifactStore, StoreError
from cpoison.errors import DataError
from cpoison.models import build_model


@pytest.fixture(params=["folder", "memory-url"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "folder":
        return ArtifactStore(tmp_path / "store")
    return ArtifactStore(f"memory://cpoison-test-{tmp_path.name}")


def test_models_round_trip(store):
    model = build_model("mlp", 1, 3, 8, seed=0, hidden=8)
    assert not store.has_model("k1") and not store.load_model("k1", model)
    store.save_model("k1", model, {"desc": "x"})
    other = build_model("mlp", 1, 3, 8, seed=1, hidden=8)
    assert store.has_model("k1") and store.load_model("k1", other)
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)


def test_poisons_and_json_round_trip(store):
    poisons = PoisonSet(torch.tensor([4, 2]), torch.full((2, 1, 3, 3), 0.01),
                        meta={"attack": "ours", "targets": [1, 2]})
    assert not store.has_poisons("p")
    store.save_poisons("p", poisons)
    back = store.load_poisons("p")
    assert back.digest() == poisons.digest() and back.meta == poisons.meta
    store.put_json("cells", "c", {"rows": [{"x": float("nan"), "y": 1.0}]})
    assert store.get_json("cells", "c") == {"rows": [{"x": None, "y": 1.0}]}
    assert store.get_json("cells", "absent") is None
    with pytest.raises(DataError, match="not in the artifact store"):
        store.load_poisons("absent")


def test_unreadable_model_is_treated_as_absent(tmp_path):
    store = ArtifactStore(tmp_path)
    store.put("models", "bad", ".safetensors", b"not safetensors")
    assert not store.load_model("bad", build_model("mlp", 1, 3, 8, hidden=8))


def test_tampered_poisons_are_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save_poisons("p", PoisonSet(torch.tensor([1]), torch.zeros(1, 1, 2, 2)))
    store.put("poisons", "p", ".safetensors",
              PoisonSet(torch.tensor([2]), torch.zeros(1, 1, 2, 2)).to_bytes())
    with pytest.raises(DataError, match="does not match the hash"):
        store.load_poisons("p")


def test_unknown_url_scheme_is_one_clear_error():
    with pytest.raises(StoreError, match="artifact store nosuchfs://x"):
        ArtifactStore("nosuchfs://x")
