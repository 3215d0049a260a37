"""The workspace's artifact store: library callers get the default store, as the CLI does,
so a model is never trained twice; ``use_cache=False`` trains afresh."""

from __future__ import annotations

import pytest
import torch
from experiment_helpers import one_thread

from cpoison.experiments.presets import get_preset
from cpoison.experiments.workspace import Workspace


def test_default_cache_is_used_and_can_be_turned_off(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPOISON_CACHE", str(tmp_path / "cache"))
    preset = get_preset("digits", "cpu").model_copy(
        update={"recipe": get_preset("digits", "cpu").recipe.model_copy(update={"epochs": 2})})
    ws = Workspace.open(preset, seed=0, progress=False)
    data = ws.trainset(ws.split.victim_train)
    with one_thread():
        first = ws.train(data, seed=3)
        stored = list((tmp_path / "cache" / "models").glob("*.safetensors"))
        assert len(stored) == 1
        seconds = ws.train_seconds
        again = ws.train(data, seed=3)  # loaded, not trained
        assert ws.train_seconds == seconds
        fresh_ws = Workspace.open(preset, seed=0, progress=False, use_cache=False)
        fresh = fresh_ws.train(data, seed=3)
    assert fresh_ws.train_seconds > 0
    for a, b, c in zip(first.parameters(), again.parameters(), fresh.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert len(list((tmp_path / "cache" / "models").glob("*.safetensors"))) == 1
