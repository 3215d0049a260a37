"""Issue 21: an audit of *your* model and training on *your* data. An ``nn.Module`` object
with a training function of its own on non-square images; tabular features from a CSV with
the default MLP; the functional API (craft poisons, evaluate sets) in a few lines; the keys
follow the training function's source and the initial weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from experiment_helpers import one_thread
from torch import nn

import cpoison
from cpoison.errors import ConfigError

FAST = {"budgets": [0.05], "victims": 1, "scores": "hps,aps", "targets": 5,
        "target_class": 1, "iterations": 5, "preset": "audit-quick", "progress": False}


def _stripes(n: int = 600, h: int = 6, w: int = 10, seed: int = 0) -> tuple[np.ndarray, ...]:
    """3 classes of h x w grayscale images: a bright band in the top, middle or bottom rows,
    on noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.uniform(0, 0.5, size=(n, h, w))
    for k in range(3):
        x[y == k, 2 * k:2 * k + 2, :] += 0.5
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), y


class TinyNet(nn.Module):
    """A practitioner's own module, given as an object."""

    def __init__(self, h: int = 6, w: int = 10, k: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(h * w, 32), nn.ReLU())
        self.out = nn.Linear(32, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


CALLS: list[int] = []


def my_training(model: nn.Module, train_set, generator: torch.Generator) -> nn.Module:
    """The user's loop: Adam, shuffled batches from a DataLoader, a random horizontal flip."""
    CALLS.append(len(train_set))
    loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True,
                                         generator=generator)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        for x, y in loader:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model


def test_audit_of_a_module_object_with_its_own_training_on_non_square_images(
        tmp_path: Path) -> None:
    x, y = _stripes()
    np.savez(tmp_path / "stripes.npz", x=x, y=y)
    torch.manual_seed(0)
    net = TinyNet()
    CALLS.clear()
    with one_thread():
        result = cpoison.audit(tmp_path / "stripes.npz", net, tmp_path / "out",
                               store=tmp_path / "store", train_fn=my_training, **FAST)
    assert result.summary["rows"]
    # the surrogate, a benign victim and a poisoned one per attack (ours, randun)
    assert len(CALLS) == 4, CALLS
    facts = json.loads((result.out / "audit.json").read_text())
    assert facts["image_shape"] == [1, 6, 10]
    resolved = (result.out / "config.resolved.yaml").read_text()
    assert "train_fn: '@python:my_training-" in resolved, resolved
    assert not any(p.requires_grad and p.grad is not None for p in net.parameters())
    # the same audit again: every model comes from the store, train_fn is not called (the
    # object was copied, never trained itself)
    with one_thread():
        again = cpoison.audit(tmp_path / "stripes.npz", net, tmp_path / "out",
                              store=tmp_path / "store", train_fn=my_training, **FAST)
    assert len(CALLS) == 4 and again.summary["rows"] == result.summary["rows"]
    with pytest.raises(ConfigError, match="executor='local'"):
        cpoison.audit(tmp_path / "stripes.npz", net, tmp_path / "out2",
                      store=tmp_path / "store", train_fn=my_training, executor="ray",
                      **FAST)


def test_model_keys_follow_the_training_function_and_the_initial_weights() -> None:
    from cpoison.models.user import register_object
    from cpoison.store.keys import user_model_identity

    def other_training(model, train_set, generator):
        return model

    torch.manual_seed(0)
    a, b = TinyNet(), TinyNet()
    name_a, name_b = register_object(a), register_object(b)
    assert name_a != name_b and name_a == register_object(a)
    fn_a, fn_b = register_object(my_training, "train_fn"), register_object(other_training)
    ids = [user_model_identity(arch, None, True, fn)
           for arch in (name_a, name_b) for fn in (fn_a, fn_b)]
    assert len({json.dumps(i, sort_keys=True) for i in ids}) == 4
    assert ids[0]["code"]["init"] != ids[2]["code"]["init"]


