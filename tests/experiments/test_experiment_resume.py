"""Resuming after a kill (SPEC 10): finished victims are not recomputed, saved poisons are
loaded rather than crafted again, and the final rows equal those of an uninterrupted run."""

from __future__ import annotations

import shutil

import pytest
from experiment_helpers import LABELS, comparable, one_thread, stored_rows, tiny_config

import cpoison.experiments.protocol as protocol
import cpoison.experiments.workspace as workspace
from cpoison.experiments.runner import run_experiment
from cpoison.experiments.store import ResultStore


def run(out, cache):
    with one_thread():
        return run_experiment(tiny_config(), out, cache_dir=cache, progress=False)


def test_resume_after_kill(tmp_path, reference_run, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"

    # 1. Killed while storing the first result of the second victim.
    add_victim = ResultStore.add_victim

    def killed_at_second_victim(self, repeat, attack, victim, rows):
        if victim == 1:
            raise KeyboardInterrupt
        return add_victim(self, repeat, attack, victim, rows)

    with monkeypatch.context() as m:
        m.setattr(ResultStore, "add_victim", killed_at_second_victim)
        with pytest.raises(KeyboardInterrupt):
            run(out, cache)
    partial = stored_rows(out)
    assert {(r["attack"], r["victim"]) for r in partial} == {(label, 0) for label in LABELS}
    assert len(partial) == 4  # whole victims only: 2 attacks x 2 scores
    assert not (out / "summary.json").exists()
    for label in LABELS:
        assert (out / "poisons" / f"r0-{label}.safetensors").is_file()

    # 2. Re-run into the same folder, counting crafting, model requests and real trainings.
    crafted: list[str] = []
    requested: list[str] = []
    trained: list[str] = []
    build_attack, ws_train, train_model = (protocol.build_attack, workspace.Workspace.train,
                                           workspace.train_model)

    def counting_build_attack(config):
        attack = build_attack(config)
        craft = attack.craft

        def counted(ctx):
            crafted.append(attack.name)
            return craft(ctx)

        attack.craft = counted
        return attack

    def counting_request(self, data, seed, desc="train", *args, **kwargs):
        requested.append(desc)
        return ws_train(self, data, seed, desc, *args, **kwargs)

    def counting_training(model, data, recipe, seed, device="cpu", progress=True,
                          desc="train"):
        trained.append(desc)
        return train_model(model, data, recipe, seed, device, progress, desc)

    monkeypatch.setattr(protocol, "build_attack", counting_build_attack)
    monkeypatch.setattr(workspace.Workspace, "train", counting_request)
    monkeypatch.setattr(workspace, "train_model", counting_training)
    summary = run(out, cache)

    assert crafted == [], "poisons must be loaded from out/poisons, not crafted again"
    assert requested, "the second victim must be trained"
    assert not [d for d in requested if d.endswith(" v0")], requested
    # Surrogate, benign and 'ours' models of victim 1 were cached before the kill: only the
    # randun victim 1 is really trained.
    assert len(trained) == 1 and trained[0].endswith(" v1"), trained
    # The first victim's rows are untouched, and all rows equal an uninterrupted run's.
    final = stored_rows(out)
    assert comparable([r for r in final if r["victim"] == 0]) == comparable(partial)
    assert comparable(final) == comparable(stored_rows(reference_run.out))
    assert comparable(summary["rows"]) == comparable(reference_run.summary["rows"])


def test_rerun_of_a_finished_folder_does_nothing(tmp_path, reference_run, monkeypatch):
    """A finished output folder re-run trains and crafts nothing and keeps its rows."""
    out = tmp_path / "out"
    shutil.copytree(reference_run.out, out)
    before = stored_rows(out)

    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may be trained or crafted")

    monkeypatch.setattr(workspace.Workspace, "train", forbidden)
    monkeypatch.setattr(protocol, "build_attack", forbidden)
    summary = run(out, tmp_path / "empty-cache")
    assert comparable(stored_rows(out)) == comparable(before)
    assert comparable(summary["rows"]) == comparable(reference_run.summary["rows"])
