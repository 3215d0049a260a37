"""CITATION.cff: valid, cites the paper, and carries the package's version."""

from __future__ import annotations

from pathlib import Path

import yaml

import cpoison

ROOT = Path(__file__).resolve().parents[2]


def test_citation_cites_the_paper_and_the_toolkit() -> None:
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert data["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type"):
        assert data[key], key
    assert str(data["version"]) == cpoison.__version__
    paper = data["preferred-citation"]
    assert paper["title"] == "Data Poisoning Attacks against Conformal Prediction"
    assert paper["year"] == 2024 and "Machine Learning" in paper["collection-title"]
    assert paper["authors"][0] == {"family-names": "Li", "given-names": "Yangyi"}