def _tabular_csv(path: Path, n: int = 600, d: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    names = ["setosa", "versicolor", "virginica"]
    centers = rng.normal(0, 2, size=(3, d))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{j}" for j in range(2)] + ["species"]
                        + [f"f{j}" for j in range(2, d)])
        for i in range(n):
            k = i % 3
            row = (centers[k] + rng.normal(0, 1.5, size=d)) * 10 + 100  # raw units
            writer.writerow([f"{v:.4f}" for v in row[:2]] + [names[k]]
                            + [f"{v:.4f}" for v in row[2:]])


def test_audit_of_tabular_features_from_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "flowers.csv"
    _tabular_csv(path)
    from cpoison.data.user import load_user_data

    ds = load_user_data(path, label="species")
    assert ds.kind == "features" and ds.input_shape == (5,) and ds.clip is None
    assert ds.classes == ("setosa", "versicolor", "virginica")
    assert ds.train_images.mean(0).abs().max() < 1e-4  # standardised on the train split
    with one_thread():
        result = cpoison.audit(path, None, tmp_path / "out", store=tmp_path / "store",
                               label_column="species", eps=0.5, **FAST)
    rows = result.summary["rows"]
    assert rows and {r["score"] for r in rows} >= {"hps", "aps"}
    facts = json.loads((result.out / "audit.json").read_text())
    assert facts["kind"] == "features" and facts["image_shape"] == [5]
    # poisons move features by up to eps standard deviations, without a [0, 1] clip
    from cpoison.store.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    paths = sorted((tmp_path / "store" / "poisons").glob("*.safetensors"))
    assert len(paths) == 2  # ours and randun
    linf = [store.load_poisons(p.stem).linf for p in paths]
    assert max(linf) <= 0.5 + 1e-6 and min(linf) > 0.4, linf


def test_functional_api_in_a_few_lines() -> None:
    x, y = _stripes(300)
    x = torch.from_numpy(x).float().div(255)[:, None]
    y = torch.from_numpy(y)
    torch.manual_seed(0)
    model = TinyNet()
    with one_thread():
        my_training(model, torch.utils.data.TensorDataset(x[:150], y[:150]),
                    torch.Generator().manual_seed(0))
        model.eval()
        bases, targets = x[150:170][y[150:170] == 1], x[250:][y[250:] == 1][:5]
        poisons = cpoison.craft_poisons(model, bases, y[150:170][y[150:170] == 1], targets,
                                        torch.ones(5, dtype=torch.long), x[170:250],
                                        y[170:250], eps=16 / 255, iterations=3)
        assert poisons.delta.shape == bases.shape and poisons.linf <= 16 / 255 + 1e-6
        assert float((bases + poisons.delta).min()) >= 0
        result = cpoison.evaluate_sets(model, x[170:250], y[170:250], x[250:], y[250:],
                                       score="aps", alpha=0.1)
        named = cpoison.evaluate_sets(model, x[170:250], y[170:250], x[250:], y[250:],
                                      score="hps", alpha=0.1, predictor="cpoison")
        own = cpoison.evaluate_sets(model, x[170:250], y[170:250], x[250:], y[250:],
                                    score="hps", alpha=0.1)
    assert result["sets"].shape == (50, 3) and 0 <= result["coverage"] <= 1
    assert result["mean_size"] > 0 and 0 <= result["accuracy"] <= 1
    assert torch.equal(named["sets"], own["sets"])  # a predictor by name, as configs take it


def test_the_cli_takes_a_training_function_and_a_label_column(tmp_path: Path, capsys) -> None:
    from cpoison.cli import main

    path = tmp_path / "flowers.csv"
    _tabular_csv(path, n=300)
    def argv(train_fn: str, *extra: str) -> list[str]:
        return ["audit", "--data", str(path), "--label-column", "species", "--model", "mlp",
                "--train-fn", train_fn, "--eps", "0.5", "--budget", "0.05", "--targets", "5",
                "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"), *extra]

    assert main(argv("user_models:adam_training", "--dry-run")) == 0
    capsys.readouterr()
    # a training function that does not exist: one message, before anything trains
    assert main(argv("user_models:nothing_here", "--quiet")) == 2
    assert "nothing_here" in capsys.readouterr().err
    assert not (tmp_path / "store" / "models").exists()


