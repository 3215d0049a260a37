"""An attack experiment end to end (SPEC 6, 10): output files, summary keys, determinism."""

from __future__ import annotations

import json

import pytest
import yaml
from experiment_helpers import (
    LABELS,
    comparable,
    run_tiny,
    stored_poisons,
    stored_rows,
    tiny_config,
)

from cpoison.experiments.presets import get_preset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = ("attack", "goal", "score", "budget", "eps", "loss", "order")
STAT_KEYS = (
    "benign_set_size", "victim_set_size", "reduction_ratio", "expansion_ratio",
    "normalized_reduction", "consistency", "coverage_benign", "coverage_victim",
    "target_coverage_benign", "target_coverage_victim",
)


def test_digits_cpu_preset_is_the_small_mlp():
    preset = get_preset("digits", "cpu")
    assert preset.model == "mlp"
    assert preset.victim_size is None and preset.attacker_size is None  # half of 1500 each


def test_output_files(reference_run):
    out = reference_run.out
    for name in ("config.resolved.yaml", "results.sqlite", "summary.json", "report.md"):
        assert (out / name).is_file(), name
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved == tiny_config().model_dump(mode="json")
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 2
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, png.name
        assert len(data) > 1000, png.name
    report = (out / "report.md").read_text()
    assert report.startswith("# tiny")
    for png in pngs:
        assert f"]({png.name})" in report
    for label in LABELS:
        assert label in report
    # Poisons are stored as (ids, delta) and reload within the threat model.
    for label in LABELS:
        [poisons] = stored_poisons(reference_run.cache, label)
        assert len(poisons) == round(0.05 * 675)
        assert poisons.linf <= 16 / 255 + 1e-6
        assert poisons.inject is True


def test_summary_json(reference_run):
    summary = json.loads((reference_run.out / "summary.json").read_text())
    assert comparable(summary) == comparable(json.loads(json.dumps(reference_run.summary)))
    rows = summary["rows"]
    assert {(r["attack"], r["score"]) for r in rows} == {
        (a, s) for a in LABELS for s in ("hps", "aps")
    }
    for row in rows:
        for key in ROW_KEYS:
            assert key in row, key
        assert row["goal"] == "overconfidence"
        assert row["budget"] == 0.05
        assert row["eps"] == pytest.approx(16 / 255)
        ours = row["attack"].startswith("ours")
        assert (row["loss"], row["order"]) == (("l3", 1) if ours else (None, None))
        for key in STAT_KEYS:
            assert set(row[key]) == {"mean", "se"}, key
        assert row["n_victims"] == 2
        assert row["n_repeats"] == 1
        assert row["craft_seconds"] > 0
        size = row["benign_set_size"]["mean"]
        assert 1 <= size <= 10
        assert row["reduction_ratio"]["mean"] == pytest.approx(
            (size - row["victim_set_size"]["mean"]) / size, abs=0.05)
        assert 0 <= row["coverage_benign"]["mean"] <= 1
        assert 0 <= row["consistency"]["mean"] <= 1
    # Per-victim rows: 2 attacks x 2 victims x 2 scores, each mean above is their average.
    stored = stored_rows(reference_run.out)
    assert len(stored) == 8
    for row in rows:
        members = [s for s in stored if (s["attack"], s["score"]) == (row["attack"], row["score"])]
        assert len(members) == 2
        mean = sum(m["victim_set_size"] for m in members) / 2
        assert row["victim_set_size"]["mean"] == pytest.approx(mean)


def test_same_config_and_seed_give_the_same_numbers(reference_run, tmp_path):
    """A second run into a fresh folder with a fresh model cache (so every model is trained
    again) gives identical poisons, per-victim rows and summary (timings aside)."""
    again = run_tiny(tmp_path)
    assert comparable(again.summary) == comparable(reference_run.summary)
    assert comparable(stored_rows(again.out)) == comparable(stored_rows(reference_run.out))
    assert again.summary["trained_models"] == 1 + 2 + 2 * 2  # all trained afresh
    for label in LABELS:
        [first] = stored_poisons(reference_run.cache, label)
        [second] = stored_poisons(again.cache, label)
        assert first.digest() == second.digest()
