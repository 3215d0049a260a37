"""The workspace's artifact store: library callers get the default store, as the CLI does,
so a model is never trained twice; ``use_cache=False`` trains afresh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_the_private_store_of_use_cache_false_is_removed_at_exit(tmp_path) -> None:
    """A process that opened a workspace without the cache and trained into its private
    store leaves no store behind when it exits."""
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from cpoison.experiments.presets import get_preset\n"
        "from cpoison.experiments.workspace import Workspace\n"
        "p = get_preset('digits', 'cpu')\n"
        "p = p.model_copy(update={'recipe': p.recipe.model_copy(update={'epochs': 1})})\n"
        "ws = Workspace.open(p, seed=0, progress=False, use_cache=False)\n"
        "ws.train(ws.trainset(ws.split.victim_train[:64]), seed=0)\n"
        "print(ws.store.root)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    store = Path(out.stdout.strip().splitlines()[-1])
    assert store.name.startswith("cpoison-store-")
    assert not store.exists()
