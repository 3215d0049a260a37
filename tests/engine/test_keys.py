"""Identity from content (SPEC 11): keys change with every field that determines an
artifact and with nothing else; datasets are identified by content, not by name; models
trained on one device type are not served to another unless asked."""

from __future__ import annotations

import pytest
import torch
from experiment_helpers import one_thread

from cpoison.data import ImageDataset
from cpoison.engine import keys
from cpoison.engine.artifacts import ArtifactStore
from cpoison.experiments.config import ModelSpec
from cpoison.experiments.presets import get_preset
from cpoison.experiments.workspace import Workspace
from cpoison.training import Recipe

BASE = dict(
    dataset="d" * 24, indices=torch.arange(10), poison_ids=None, poison_delta=None,
    recipe=Recipe(epochs=2), arch="mlp", arch_kwargs={"hidden": 32}, seed=0,
    device_type="cpu", trainer_version=2, defense=None,
)
CHANGES = dict(
    dataset="e" * 24, indices=torch.arange(11), poison_ids=torch.tensor([1]),
    recipe=Recipe(epochs=3), arch="convnet", arch_kwargs={"hidden": 64}, seed=1,
    device_type="cuda", trainer_version=3, defense={"name": "maxup"},
)


def test_every_model_field_changes_the_key_and_nothing_else_does():
    base = keys.model_key(**BASE)
    assert base == keys.model_key(**{**BASE, "indices": torch.arange(10).clone()})
    seen = {base}
    for field, value in CHANGES.items():
        changed = dict(BASE, **{field: value})
        if field == "poison_ids":
            changed["poison_delta"] = torch.zeros(1, 1, 2, 2)
        key = keys.model_key(**changed)
        assert key not in seen, field
        seen.add(key)


def test_digest_ignores_key_order_and_sees_values():
    assert keys.digest(a=1, b={"x": 1, "y": 2}) == keys.digest(b={"y": 2, "x": 1}, a=1)
    assert keys.digest(a=1) != keys.digest(a=2) != keys.digest(a="1")


def _dataset(name: str, shift: int) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 200, (120, 1, 8, 8), generator=g, dtype=torch.uint8) + shift
    labels = torch.arange(120) % 3
    return ImageDataset(name, train, labels, train[:30].clone(), labels[:30].clone(),
                        ("a", "b", "c"))


def test_dataset_digest_is_content_not_name():
    a, b, c = _dataset("same", 0), _dataset("same", 1), _dataset("other-name", 0)
    assert keys.dataset_digest(a) != keys.dataset_digest(b)
    assert keys.dataset_digest(a) == keys.dataset_digest(c)


def _workspace(dataset: ImageDataset, store, any_device: bool = False) -> Workspace:
    preset = get_preset("digits", "cpu").model_copy(update={
        "dataset": dataset.name, "model_kwargs": {"hidden": 16},
        "recipe": Recipe(epochs=1, crop_padding=0, flip=False)})
    return Workspace.for_dataset(dataset, preset, ArtifactStore(store), torch.device("cpu"),
                                 progress=False, any_device=any_device)


def test_same_name_other_content_never_shares_a_model(tmp_path):
    first = _workspace(_dataset("same", 0), tmp_path)
    second = _workspace(_dataset("same", 1), tmp_path)
    with one_thread():
        first.train(first.trainset(first.split.victim_train), seed=0, desc="a")
        second.train(second.trainset(second.split.victim_train), seed=0, desc="b")
    assert first.trained == ["a"] and second.trained == ["b"]
    assert len(list((tmp_path / "models").glob("*.safetensors"))) == 2


def test_models_of_another_device_type_only_when_asked(tmp_path):
    ws = _workspace(_dataset("d", 0), tmp_path)
    data = ws.trainset(ws.split.victim_train)
    donor = ws.build(0)  # stored as if trained on a GPU
    ws.store.save_model(ws.model_key(data, 0, device_type="cuda"), donor, {})
    with one_thread():
        ws.train(data, 0, desc="cpu run")
    assert ws.trained == ["cpu run"]  # not served from the cuda model
    lenient = _workspace(_dataset("d", 0), tmp_path / "other", any_device=True)
    lenient.store.save_model(lenient.model_key(data, 0, device_type="cuda"), donor, {})
    model = lenient.train(data, 0, desc="lenient")
    assert lenient.trained == []
    for p, q in zip(model.parameters(), donor.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("spec", [None, ModelSpec(arch="mlp"), ModelSpec(arch="mlp", kwargs=None)])
def test_a_bare_preset_architecture_takes_the_preset_arguments(tmp_path, spec):
    ws = _workspace(_dataset("d", 0), tmp_path)
    assert ws.spec(spec) == ModelSpec(arch="mlp", kwargs={"hidden": 16})
    assert ws.spec(ModelSpec(arch="convnet")).kwargs == {}
