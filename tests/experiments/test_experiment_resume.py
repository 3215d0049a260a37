"""Resuming after a kill (SPEC 10, 11): finished cells are not recomputed, stored poisons
are loaded rather than crafted again, stored models are loaded rather than trained, and the
final rows equal those of an uninterrupted run."""

from __future__ import annotations

import shutil

import pytest
from experiment_helpers import LABELS, comparable, one_thread, stored_rows, tiny_config

import cpoison.experiments.protocol as protocol
import cpoison.experiments.workspace as workspace
from cpoison.api.runner import run_experiment
from cpoison.experiments.store import ResultStore


def run(out, store, config=None):
    with one_thread():
        return run_experiment(config or tiny_config(), out, store=store, progress=False)


def test_resume_after_kill(tmp_path, reference_run, monkeypatch):
    out, store = tmp_path / "out", tmp_path / "store"

    # 1. Killed while storing the first cell of the second victim.
    add_cell = ResultStore.add_cell

    def killed_at_second_victim(self, key, point, repeat, attack, victim, rows):
        if victim == 1:
            raise KeyboardInterrupt
        return add_cell(self, key, point, repeat, attack, victim, rows)

    with monkeypatch.context() as m:
        m.setattr(ResultStore, "add_cell", killed_at_second_victim)
        with pytest.raises(KeyboardInterrupt):
            run(out, store)
    partial = stored_rows(out)
    assert {(r["attack"], r["victim"]) for r in partial} == {(label, 0) for label in LABELS}
    assert len(partial) == 4  # whole cells only: 2 attacks x 2 scores
    assert not (out / "summary.json").exists()

    # 2. Re-run into the same folder, counting crafting and real trainings.
    crafted: list[str] = []
    trained: list[str] = []
    build_attack, train_model = protocol.build_attack, workspace.train_model

    def counting_build_attack(config):
        crafted.append(config.name)
        return build_attack(config)

    def counting_training(model, data, recipe, seed, device="cpu", progress=True,
                          desc="train"):
        trained.append(desc)
        return train_model(model, data, recipe, seed, device, progress, desc)

    monkeypatch.setattr(protocol, "build_attack", counting_build_attack)
    monkeypatch.setattr(workspace, "train_model", counting_training)
    summary = run(out, store)

    assert crafted == [], "poisons must be loaded from the store, not crafted again"
    # The cell (ours, victim 1) was computed and stored before the kill hit its database
    # write: it is taken from the store. Only randun's victim 1 is really trained.
    assert trained == ["randun r0 v1"], trained
    final = stored_rows(out)
    assert comparable([r for r in final if r["victim"] == 0]) == comparable(partial)
    assert comparable(final) == comparable(stored_rows(reference_run.out))
    assert comparable(summary["rows"]) == comparable(reference_run.summary["rows"])


def test_rerun_of_a_finished_folder_does_nothing(tmp_path, reference_run, monkeypatch):
    """A finished output folder re-run trains and crafts nothing and keeps its rows, even
    with an empty artifact store (its cells are in its database)."""
    out = tmp_path / "out"
    shutil.copytree(reference_run.out, out)
    before = stored_rows(out)

    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may be trained or crafted")

    monkeypatch.setattr(workspace, "train_model", forbidden)
    monkeypatch.setattr(protocol, "build_attack", forbidden)
    summary = run(out, tmp_path / "empty-store")
    assert comparable(stored_rows(out)) == comparable(before)
    assert comparable(summary["rows"]) == comparable(reference_run.summary["rows"])
    assert summary["trained_models"] == 0