def test_each_user_path_has_an_example_the_docs_tests_run() -> None:
    """Your model object + train_fn, a tabular CSV, your conformal predictor, the
    functional API: each has a python block in the docs (tests/test_docs_examples.py runs
    every such block)."""
    import re

    docs = Path(__file__).resolve().parents[2] / "docs"

    def blocks(page: str) -> str:
        text = (docs / page).read_text(encoding="utf-8")
        return "\n".join(re.findall(r"^```python[ \t]*\n(.*?)^```", text, re.M | re.S))

    own = blocks("your-model.md")
    assert "train_fn=train" in own and "cpoison.audit(\"bands.npz\", Net()" in own
    assert "cpoison.audit(\"flowers.csv\"" in own and "label_column=" in own
    assert "MapiePredictor" in blocks("predictors.md") or "predictor" in blocks("predictors.md")
    api = blocks("python-api.md")
    assert "cpoison.craft_poisons(" in api and "cpoison.evaluate_sets(" in api


def test_a_training_hook_defense_with_your_train_fn_is_one_message(tmp_path: Path) -> None:
    x, y = _stripes(300)
    np.savez(tmp_path / "s.npz", x=x, y=y)
    with pytest.raises(ConfigError, match="cannot run with your own train_fn"):
        cpoison.audit(tmp_path / "s.npz", TinyNet(), tmp_path / "out",
                      store=tmp_path / "store", train_fn=my_training, defenses=["maxup"],
                      **FAST)
    assert not (tmp_path / "store" / "models").exists()


def test_features_given_from_python_as_a_dataset(tmp_path: Path) -> None:
    from cpoison.api.audit import _data_path
    from cpoison.data.user import from_arrays

    rng = np.random.default_rng(0)
    ds = from_arrays(rng.normal(size=(60, 4)), np.arange(60) % 2)
    path = _data_path(ds, tmp_path, None, 0)
    with np.load(path) as npz:
        assert npz["x"].shape == (48, 4) and npz["x_test"].shape == (12, 4)


def test_what_feature_vectors_cannot_do_is_refused_before_training(tmp_path: Path) -> None:
    from cpoison.api.runner import run_experiment
    from cpoison.experiments.config import validate_config

    path = tmp_path / "t.csv"
    _tabular_csv(path, n=300)
    base = {"dataset": str(path), "preset": "audit-quick", "budget": 0.05, "eps": 0.5,
            "n_victims": 1, "targets": {"target_class": 1, "n_targets": 5},
            "data": {"label": "species"}}
    for attacks, message in [([{"name": "metapoison"}], "metapoison crafts image poisons"),
                             ([{"name": "ours", "crafting": {"augment": True}}],
                              "feature vectors are not augmented")]:
        config = validate_config({**base, "attacks": attacks}, "test")
        with pytest.raises(ConfigError, match=message):
            run_experiment(config, tmp_path / "out", store=tmp_path / "store", progress=False)
    assert not (tmp_path / "store" / "models").exists()


@pytest.mark.parametrize("arch", ["mlp", "convnet"])
def test_registry_models_on_non_square_images(arch: str) -> None:
    from cpoison.models import build_model

    model = build_model(arch, 1, 3, (6, 10), seed=0)
    assert model(torch.rand(2, 1, 6, 10)).shape == (2, 3)
    assert model.features(torch.rand(2, 1, 6, 10)).shape[0] == 2


def test_functional_poisons_on_feature_vectors_are_not_clipped() -> None:
    torch.manual_seed(0)
    x = torch.randn(120, 4) * 3
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    poisons = cpoison.craft_poisons(model, x[:10], y[:10], x[100:105], y[100:105], x[20:80],
                                    y[20:80], eps=0.5, attack="randun")
    assert poisons.delta.shape == (10, 4) and 0.4 < poisons.linf <= 0.5 + 1e-6
