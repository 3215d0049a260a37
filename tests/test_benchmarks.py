"""Smoke tests of every script under benchmarks/: each runs at a tiny size (seconds), exits
cleanly and prints its figures. The scripts' ``main(argv)`` is called in this process (one
torch import for all), except one run of the ceiling as a subprocess, as a user runs it.
Their default, full-size behaviour is not exercised here."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
NUMBER = r"-?\d+\.\d+"

# scripts that are helpers of other benchmarks, not benchmarks of their own
HELPERS = {"transfer_setup"}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``benchmarks/<name>.py`` ``main(argv)``: it must return cleanly; its stdout."""
    threads = torch.get_num_threads()
    try:
        assert load(name).main(argv) in (None, 0)
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def rows(out: str, first: str) -> list[str]:
    """The printed lines that start (after spaces) with ``first``."""
    return [line for line in out.splitlines() if line.strip().startswith(first)]


SMOKE_TESTED: set[str] = set()


def smoke(name: str):
    SMOKE_TESTED.add(name)
    return lambda fn: fn


def test_every_benchmark_has_a_smoke_test() -> None:
    scripts = {p.stem for p in BENCHMARKS.glob("*.py")} - HELPERS
    assert scripts, "no benchmarks found"
    missing = scripts - SMOKE_TESTED
    assert not missing, f"benchmarks without a smoke test in {__file__}: {sorted(missing)}"
    for name in scripts:
        text = (BENCHMARKS / f"{name}.py").read_text()
        assert "def main(argv" in text, f"{name}.py: main should take argv (tests call it)"


@smoke("attack_ceiling")
def test_attack_ceiling_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("attack_ceiling", [
        "--config", str(ROOT / "configs" / "digits-tiny.yaml"), "--budget", "0.05",
        "--victims", "2", "--epochs", "10", "--targets-per-set", "1,10",
        "--store", str(tmp_path / "store")], capsys)
    assert "attack ceiling: digits/cpu" in out
    # the budget: round(0.05 * |victim train|) images, shared by V targets
    n_budget = int(re.search(r"= (\d+) images", out).group(1))
    assert "reduction ratio" in out and "mean ± s.e. over 2 victim(s)" in out
    summary = out[out.index("ceiling: targets'"):]
    for v in (1, 10):
        lines = rows(summary, f"{v} ")
        assert {line.split()[3] for line in lines} == {"hps", "aps"}
        for line in lines:
            copies, added = int(line.split()[1]), int(line.split()[2])
            assert copies == round(n_budget / v) and added == v * copies
            assert re.search(rf"{NUMBER} ± {NUMBER}\s*$", line), line
    per_victim = out[out.index("victim    V"):out.index("ceiling: targets'")]
    assert len(per_victim.strip().splitlines()) == 1 + 2 * 2 * 2  # heading + victims x V x s


@smoke("attack_ceiling")
def test_attack_ceiling_user_npz(tmp_path: Path) -> None:
    """A user's .npz, as ``cpoison audit`` takes it, run as a script; ``--copies`` fixed."""
    from cpoison.data.digits import load_digits

    ds = load_digits(seed=0)
    data = tmp_path / "mine.npz"
    np.savez(data, x=ds.train_images.permute(0, 2, 3, 1).numpy(), y=ds.train_labels.numpy())
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "attack_ceiling.py"), "--data", str(data),
         "--preset", "audit-quick", "--epochs", "15", "--targets", "10", "--victims", "1",
         "--copies", "3", "--no-cache"],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "attack ceiling: mine/audit-quick" in out
    summary = out[out.index("ceiling: targets'"):]
    lines = rows(summary, "10 ")
    assert [line.split()[3] for line in lines] == ["hps", "aps", "raps"]
    assert all(line.split()[1:3] == ["3", "30"] for line in lines)


@smoke("attack_ceiling")
def test_attack_ceiling_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("attack_ceiling").main(["--data", "/nonexistent/data.npz"]) == 2
    assert "no such file" in capsys.readouterr().err


