"""The command line, run in-process: `cp` on digits end to end, user errors as one line."""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cpoison.cli import COMMANDS, GOALS, SCALES, _parser, main

CP_DIGITS = ["cp", "--dataset", "digits", "--preset", "cpu", "--no-rscp", "--quiet"]


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Isolated model cache and working folder; one intra-op thread (tiny models)."""
    monkeypatch.setenv("CPOISON_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the tests of this module, so digits is trained only once."""
    return tmp_path_factory.mktemp("cli-cache")


def _models(cache: Path) -> list[Path]:
    return sorted((cache / "models").glob("*.safetensors"))


def test_cp_digits_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res" / "cp.json"
    start = time.perf_counter()
    assert main([*CP_DIGITS, "--json", str(out)]) == 0
    seconds = time.perf_counter() - start
    assert seconds < 30, f"cp on digits took {seconds:.1f} s"
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("digits / mlp: accuracy")
    for name in ("hps", "aps", "raps"):
        row = next(line for line in lines if line.startswith(f"{name} "))
        assert 0.8 <= float(row.split()[1]) <= 1.0
    assert not any(line.startswith("rscp") for line in lines)
    assert f"wrote {out}" in text

    result = json.loads(out.read_text())
    assert set(result["scores"]) == {"hps", "aps", "raps"}
    assert result["dataset"] == "digits" and result["alpha"] == 0.1
    assert result["n_calibration"] == 75 and result["n_test"] == 297
    assert result["accuracy"] > 0.5
    for row in result["scores"].values():
        assert 0.8 <= row["coverage"] <= 1.0
        assert 0.5 <= row["mean_size"] < 5.0  # randomized APS may give some empty sets
        assert math.isfinite(row["threshold"])
    assert len(_models(tmp_path / "cache")) == 1  # $CPOISON_CACHE is used

    # a second run loads the cached model and reproduces the numbers
    assert main([*CP_DIGITS, "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["scores"] == result["scores"] and again["accuracy"] == result["accuracy"]
    assert len(_models(tmp_path / "cache")) == 1


def test_cp_with_a_calibration_set_too_small_for_alpha(
    shared_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """75 calibration points and alpha 0.005: k = ceil(76 * 0.995) = 76 > 75, so the
    threshold is +inf, every set is full, and the user is warned (no crash, exit 0)."""
    with pytest.warns(UserWarning, match="too small"):
        code = main([*CP_DIGITS, "--cache-dir", str(shared_cache), "--alpha", "0.005",
                     "--scores", "hps", "--json", "out.json"])
    assert code == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("hps"))
    assert row.split()[1:] == ["1.0000", "10.000", "0.0000", "inf"]
    result = json.loads(Path("out.json").read_text())["scores"]["hps"]
    # strict JSON: the infinite threshold is written as null
    assert result["threshold"] is None and result["full_share"] == 1.0


def test_data_digits_prints_the_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "digits: 1500 train + 297 test images, shape (1, 8, 8), 10 classes" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cp", "--dataset", "digits", "--alpha", "1.5"], r"alpha must be in \(0, 1\), got 1.5"),
        (["cp", "--dataset", "digits", "--alpha", "0"], r"alpha must be in \(0, 1\), got 0"),
        ([*CP_DIGITS, "--model", "nosuch"], "unknown model 'nosuch'; valid models are: "),
        (["cp", "--dataset", "nosuch"], "no preset 'cpu' for dataset 'nosuch'; available: "),
        (["data", "nosuch"], "unknown dataset 'nosuch'; choose one of: "),
        (["cp", "--dataset", "cifar10", "--data-root", "no/such/dir"],
         "data root 'no/such/dir' does not exist"),
        (["data", "cifar10", "--data-root", "no/such/dir"],
         "data root 'no/such/dir' does not exist"),
        ([*CP_DIGITS, "--scores", "hps,nosuch"], "unknown conformal score 'nosuch'"),
    ],
    ids=["alpha-1.5", "alpha-0", "model", "cp-dataset", "data-dataset", "cp-data-root",
         "data-data-root", "score"],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], message: str, shared_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--cache-dir", str(shared_cache)] if argv[0] == "cp" else argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("cpoison: error: ")
    assert re.search(message, err[0]), err[0]
    assert "Traceback" not in captured.err + captured.out


def test_unknown_score_is_reported_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*CP_DIGITS, "--scores", "hps,nosuch"]) == 2
    assert "unknown conformal score 'nosuch'" in capsys.readouterr().err
    assert _models(tmp_path / "cache") == []


# -- the command line's own conventions (issue 21, item 7) ------------------------------------


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


