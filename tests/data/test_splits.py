"""Seeded data roles (SPEC 2): make_split, select_targets, evaluation_indices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cpoison.data.splits import RoleSplit, evaluation_indices, make_split, select_targets
from cpoison.errors import ConfigError

ROLES = ("attacker_train", "attacker_cal", "victim_train", "victim_cal")


def _sets(split: RoleSplit) -> dict[str, set[int]]:
    return {r: set(getattr(split, r).tolist()) for r in ROLES}


def _check_index_tensors(split: RoleSplit, pool: int) -> None:
    for role in ROLES:
        t = getattr(split, role)
        assert t.dtype == torch.long and t.dim() == 1
        assert torch.equal(t, t.unique())  # sorted, no repeats
        assert int(t.min()) >= 0 and int(t.max()) < pool


def test_black_box_default_halves_and_fractions() -> None:
    split = make_split(1500, seed=0)
    _check_index_tensors(split, 1500)
    s = _sets(split)
    sizes = {r: len(v) for r, v in s.items()}
    assert sizes == {"attacker_train": 675, "attacker_cal": 75,
                     "victim_train": 675, "victim_cal": 75}
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1 :]:
            assert not s[a] & s[b], f"{a} and {b} overlap"
    assert set().union(*s.values()) == set(range(1500))  # the whole pool is used
    assert split.setting == "black-box" and split.seed == 0


@pytest.mark.parametrize(("victim", "attacker"), [(300, 200), (101, 57), (20, 40)])
def test_explicit_sizes(victim: int, attacker: int) -> None:
    split = make_split(1000, seed=4, victim_size=victim, attacker_size=attacker)
    _check_index_tensors(split, 1000)
    s = _sets(split)
    assert len(s["victim_cal"]) == round(0.1 * victim)  # victim cal = 10% of victim data
    assert len(s["victim_cal"] | s["victim_train"]) == victim
    assert len(s["attacker_cal"]) == round(0.1 * attacker)
    assert len(s["attacker_cal"] | s["attacker_train"]) == attacker
    assert len(set().union(*s.values())) == victim + attacker  # pairwise disjoint


def test_cal_fractions_are_configurable() -> None:
    split = make_split(1000, seed=0, victim_size=400, attacker_size=200,
                       victim_cal_fraction=0.25, attacker_cal_fraction=0.5)
    assert (split.victim_cal.numel(), split.victim_train.numel()) == (100, 300)
    assert (split.attacker_cal.numel(), split.attacker_train.numel()) == (100, 100)


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b, c = make_split(600, seed=11), make_split(600, seed=11), make_split(600, seed=12)
    for role in ROLES:
        assert torch.equal(getattr(a, role), getattr(b, role))
        assert not torch.equal(getattr(a, role), getattr(c, role))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_white_box_attacker_trains_on_the_victim_data() -> None:
    split = make_split(1000, seed=2, victim_size=500, setting="white-box")
    _check_index_tensors(split, 1000)
    assert torch.equal(split.attacker_train, split.victim_train)
    s = _sets(split)
    assert len(s["victim_cal"]) == 50 and len(s["victim_train"]) == 450
    assert len(s["attacker_cal"]) == math.ceil(0.1 * 500)
    assert not s["attacker_cal"] & (s["victim_train"] | s["victim_cal"])
    assert not s["victim_cal"] & s["victim_train"]
    assert split.setting == "white-box" and split.fingerprint().endswith("-wb")
    black = make_split(1000, seed=2, victim_size=500)
    assert split.fingerprint() != black.fingerprint()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"victim_size": 600, "attacker_size": 500},
         r"victim_size \(600\) \+ attacker_size \(500\) exceed the train pool \(1000\)"),
        ({"victim_size": 950, "setting": "white-box"},
         r"victim_size \(950\) \+ attacker_size \(95\) exceed the train pool \(1000\)"),
        ({"victim_size": 1}, "at least 2"),
        ({"setting": "grey-box"}, "setting must be 'black-box' or 'white-box'"),
        ({"victim_cal_fraction": 0.0}, r"victim_cal_fraction must be in \(0, 1\)"),
        ({"attacker_cal_fraction": 1.0}, r"attacker_cal_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_sizes_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_split(1000, seed=0, **kwargs)


def test_split_is_recorded(tmp_path: Path) -> None:
    split = make_split(200, seed=5)
    path = tmp_path / "split.json"
    split.save(str(path))
    saved = json.loads(path.read_text())
    assert saved["seed"] == 5 and saved["setting"] == "black-box"
    for role in ROLES:
        assert saved[role] == getattr(split, role).tolist()


# --------------------------------------------------------------------------------------------
# targets and evaluation set

LABELS = torch.arange(200) % 5  # 40 test images per class


def test_select_targets_picks_the_class_only() -> None:
    targets, others = select_targets(LABELS, target_class=2, n_targets=6, seed=0)
    assert targets.numel() == 6 and torch.equal(targets, targets.unique())
    assert bool((LABELS[targets] == 2).all()) and bool((LABELS[others] == 2).all())
    assert not set(targets.tolist()) & set(others.tolist())
    in_class = set(torch.nonzero(LABELS == 2).flatten().tolist())
    assert set(targets.tolist()) | set(others.tolist()) == in_class


def test_select_targets_is_seeded() -> None:
    a, _ = select_targets(LABELS, 3, 5, seed=1)
    b, _ = select_targets(LABELS, 3, 5, seed=1)
    c, _ = select_targets(LABELS, 3, 5, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_select_targets_respects_the_correct_mask() -> None:
    correct = torch.rand(200, generator=torch.Generator().manual_seed(0)) < 0.4
    for seed in range(5):
        targets, others = select_targets(LABELS, 1, 4, seed=seed, eligible=correct)
        assert bool(correct[targets].all())
        assert bool((LABELS[targets] == 1).all())
        # the other images of the class include the misclassified ones
        assert set(targets.tolist()) | set(others.tolist()) == set(range(1, 200, 5))


def test_select_targets_errors() -> None:
    with pytest.raises(ConfigError, match="target class 7 has no test images"):
        select_targets(LABELS, 7, 3, seed=0)
    with pytest.raises(ConfigError, match="no test image of class 0 is eligible"):
        select_targets(LABELS, 0, 3, seed=0, eligible=LABELS != 0)


def test_evaluation_indices_exclude_targets() -> None:
    targets, _ = select_targets(LABELS, 4, 5, seed=3)
    ev = evaluation_indices(200, targets)
    assert ev.numel() == 195 and torch.equal(ev, ev.unique())
    assert not set(ev.tolist()) & set(targets.tolist())
    assert set(ev.tolist()) | set(targets.tolist()) == set(range(200))
