"""Explicit model specs (SPEC 11): surrogate and victim are separate; setting one never
changes the other; every name is checked before anything trains."""

from __future__ import annotations

import pytest
from experiment_helpers import tiny_config, tiny_raw

from cpoison.engine import identity
from cpoison.engine.artifacts import ArtifactStore, StoreError
from cpoison.errors import ConfigError
from cpoison.experiments.config import ModelSpec, validate_config
from cpoison.experiments.presets import get_preset
from cpoison.experiments.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace.open(get_preset("digits", "cpu"), seed=0,
                          store=tmp_path_factory.mktemp("store"), progress=False)


def test_setting_the_victim_never_changes_the_surrogate(ws):
    default, other = tiny_config(), tiny_config(victim="convnet")
    assert other.victim == ModelSpec(arch="convnet") and other.surrogate is None
    assert identity.surrogate_key(ws, default, 0) == identity.surrogate_key(ws, other, 0)
    assert identity.benign_key(ws, default, 0, 0) != identity.benign_key(ws, other, 0, 0)
    assert ws.build(0, other.surrogate).__class__ is ws.build(0, default.surrogate).__class__
    assert type(ws.build(0, other.victim)).__name__ != type(ws.build(0, default.victim)).__name__


def test_setting_the_surrogate_never_changes_the_victims(ws):
    default = tiny_config()
    other = tiny_config(surrogate={"arch": "mlp", "kwargs": {"hidden": 64}})
    assert identity.benign_key(ws, default, 0, 0) == identity.benign_key(ws, other, 0, 0)
    assert identity.surrogate_key(ws, default, 0) != identity.surrogate_key(ws, other, 0)


@pytest.mark.parametrize(("change", "message"), [
    ({"victim": "resnet-19"}, r"'victim\.arch'.*unknown model 'resnet-19'"),
    ({"surrogate": {"arch": "mlp", "kwargs": {"width": 3}}}, r"takes no argument 'width'"),
    ({"attacks": [{"name": "ours", "score": "foo"}]}, r"attacks\.0\.score: unknown score"),
    ({"attacks": [{"name": "nope"}]}, r"'attacks\.0'"),
    ({"goal": {"kind": "sideways"}}, r"'goal\.kind'"),
    ({"dataset": "mnist-but-wrong"}, r"'dataset'.*unknown dataset"),
])
def test_names_are_checked_when_the_config_loads(change, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_raw(**change))


def test_store_probe_names_an_unwritable_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot be written"):
        ArtifactStore(blocker / "store").check_writable()
