"""``cpoison audit`` end to end (SPEC 12, issue 13): a practitioner's ImageFolder of PNGs or
.npz file and a model function in their own module; the report opens with the plain
summary; an audit resumes; every bad input is one ``cpoison: error:`` line and exit 2,
before anything trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from experiment_helpers import one_thread
from PIL import Image

import cpoison
from cpoison.cli import main
from cpoison.data import load_dataset

HERE = Path(__file__).resolve().parent
CLASSES = (0, 1, 2, 3)
FAST = ["--budget", "0.05", "--victims", "2", "--scores", "hps,aps", "--targets", "10",
        "--target-class", "1", "--iterations", "5", "--preset", "audit-quick", "--quiet",
        "--threads", "1"]


def _digits(classes: tuple[int, ...] = CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    ds = load_dataset("digits")
    x = torch.cat([ds.train_images, ds.test_images])
    y = torch.cat([ds.train_labels, ds.test_labels])
    keep = torch.isin(y, torch.tensor(classes))
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 0-3 as 8x8 grayscale PNGs, one folder per class (no test split: the audit
    holds one out)."""
    root = tmp_path_factory.mktemp("folder") / "digits-png"
    x, y = _digits()
    for i, (img, label) in enumerate(zip(x, y.tolist())):
        folder = root / f"digit-{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    x, y = _digits()
    np.savez(path, x=x[:, 0].numpy(), y=y.numpy(),
             classes=np.array([f"digit-{c}" for c in CLASSES]))
    return path