@smoke("conformal")
def test_conformal(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("conformal", ["--n", "2000", "--k", "5"], capsys)
    assert "n_cal = n_test = 2000, K = 5" in out
    for score in ("HPS", "APS", "RAPS"):
        assert re.search(rf"^{score}\s+{NUMBER}\s+", out, re.M), out


@smoke("crafting")
def test_crafting_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("crafting", ["--quick", "--out", str(tmp_path / "out"),
                           "--store", str(tmp_path / "store")], capsys)
    assert "Table 2 (digits, hps, budget 5.0%, 1 victims x 1 repeats)" in out
    for method in ("first-order", "second-order", "metapoison", "misclassification"):
        assert re.search(rf"^{method}\s+{NUMBER}\s+", out, re.M), method
    assert (tmp_path / "out" / "report.md").exists()


def test_crafting_quick_ensembles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The strength table: K surrogates with and without retraining, MetaPoison beside."""
    out = run("crafting", ["--quick", "--config", str(ROOT / "configs" / "cpu" /
                                                       "crafting-ensembles.yaml"),
                           "--out", str(tmp_path / "out"),
                           "--store", str(tmp_path / "store")], capsys)
    for method in ("k2", "k4", "k1-retrain", "k4-retrain", "metapoison-k4", "randun"):
        assert re.search(rf"^{method}\s+{NUMBER}\s+{NUMBER}\s+", out, re.M), method


@smoke("defenses")
def test_defenses(capsys: pytest.CaptureFixture[str]) -> None:
    from cpoison.defenses import available_defenses

    out = run("defenses", ["--epochs", "1", "--repeats", "1"], capsys)
    assert "1 epochs, median of 1" in out
    for name in available_defenses():
        assert re.search(rf"^{name}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$", out, re.M), name


@smoke("engine")
def test_engine_local(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("engine", ["--victims", "1", "--executors", "local", "--iterations", "2"], capsys)
    assert "grid: 2 budgets x 2 attacks x 1 victims = 4 cells" in out
    assert re.search(rf"local executor:\s+{NUMBER} s", out)
    assert re.search(rf"engine overhead per cell .*: {NUMBER} s", out)
    assert "ray executor" not in out


@smoke("export_imagefolder")
def test_export_imagefolder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cpoison.data.user import load_user_data

    out = run("export_imagefolder", [str(tmp_path / "folder"), "--dataset", "digits"], capsys)
    assert f"wrote {tmp_path / 'folder'}" in out
    run("export_imagefolder", [str(tmp_path / "d.npz"), "--dataset", "digits",
                               "--format", "npz"], capsys)
    folder, npz = load_user_data(tmp_path / "folder"), load_user_data(tmp_path / "d.npz")
    assert folder.test_labels.numel() == npz.test_labels.numel() > 0
    assert folder.train_labels.bincount().tolist() == npz.train_labels.bincount().tolist()


@smoke("full_cp")
def test_full_cp(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("full_cp", ["--scores", "hps", "--naive-points", "1", "--repeats", "1",
                          "--test-points", "40"], capsys)
    assert "40 test points" in out
    assert re.search(rf"^hps\s+{NUMBER}\s+{NUMBER}", out, re.M), out
    assert re.search(rf"median bound / actual logit move of a training point = {NUMBER}", out)


@smoke("precision")
def test_precision(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("precision", ["--dataset", "digits", "--preset", "cpu", "--epochs", "1",
                            "--rounds", "1", "--threads", "1"], capsys)
    assert "digits/cpu victims (mlp)" in out
    for precision in ("fp32", "bf16"):
        assert re.search(rf"^\s+1\s+{precision}\s+{NUMBER}\s+{NUMBER}$", out, re.M), precision
    assert re.search(rf"bf16 speed-up on 1 thread\(s\): {NUMBER}x", out)


@smoke("theorem41")
def test_theorem41(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("theorem41", [], capsys)
    assert "digits features: n = " in out
    assert len(re.findall(r"^\s+\d\.\d\d\s+\d+\s+\d\.\d{3}e[+-]\d\d", out, re.M)) == 20
    assert "first-order gap shrinks as eps decreases" in out


@smoke("training")
def test_training(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("training", ["--steps", "1", "--warmup", "0", "--skip-resnet", "--formats",
                           "contiguous", "--matmul-size", "128", "--device", "cpu"], capsys)
    assert re.search(rf"fp32 matmul 128x128: {NUMBER} GFLOP/s", out)
    assert len(re.findall(rf"^convnet w1[26] 1x28x28\s+contiguous\s+[\d,]+\s+{NUMBER}", out,
                          re.M)) == 2
