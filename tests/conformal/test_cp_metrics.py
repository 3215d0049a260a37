"""Set metrics (SPEC 3.3) on a hand-checked example."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cpoison.conformal import (
    class_conditional_coverage,
    class_conditional_size,
    coverage,
    empty_share,
    expansion_ratio,
    full_share,
    mean_size,
    normalized_reduction_ratio,
    prediction_consistency,
    reduction_ratio,
    size_histogram,
    summarize,
)
from cpoison.errors import CpoisonError

# 5 points, 4 classes; class 3 never appears as a true label
SETS = torch.tensor(
    [
        [1, 0, 0, 0],  # y=0 covered, size 1
        [1, 1, 0, 0],  # y=1 covered, size 2
        [0, 0, 0, 0],  # y=1 not covered, size 0
        [1, 1, 1, 1],  # y=2 covered, size 4
        [0, 1, 0, 0],  # y=0 not covered, size 1
    ],
    dtype=torch.bool,
)
LABELS = torch.tensor([0, 1, 1, 2, 0])


def test_marginal_metrics() -> None:
    assert coverage(SETS, LABELS) == pytest.approx(3 / 5)
    assert mean_size(SETS) == pytest.approx(8 / 5)
    assert empty_share(SETS) == pytest.approx(1 / 5)
    assert full_share(SETS) == pytest.approx(1 / 5)
    assert size_histogram(SETS).tolist() == [1, 2, 1, 0, 1]


def test_class_conditional_metrics() -> None:
    cov = class_conditional_coverage(SETS, LABELS, 4)
    assert cov[:3].tolist() == [0.5, 0.5, 1.0] and math.isnan(cov[3])
    size = class_conditional_size(SETS, LABELS)
    assert size[:3].tolist() == [1.0, 1.0, 4.0] and math.isnan(size[3])


def test_summarize_is_json_friendly() -> None:
    summary = summarize(SETS, LABELS, 4)
    text = json.dumps(summary, allow_nan=False)
    back = json.loads(text)
    assert back["coverage"] == pytest.approx(0.6)
    assert back["class_conditional_coverage"] == [0.5, 0.5, 1.0, None]
    assert back["size_histogram"] == [1, 2, 1, 0, 1]
    assert back["n"] == 5 and back["num_classes"] == 4


def test_attack_ratios() -> None:
    assert reduction_ratio(2.0, 1.04) == pytest.approx(0.48)
    assert expansion_ratio(2.0, 3.0) == pytest.approx(0.5)
    assert normalized_reduction_ratio(2.0, 1.0) == pytest.approx(1.0)
    assert normalized_reduction_ratio(4.0, 2.5) == pytest.approx(0.375 / 0.75)
    assert math.isnan(normalized_reduction_ratio(1.0, 1.0))
    with pytest.raises(CpoisonError):
        reduction_ratio(0.0, 1.0)
    benign = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    assert prediction_consistency(benign, torch.tensor([0, 0, 0])) == pytest.approx(2 / 3)


def test_bad_inputs() -> None:
    with pytest.raises(CpoisonError, match="bool"):
        coverage(SETS.int(), LABELS)
    with pytest.raises(CpoisonError, match="empty"):
        mean_size(torch.zeros(0, 3, dtype=torch.bool))
    with pytest.raises(CpoisonError, match="labels must have shape"):
        coverage(SETS, LABELS[:3])
    with pytest.raises(CpoisonError, match="num_classes=5"):
        summarize(SETS, LABELS, 5)