@pytest.fixture(scope="module")
def folder_audit(image_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("audit")
    argv = ["audit", "--data", str(image_folder), "--model", "user_models:small_mlp",
            "--out", str(root / "out"), "--store", str(root / "store"), *FAST]
    with one_thread():
        code = main(argv)
    return root, code


def test_audit_of_an_image_folder_with_a_model_function(folder_audit, capsys) -> None:
    root, code = folder_audit
    assert code == 0
    out = root / "out"
    text = (out / "audit.md").read_text()
    assert text.startswith("# Poisoning audit: `user_models:small_mlp` on `digits-png`")
    summary = text.split("## Data and setting")[0]
    for part in ("## Summary", "**In short:**", "tried to shrink the prediction sets",
                 "noise baselines: randun", "the attack minus noise, pair by pair",
                 "against random noise of the same size on the same images and victims",
                 "one-sided 95 % Student t interval", "**Do coverage and accuracy betray it?**",
                 "No defense evaluated", "**How sure are these numbers?**",
                 "2 victim pair(s)", "`digit-1` (class 1)"):
        assert part in summary, part
    for name in ("report.md", "results.sqlite", "summary.json", "set_sizes.png",
                 "stealth.png", "config.resolved.yaml", "audit.json"):
        assert (out / name).is_file(), name
    facts = json.loads((out / "audit.json").read_text())
    assert facts["classes"] == [f"digit-{c}" for c in CLASSES]
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert {(r["attack"], r["score"]) for r in rows} == {
        (a, s) for a in ("ours-l3-o1-hps", "randun") for s in ("hps", "aps")}
    assert all(r["n_victims"] == 2 for r in rows)


def test_cpoison_report_rebuilds_an_audits_audit_md(folder_audit, tmp_path: Path) -> None:
    root, _ = folder_audit
    copy = tmp_path / "audit"
    shutil.copytree(root / "out", copy)
    before = (copy / "audit.md").read_text()
    (copy / "audit.md").unlink()
    assert main(["report", str(copy)]) == 0
    after = (copy / "audit.md").read_text()
    assert after.startswith("# Poisoning audit: `user_models:small_mlp`")
    assert after.split("## Data and setting")[0] == before.split("## Data and setting")[0]


def test_cpoison_report_names_a_damaged_audit_record(folder_audit, tmp_path: Path,
                                                     capsys) -> None:
    root, _ = folder_audit
    copy = tmp_path / "audit"
    shutil.copytree(root / "out", copy)
    (copy / "audit.json").write_text("{not json")
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "audit.json is not a readable audit record" in err and "\n" not in err


def test_an_audit_resumes_and_extends(folder_audit, image_folder: Path) -> None:
    """The same audit again trains nothing; one more victim trains only its models."""
    root, _ = folder_audit
    settings = dict(budgets=0.05, victims=2, scores="hps,aps", targets=10, target_class=1,
                    iterations=5, preset="audit-quick")
    with one_thread():
        again = cpoison.audit(str(image_folder), "user_models:small_mlp", root / "out",
                              store=root / "store", progress=False, **settings)
        assert again.summary["trained_models"] == 0
        assert again.text.startswith("## Summary")
        settings["victims"] = 3
        more = cpoison.audit(str(image_folder), "user_models:small_mlp", root / "out",
                             store=root / "store", progress=False, **settings)
    assert more.summary["trained_models"] == 1 + 2  # one benign victim, 2 poisoned twins
    assert "3 victim pair(s)" in more.text


def test_audit_of_an_npz_with_a_model_file(npz_file: Path, tmp_path: Path) -> None:
    spec = f"{HERE / 'user_models.py'}:small_mlp"
    argv = ["audit", "--data", str(npz_file), "--model", spec, "--out", str(tmp_path / "o"),
            "--store", str(tmp_path / "s"), "--goal", "underconfidence",
            "--baselines", "none", "--test-fraction", "0.25", *FAST]
    with one_thread():
        assert main(argv) == 0
    text = (tmp_path / "o" / "audit.md").read_text()
    assert "tried to widen the prediction sets" in text and "expansion" in text
    config = (tmp_path / "o" / "config.resolved.yaml").read_text()
    assert "test_fraction: 0.25" in config and "preset: audit-quick" in config


def test_audit_from_python_with_a_dataset_object_and_a_goal(tmp_path: Path) -> None:
    """A dataset object is written to OUT/data.npz; add-label rows carry the goal's
    metric and the report its table."""
    x, y = _digits()
    from cpoison.data.user import from_arrays

    ds = from_arrays(x[:, 0].numpy(), y.numpy(), seed=0)
    with one_thread():
        result = cpoison.audit(ds, "mlp", tmp_path / "o", store=tmp_path / "s",
                               progress=False, goal="add-label", label=2, target_class=1,
                               budgets=[0.05], victims=1, scores="hps", targets=10,
                               iterations=5, preset="audit-quick", baselines="randun")
    assert (tmp_path / "o" / "data.npz").is_file()
    assert "label `2` (class 2) enters the targets' sets" in result.text
    row = result.summary["rows"][0]
    assert row["goal"] == "add-label" and row["goal_effect"]["mean"] is not None
    assert "| share rise |" in result.report.read_text()


# --------------------------------------------------------------------------- bad input


def _bad(argv: list[str], folder: Path, tmp_path: Path, capsys) -> str:
    base = ["audit", "--data", str(folder), "--model", "user_models:small_mlp",
            "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"), *FAST]
    for i in range(0, len(argv), 2):  # replace or add each flag
        flag, value = argv[i], argv[i + 1]
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    with one_thread():
        try:
            code = main(base)
        except SystemExit as exit_:  # a usage error, found by argparse
            code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("cpoison: error: "), err
    assert not (tmp_path / "store" / "models").exists()  # nothing trained
    return err[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "/no/such/folder"], "no such file or folder"),
    (["--data", str(HERE / "user_models.py")], "ImageFolder folder"),
    (["--model", "no_such_module_xyz:build"], "cannot import module"),
    (["--model", "user_models:nothing"], "has no function 'nothing'"),
    (["--model", "user_models:broken"], r"victim: .*logits of shape \(2, 4\)"),
    (["--model", "resnet-19"], "unknown model 'resnet-19'"),
    (["--weights", "model.pt"], "no such file"),
    (["--budget", "0.9"], "budget 0.9 needs"),
    (["--budget", "lots"], "--budget: 'lots' is not a number"),
    (["--budget", "0"], r"not in \(0, 1\]"),
    (["--goal", "sideways"], "argument --goal: invalid choice: 'sideways'"),
    (["--goal", "add-label"], "goal.label is required"),
    (["--goal", "remove-label", "--label", "1"], "goal.label 1 is the targets' own class"),
    (["--goal", "add-label", "--label", "9"], r"goal.label 9 is not a class.*0\.\.3"),
    (["--alpha", "1.5"], "'alpha'"),
    (["--scores", "hps,foo"], "unknown score 'foo'"),
    (["--target-class", "7"], "targets.target_class 7 is not a class"),
    (["--selection", "nearest", "--test-fraction", "1.5"], "test_fraction"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, image_folder, tmp_path,
                                          capsys) -> None:
    import re

    line = _bad(argv, image_folder, tmp_path, capsys)
    assert re.search(message, line), line


def test_bad_weights_and_out(image_folder: Path, tmp_path: Path, capsys) -> None:
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not a pickle")
    assert "safetensors" in _bad(["--weights", str(pt)], image_folder, tmp_path, capsys)
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong))
    assert "do not match the model" in _bad(["--weights", str(wrong)], image_folder,
                                            tmp_path, capsys)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in _bad(["--out", str(blocker)], image_folder, tmp_path, capsys)


def test_an_audit_compares_defenses(image_folder: Path, tmp_path: Path, capsys) -> None:
    """``--defense none --defense deep_knn``: both run as a grid and the summary answers
    "which defense helps?" with each defense's mean effect."""
    argv = ["audit", "--data", str(image_folder), "--model", "user_models:small_mlp",
            "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"), *FAST,
            "--victims", "1", "--defense", "none", "--defense", "deep_knn"]
    with one_thread():
        assert main(argv) == 0
    text = (tmp_path / "out" / "audit.md").read_text()
    helps = text.split("**Which defense helps?**")[1].split("**How sure")[0]
    assert "No defense evaluated" not in helps
    assert "none" in helps and "deep_knn" in helps
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]
    assert {r["point"]["defense"] for r in rows} == {"none", "deep_knn"}
