"""The shipped configs of the paper's experiments (SPEC 9, issues 12, 20): every config of
every scale validates with all its grid cells, the ``paper`` scale has the paper's sizes
(datasets, architecture, victims, repeats, budgets, eps, scores, defenses, attacks), the
``cpu`` scale has 4 victim pairs x 5 repeats and targets with room, and each of its headers
states its cost by the per-training estimate; the published values are those of SPEC 9."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from cpoison.engine.grid import expand_grid
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.presets import get_preset
from cpoison.reproduce import paper_values as pv
from cpoison.reproduce.experiments import (
    EXPERIMENTS,
    SCALES,
    Estimate,
    Part,
    estimate,
    estimate_experiments,
    parts,
    runs_needed,
)
from cpoison.resources import resolve_config

ALL_PARTS = [p for scale in SCALES for exp in EXPERIMENTS for p in parts(exp, scale)]
EPS = float(Fraction(16, 255))


def _load(exp: str, scale: str) -> list[ExperimentConfig]:
    return [p.load() for p in parts(exp, scale)]


def _budgets(config: ExperimentConfig) -> list[float]:
    return sorted({point.config.budget for point in expand_grid(config)})


@pytest.mark.parametrize("part", ALL_PARTS, ids=lambda p: p.config_name)
def test_every_config_and_grid_cell_validates(part: Part) -> None:
    config = part.load()
    points = expand_grid(config)
    assert points, part.config_name
    for point in points:
        assert get_preset(point.config.dataset, point.config.preset).dataset == \
            point.config.dataset


@pytest.mark.parametrize("scale", SCALES)
def test_every_experiment_has_configs_at_every_scale(scale: str) -> None:
    for exp, info in EXPERIMENTS.items():
        if info.source:  # E2 reads E1's overconfidence runs
            assert not parts(exp, scale)
            needed = runs_needed([exp], scale)
            assert needed and {p.experiment for p in needed} == {info.source}
            assert all(p.load().goal.kind == "overconfidence" for p in needed)
        else:
            assert parts(exp, scale), (exp, scale)


def test_paper_scale_matches_the_paper() -> None:
    every = [c for exp in EXPERIMENTS for c in _load(exp, "paper")]
    assert len(every) == 8
    for config in every:
        assert config.preset == "paper"
        assert (config.n_victims, config.n_repeats) == (8, 10)  # paper Sec. 5
        assert config.alpha == pytest.approx(0.1)  # coverage 0.9
        assert config.victim is None and config.surrogate is None
        assert get_preset(config.dataset, "paper").model == "resnet18"
        if not config.name.startswith("E7"):
            assert config.eps == pytest.approx(EPS)
    e1 = _load("E1", "paper")
    assert {c.dataset: c.goal.kind for c in e1} == {
        "cifar10": "overconfidence", "cifar100": "overconfidence",
        "tiny-imagenet": "underconfidence"}
    for config in e1:
        assert _budgets(config) == [0.005, 0.01, 0.02]
        assert {"hps", "raps"} <= set(config.scores)
        assert [a.name for a in config.attacks] == ["ours", "randun", "randga"]
    for exp in ("E3", "E4", "E5", "E6", "E7"):
        assert [c.dataset for c in _load(exp, "paper")] == ["cifar10"], exp
    (e3,) = _load("E3", "paper")
    assert _budgets(e3) == [0.02]
    assert set(e3.scores) == {"hps", "aps", "raps", "rscp"}
    assert e3.grid["defense"] == ["none", "maxup", "adversarial_poisoning", "epic"]
    (e4,) = _load("E4", "paper")
    assert _budgets(e4) == [0.005, 0.01, 0.02] and e4.scores == ("hps",)
    kinds = [(a.name, getattr(a, "order", None)) for a in e4.attacks]
    assert kinds == [("ours", 1), ("ours", 2), ("metapoison", None)]
    (e5,) = _load("E5", "paper")
    assert _budgets(e5) == [0.005, 0.01] and e5.setting == "black-box"
    assert [getattr(a, "loss", a.name) for a in e5.attacks] == ["l2", "l3", "randun"]
    (e6,) = _load("E6", "paper")
    assert _budgets(e6) == [0.02] and len(e6.grid["targets.set_size"]) >= 2
    (e7,) = _load("E7", "paper")
    eps = sorted(p.config.eps for p in expand_grid(e7))
    assert _budgets(e7) == [0.02] and len(eps) >= 3 and pytest.approx(eps[1]) == EPS
    assert [a.loss for a in e7.attacks] == ["l3"]


def test_cpu_scale_has_power_and_targets_with_room() -> None:
    """Every CPU experiment: Fashion-MNIST, >= 4 victim pairs x 5 repeats; the
    overconfidence experiments with a random class draw targets whose surrogate set holds
    >= 2 labels (E6 chooses set sizes of 2 and 3 itself; E1's underconfidence part takes
    singletons, the sets with the most room to grow)."""
    for exp in EXPERIMENTS:
        for config in _load(exp, "cpu"):
            assert (config.dataset, config.preset) == ("fashion-mnist", "cpu-full")
            assert config.n_victims >= 4 and config.n_repeats >= 5, config.name
            if config.goal.kind != "overconfidence":
                assert config.targets.set_size == 1, config.name
            elif "targets.set_size" in config.grid:
                assert min(config.grid["targets.set_size"]) >= 2, config.name
            else:
                assert config.targets.target_class is None, config.name
                assert config.targets.min_set_size == 2, config.name


def _stated_hours(part: Part) -> float:
    header = [line for line in resolve_config(part.config_name).read_text().splitlines()
              if line.startswith("#")]
    found = re.search(r"about (\d+(?:\.\d+)?) h\b", " ".join(header))
    assert found, f"{part.config_name}: its header states no cost ('about N h')"
    return float(found.group(1))


def test_cpu_headers_state_their_cost() -> None:
    """Each CPU config's header states what it adds to the ones before it (in hours on 2
    cores, by the per-training estimate), within 20 %; shared work counts once."""
    total = Estimate()
    for part in runs_needed(list(EXPERIMENTS), "cpu"):
        before = total.seconds("cpu")
        estimate([part.load()], "cpu", into=total)
        hours = (total.seconds("cpu") - before) / 3600
        assert _stated_hours(part) == pytest.approx(hours, rel=0.2, abs=0.1), part.config_name
    est = estimate_experiments("cpu")
    # shared work counts once: E5 and E7 reuse E1's surrogates and benign victims
    assert est["E5"].surrogates == est["E5"].benign == 0
    assert est["all"].trainings == sum(e.trainings for k, e in est.items() if k != "all")


def test_test_scale_is_digits() -> None:
    for exp in EXPERIMENTS:
        for config in _load(exp, "test"):
            assert config.dataset == "digits" and config.n_victims == 1


def test_published_values_are_spec_9s() -> None:
    assert pv.FIG1_CIFAR10_2PCT["hps"]["reduction_ratio"].value == 0.48
    assert pv.FIG1_CIFAR10_2PCT["raps"]["benign_set_size"].value == 2.84
    assert pv.BASELINES_BELOW.value == 0.32
    assert [pv.TABLE1["none"][s].value for s in ("hps", "aps", "raps", "rscp")] == [
        0.46, 0.47, 0.54, 0.49]
    assert pv.TABLE1["maxup"]["rscp"].text() == "0.26 ± 0.07"
    assert pv.TABLE1["epic"]["hps"].value == 0.38
    assert pv.L3_OVER_L2[0.01].value == 0.02
    assert pv.TABLE2["second-order"]["minutes"].text() == "96-369"  # type: ignore[union-attr]
