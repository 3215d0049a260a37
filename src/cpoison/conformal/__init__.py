"""Conformal prediction core: scores, the conformal quantile, split CP, RSCP, metrics.

Every function takes tensors, NumPy arrays or lists (:mod:`cpoison.conformal.inputs`); your
own conformal predictor (TorchCP, MAPIE or any object with ``calibrate`` and ``predict``)
plugs in through :mod:`cpoison.conformal.adapters`.

Examples:
    >>> import torch
    >>> from cpoison.conformal import APS, SplitConformal, coverage
    >>> g = torch.Generator().manual_seed(0)
    >>> cal_logits = torch.randn(500, 10, generator=g)
    >>> cal_labels = torch.randint(10, (500,), generator=g)
    >>> cp = SplitConformal(APS(), alpha=0.1).calibrate(cal_logits, cal_labels, generator=g)
    >>> sets = cp.predict(torch.randn(20, 10, generator=g), generator=g)  # bool [20, 10]
"""

from cpoison.conformal.metrics import (
    class_conditional_coverage,
    class_conditional_size,
    coverage,
    covered,
    empty_share,
    expansion_ratio,
    full_share,
    mean_size,
    normalized_reduction_ratio,
    prediction_consistency,
    reduction_ratio,
    set_sizes,
    size_histogram,
    summarize,
)
from cpoison.conformal.predictor import SplitConformal, sets_from_scores
from cpoison.conformal.quantile import (
    check_alpha,
    conformal_quantile,
    conformal_rank,
    min_calibration_size,
)
from cpoison.conformal.rscp import RSCP, RSCPConformal
from cpoison.conformal.scores import (
    APS,
    HPS,
    NLL,
    RAPS,
    SCORE_NAMES,
    ConformalScore,
    build_score,
    register_score,
    score_names,
)

__all__ = [
    "APS",
    "HPS",
    "NLL",
    "RAPS",
    "RSCP",
    "SCORE_NAMES",
    "ConformalScore",
    "RSCPConformal",
    "SplitConformal",
    "build_score",
    "register_score",
    "score_names",
    "check_alpha",
    "class_conditional_coverage",
    "class_conditional_size",
    "conformal_quantile",
    "conformal_rank",
    "coverage",
    "covered",
    "empty_share",
    "expansion_ratio",
    "full_share",
    "mean_size",
    "min_calibration_size",
    "normalized_reduction_ratio",
    "prediction_consistency",
    "reduction_ratio",
    "set_sizes",
    "sets_from_scores",
    "size_histogram",
    "summarize",
]
