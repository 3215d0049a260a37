"""Registries from tables: a defense, a dataset, a model, a goal and an attack registered
from this test module (one definition and one registration each, nothing edited elsewhere)
run through a tiny grid of the engine; a training setting is one class and one line in its table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest
import torch
from experiment_helpers import one_thread, stored_rows, tiny_raw
from pydantic import ConfigDict, Field

from cpoison.api.runner import run_experiment
from cpoison.attacks import Attack, PoisonSet, register_attack
from cpoison.attacks.base import AttackConfigBase
from cpoison.attacks.goals import GOALS, GoalKind, register_goal
from cpoison.attacks.goals.base import true_mask
from cpoison.attacks.registry import ATTACKS
from cpoison.conformal import HPS, register_score
from cpoison.conformal.scores import _REGISTRY
from cpoison.data import registry as data_registry
from cpoison.data.digits import load_digits
from cpoison.defenses import DEFENSES, Defense, DefenseConfigBase, Prepared, subset
from cpoison.defenses.registry import register_defense
from cpoison.errors import ConfigError
from cpoison.experiments.config import validate_config
from cpoison.experiments.settings import SETTINGS, setting_for
from cpoison.experiments.settings.scratch import Scratch
from cpoison.models import MODELS
from cpoison.models.mlp import mlp
from cpoison.models.registry import register_model


class DropFirstConfig(DefenseConfigBase):
    """A toy filter: drops the first ``share`` of the training points."""

    name: Literal["drop_first"] = "drop_first"
    share: float = 0.1


class DropFirst(Defense):
    name = "drop_first"

    def prepare(self, data, train_fn, seed):
        keep = torch.ones(len(data), dtype=torch.bool)
        keep[: int(self.config.share * len(data))] = False
        return Prepared(subset(data, keep), data.indices[~keep], {"toy": True})


def tiny_digits(root: Path | None, download: bool, seed: int):
    """The digits, under another name (its keys come from its content)."""
    return replace(load_digits(seed=seed), name="tiny-digits")


def small_mlp(in_channels: int, num_classes: int, image_size: int, hidden: int = 16):
    return mlp(in_channels, num_classes, image_size, hidden=hidden)


@pytest.fixture
def registered():
    register_defense(DropFirstConfig, DropFirst)
    data_registry.register_dataset("tiny-digits", tiny_digits)
    register_model("small-mlp", small_mlp)
    try:
        yield
    finally:
        DEFENSES.pop("drop_first", None)
        data_registry._LOADERS.pop("tiny-digits", None)
        MODELS.pop("smallmlp", None)


def test_a_toy_defense_dataset_and_model_run_through_a_grid(registered, tmp_path):
    raw = tiny_raw(dataset="tiny-digits", preset="audit-quick", n_victims=1,
                   surrogate="small-mlp", victim="small-mlp", attacks=[{"name": "randun"}],
                   grid={"defense": ["none", {"name": "drop_first", "share": 0.2}]})
    config = validate_config(raw)
    assert config.grid["defense"][1] == {"name": "drop_first", "share": 0.2}
    with one_thread():
        summary = run_experiment(config, tmp_path / "out", store=tmp_path / "store",
                                 progress=False)
    defenses = {r["defense"] for r in summary["rows"]}
    assert defenses == {"none", "drop_first(share=0.2)"}
    toy = [r for r in stored_rows(tmp_path / "out") if r["defense"] != "none"]
    assert toy and all(r["defense_record"]["toy"] for r in toy)
    assert all(r["clean_removed_share"] > 0.1 for r in toy)


def test_the_defense_config_dumps_every_field(registered):
    config = validate_config(tiny_raw(defense={"name": "drop_first", "share": 0.3}))
    assert config.model_dump(mode="json")["defense"] == {"name": "drop_first", "share": 0.3}
    epic = validate_config(tiny_raw(defense="epic")).model_dump(mode="json")["defense"]
    assert {"name", "every", "fraction"} <= set(epic)


def test_a_setting_is_a_class_and_a_table_line(monkeypatch):
    class Tagged(Scratch):
        name = "tagged"

    monkeypatch.setitem(SETTINGS, "scratch", Tagged)
    assert setting_for(validate_config(tiny_raw())).name == "tagged"


class KeepTwo(GoalKind):
    """A toy goal: push every label but y* and the runner-up out (two-label sets)."""

    name = "keep-two"
    effect_metric = "goal_effect"

    def masks(self, goal, target_y, num_classes, labels_in=None, true_label="keep"):
        true = true_mask(target_y, num_classes)
        return ~true, torch.zeros_like(true), true

    def objective(self, goal, sets, target_y):
        return float(sets.float().sum(1).sub(2).abs().mean())

    def metrics(self, goal, benign_sets, victim_sets, labels, target_class=None):
        b, v = benign_sets["targets"].float(), victim_sets["targets"].float()
        return {"goal_effect": float((b.sum(1) - 2).abs().mean() - (v.sum(1) - 2).abs().mean())}

    def aim(self, goal, class_name):
        return "leave two labels in the targets' sets"


class ToyHPS(HPS):
    """A toy score: HPS under another name."""


def test_a_toy_goal_and_score_run_through_a_grid(tmp_path):
    """A goal kind and a score registered from this module are accepted by configs; the
    goal crafts through the one loss (its masks) and its own metrics reach the rows; the
    score calibrates the victims (HPS's sets under another name)."""
    register_goal(KeepTwo())
    register_score("toy-hps", ToyHPS)
    try:
        raw = tiny_raw(n_victims=1, goal={"kind": "keep-two"}, scores=["hps", "toy-hps"],
                       attacks=[{"name": "ours", "crafting": {"iterations": 2, "restarts": 1,
                                                              "augment": False}}],
                       grid={"budget": [0.05, 0.1]})
        config = validate_config(raw)
        with one_thread():
            summary = run_experiment(config, tmp_path / "out", store=tmp_path / "store",
                                     progress=False)
        rows = stored_rows(tmp_path / "out")
        assert {r["goal"] for r in rows} == {"keep-two"} and len(summary["rows"]) >= 2
        assert all("goal_effect" in r for r in rows)
        by = {(r["repeat"], r["attack"], r["victim"], r["budget"], r["score"]):
              r["victim_set_size"] for r in rows}
        hps = {k[:4]: v for k, v in by.items() if k[4] == "hps"}
        assert hps and all(by[(*k, "toy-hps")] == v for k, v in hps.items())
    finally:
        GOALS.pop("keep-two", None)
        _REGISTRY.pop("toy-hps", None)


class CornerConfig(AttackConfigBase):
    """A toy attack: +eps on every pixel of the poisons' bases (a constant brightening)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["corner"] = "corner"
    label: str | None = None
    sign: int = Field(1, description="+1 brightens, -1 darkens")


class Corner(Attack):
    name = "corner"

    def __init__(self, config: CornerConfig) -> None:
        self.config = config

    def craft(self, ctx):
        bases = ctx.bases.cpu()
        delta = torch.full_like(bases, self.config.sign * ctx.eps)
        if ctx.clip is not None:
            delta = (bases + delta).clamp(*ctx.clip) - bases
        return PoisonSet(ctx.base_ids, delta, ctx.inject, {"attack": self.name})


def test_an_attack_registered_from_outside_runs_through_the_engine(tmp_path):
    """An attack defined in this module and registered with one call is accepted by an
    experiment config (its own fields validated with their locations, its dump complete),
    crafts poisons of the right size and reaches the rows beside a built-in attack."""
    register_attack("corner", CornerConfig, Corner)
    try:
        with pytest.raises(ConfigError, match=r"attacks\.0\.sign"):
            validate_config(tiny_raw(attacks=[{"name": "corner", "sign": "up"}]))
        with pytest.raises(ConfigError, match="unknown attack 'nope'"):
            validate_config(tiny_raw(attacks=[{"name": "nope"}]))
        raw = tiny_raw(n_victims=1, attacks=[{"name": "corner", "sign": -1}, {"name": "randun"}])
        config = validate_config(raw)
        assert config.model_dump(mode="json")["attacks"][0] == {
            "name": "corner", "label": None, "sign": -1}
        with one_thread():
            run_experiment(config, tmp_path / "out", store=tmp_path / "store", progress=False)
        rows = stored_rows(tmp_path / "out")
        assert {r["attack"] for r in rows} == {"corner", "randun"}
        corner = [r for r in rows if r["attack"] == "corner"]
        assert all(r["n_poisons"] > 0 for r in corner)
    finally:
        ATTACKS.pop("corner", None)