MINIMAL_ARGS = {
    "data": ["digits"], "configs": [], "cp": [], "attack": ["c.yaml", "--out", "o"],
    "demo": [], "audit": ["--data", "d", "--model", "m", "--out", "o"], "reproduce": ["--out",
    "o"], "report": ["run"], "export-cells": ["run", "folder"],
}


def test_every_command_is_covered_here() -> None:
    assert set(_subparsers()) == set(MINIMAL_ARGS) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(MINIMAL_ARGS))
def test_q_and_v_work_before_and_after_every_command(command: str) -> None:
    rest = MINIMAL_ARGS[command]
    for flag, dest in (("-q", "quiet"), ("--quiet", "quiet"), ("-v", "verbose")):
        before = _parser().parse_args([flag, command, *rest])
        after = _parser().parse_args([command, *rest, flag])
        assert getattr(before, dest) and getattr(after, dest), (command, flag)
    plain = _parser().parse_args([command, *rest])
    assert not plain.quiet and not plain.verbose


def test_q_and_v_together_exit_2_with_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-v", "data", "digits", "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("cpoison: error: -v (debug logging) and -q (warnings only) exclude "
                       "each other")


@pytest.mark.parametrize("command", sorted(MINIMAL_ARGS))
def test_every_help_shows_its_defaults_and_no_specification(command: str) -> None:
    sub = _subparsers()[command]
    text = sub.format_help()
    assert "SPEC" not in text
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        shown = formatter._get_help_string(action) or ""
        assert "default" in shown, (command, action.option_strings, shown)


def test_top_level_help_names_the_commands_and_no_specification() -> None:
    text = _parser().format_help()
    assert "SPEC" not in text
    assert "-q" in text and "-v" in text


def test_enumerated_flags_take_choices() -> None:
    from cpoison.attacks import GOAL_KINDS
    from cpoison.reproduce import SCALES as REPRODUCE_SCALES

    subs = _subparsers()
    goal = next(a for a in subs["audit"]._actions if "--goal" in a.option_strings)
    scale = next(a for a in subs["reproduce"]._actions if "--scale" in a.option_strings)
    assert tuple(goal.choices) == tuple(GOAL_KINDS) == GOALS
    assert tuple(scale.choices) == tuple(REPRODUCE_SCALES) == SCALES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "--data", "d", "--model", "m", "--out", "o", "--goal", "shrink"],
         "argument --goal: invalid choice: 'shrink'"),
        (["reproduce", "--out", "o", "--scale", "gpu"], "argument --scale: invalid choice: 'gpu'"),
    ],
)
def test_a_bad_choice_exits_2_with_one_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpoison: error: ") and message in err[0], err


def test_configs_lists_every_shipped_config_with_its_purpose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cpoison.resources import shipped_configs

    assert main(["configs"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = shipped_configs()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out[: len(names)]}
    assert sorted(rows) == names
    for name, purpose in rows.items():
        assert len(purpose) > 20, (name, purpose)
        assert "SPEC" not in purpose and "issue" not in purpose.lower(), (name, purpose)
    assert rows["configs/demo.yaml"].startswith("The main job (make demo)")


def test_dry_run_prints_the_plan_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, store = tmp_path / "run", tmp_path / "store"
    assert main(["attack", "configs/digits-tiny.yaml", "--out", str(out), "--store", str(store),
                 "--dry-run", "-q"]) == 0
    text = capsys.readouterr().out
    assert "cells: 4 (0 done, 4 to run)" in text
    assert "models to train: 6 (1 surrogates, 1 benign victims, 4 poisoned victims)" in text
    assert "poison sets to craft: 4" in text
    assert re.search(r"estimated time: about \d+ min", text)
    assert not out.exists()
    assert not list(store.rglob("*.safetensors"))


def test_audit_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from cpoison.data import load_dataset

    ds = load_dataset("digits")
    keep = ds.train_labels < 4
    data = tmp_path / "digits.npz"
    np.savez(data, x=ds.train_images[keep][:, 0].numpy(), y=ds.train_labels[keep].numpy())
    out, store = tmp_path / "audit", tmp_path / "store"
    assert main(["audit", "--data", str(data), "--model", "mlp", "--out", str(out), "--store",
                 str(store), "--budget", "0.05", "--victims", "2", "--targets", "10",
                 "--target-class", "1", "--preset", "audit-quick", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "dry run: " in text and "(nothing is trained or written)" in text
    assert "cells: 4 (0 done, 4 to run)" in text  # 2 victims x (ours, randun)
    assert re.search(r"models to train: \d+ \(1 surrogates, 2 benign victims, 4 poisoned", text)
    assert "estimated time: about" in text and "audit-quick" in text
    assert not out.exists()
