"""Agreement with MAPIE 1.x (SPEC 3.4).

MAPIE is given the same probabilities through a prefit classifier whose ``predict_proba``
returns its input. Its split-conformal quantile is ``np.quantile(scores,
ceil((n + 1)(1 - alpha)) / n, method="lower")``, i.e. the same order statistic as SPEC 3.2;
its LAC rule is ``(1 - p) - q <= 1e-8``, so labels within 1e-8 above the threshold are the
only possible (float-boundary) disagreements with ``1 - p <= q``. Its APS calibration score
is ``cumsum_inclusive - u_m * p_y`` with ``u_m = RandomState(random_state).uniform(size=n)``:
SPEC's ``u`` is ``1 - u_m``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cp_reference import FixedProbaClassifier, make_data

from cpoison.conformal import APS, HPS, SplitConformal, conformal_quantile

mapie_classification = pytest.importorskip("mapie.classification")


def _mapie(score: str, probs: np.ndarray, labels: np.ndarray, alpha: float, seed: int):
    k = probs.shape[1]
    model = mapie_classification.SplitConformalClassifier(
        FixedProbaClassifier(k).fit(probs),
        confidence_level=1 - alpha,
        conformity_score=score,
        prefit=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.conformalize(probs, labels)
    return model


def _mapie_threshold(model, probs: np.ndarray) -> tuple[float, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sets = model.predict_set(probs)
    quantiles = model._mapie_classifier.conformity_score_function_.quantiles_
    return float(np.ravel(quantiles)[0]), sets[:, :, 0]


def test_hps_sets_equal_mapie_lac_sets() -> None:
    total, disagreements = 0, 0
    for seed in range(25):
        alpha = [0.05, 0.1, 0.2][seed % 3]
        k = [5, 10, 20][seed % 3]
        cal_logits, cal_labels = make_data(seed, 300, k)
        test_logits, _ = make_data(1000 + seed, 300, k)
        cal_t, test_t = torch.from_numpy(cal_logits), torch.from_numpy(test_logits)
        cp = SplitConformal(HPS(), alpha).calibrate(cal_t, torch.from_numpy(cal_labels))
        ours = cp.predict(test_t).numpy()

        p_cal = HPS().probabilities(cal_t).numpy()  # the same probabilities for MAPIE
        p_test = HPS().probabilities(test_t).numpy()
        q_mapie, theirs = _mapie_threshold(_mapie("lac", p_cal, cal_labels, alpha, seed), p_test)
        assert float(cp.threshold) == q_mapie
        total += ours.size
        disagreements += int((ours != theirs).sum())
    assert disagreements <= 0.001 * total, (disagreements, total)


@pytest.mark.parametrize("seed", range(8))
def test_randomized_aps_threshold_equals_mapie_with_same_uniforms(seed: int) -> None:
    alpha = [0.1, 0.05, 0.2, 0.1][seed % 4]
    n, k = 400, [10, 7][seed % 2]
    logits, labels = make_data(seed, n, k)
    logits_t = torch.from_numpy(logits)
    probs = APS().probabilities(logits_t).numpy()

    model = _mapie("aps", probs, labels, alpha, seed)
    q_mapie, _ = _mapie_threshold(model, probs)
    u_mapie = np.random.RandomState(seed).uniform(size=n)
    u = torch.from_numpy(1.0 - u_mapie)  # SPEC u = 1 - MAPIE u

    ours = APS().score_labels(logits_t, torch.from_numpy(labels), u=u)
    np.testing.assert_allclose(ours.numpy(), model.conformity_scores.ravel(), rtol=0, atol=1e-13)
    q = conformal_quantile(ours, alpha)
    assert float(q) == pytest.approx(q_mapie, abs=1e-13)
    # the same order statistic: both pick the score of the same calibration point
    assert int(torch.argmin((ours - q).abs())) == int(
        np.argmin(np.abs(model.conformity_scores.ravel() - q_mapie))
    )
