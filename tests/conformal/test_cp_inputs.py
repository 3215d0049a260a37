"""Lists and NumPy arrays wherever the conformal API takes tensors; wrong types one error;
probabilities passed as logits warned about."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from cpoison.conformal import (
    APS,
    HPS,
    RAPS,
    RSCP,
    RSCPConformal,
    SplitConformal,
    class_conditional_coverage,
    class_conditional_size,
    conformal_quantile,
    coverage,
    empty_share,
    full_share,
    mean_size,
    prediction_consistency,
    set_sizes,
    size_histogram,
    summarize,
)
from cpoison.conformal.inputs import as_tensor, looks_like_probabilities
from cpoison.errors import CpoisonError, ProbabilitiesAsLogitsWarning


def _data(seed: int = 0, n: int = 200, k: int = 5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=torch.float64) * 2, torch.randint(
        k, (n,), generator=g
    )


@pytest.mark.parametrize("score", [HPS(), APS(randomized=False), RAPS(randomized=False)])
@pytest.mark.parametrize("form", ["numpy", "list"])
def test_split_conformal_takes_numpy_and_lists(score, form):
    logits, labels = _data()
    test_logits, _ = _data(1, 50)
    ref = SplitConformal(score, 0.1).calibrate(logits, labels)
    conv = (lambda t: t.numpy()) if form == "numpy" else (lambda t: t.tolist())
    cp = SplitConformal(score, 0.1).calibrate(conv(logits), conv(labels))
    assert float(cp.threshold) == float(ref.threshold)
    assert torch.equal(cp.predict(conv(test_logits)), ref.predict(test_logits))
    scores = score.score_no_grad(test_logits)
    assert torch.equal(cp.predict_from_scores(conv(scores)), ref.predict_from_scores(scores))


def test_calibrate_from_scores_with_a_list_and_an_array():
    # the report: a list ended in AttributeError: 'list' object has no attribute 'detach'
    scores = [0.1 * i for i in range(20)]
    q_list = SplitConformal(HPS(), 0.1).calibrate_from_scores(scores).threshold
    q_np = SplitConformal(HPS(), 0.1).calibrate_from_scores(np.array(scores)).threshold
    q_t = SplitConformal(HPS(), 0.1).calibrate_from_scores(torch.tensor(scores)).threshold
    assert float(q_list) == float(q_np) == pytest.approx(float(q_t))
    assert float(conformal_quantile(scores, 0.1)) == float(q_list)
    tau = RSCPConformal(alpha=0.1).calibrate_from_scores(scores).threshold
    assert float(tau) == float(q_list)
    sets = RSCPConformal(alpha=0.1).calibrate_from_scores(np.array(scores)).predict_from_scores(
        [[0.1, 0.99], [0.5, 0.2]]
    )
    assert sets.dtype == torch.bool and sets.shape == (2, 2)


def test_numpy_keeps_its_float_dtype_and_lists_are_float64():
    assert as_tensor(np.zeros((2, 3), dtype=np.float32), "x").dtype == torch.float32
    assert as_tensor([[1, 2], [3, 4]], "x").dtype == torch.float64
    assert as_tensor([1, 2], "labels", "int").dtype == torch.int64
    assert as_tensor(np.array([1, 2], dtype=np.uint8), "labels", "int").dtype == torch.int64
    t = torch.randn(3, requires_grad=True)
    assert as_tensor(t, "x") is t  # tensors untouched (gradients kept)
    ro = np.arange(4.0)
    ro.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy would warn on a read-only array
        assert as_tensor(ro, "x").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert as_tensor(np.arange(4.0)[::-1], "x").tolist() == [3.0, 2.0, 1.0, 0.0]


def test_scores_and_u_take_numpy():
    logits, labels = _data(2, 30)
    u = torch.rand(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    aps = APS()
    ref = aps.score_labels(logits, labels, u=u)
    assert torch.equal(aps.score_labels(logits.numpy(), labels.numpy(), u=u.numpy()), ref)
    assert torch.equal(aps.score_labels_no_grad(logits.tolist(), labels.tolist(), u=u), ref)
    assert torch.equal(aps.score(logits.numpy(), u=u.tolist()), aps.score(logits, u=u))


def test_metrics_take_numpy_and_lists():
    logits, labels = _data(3, 60)
    sets = SplitConformal(HPS(), 0.2).calibrate(logits, labels).predict(logits)
    s_np, y_np = sets.numpy(), labels.numpy()
    assert coverage(s_np, y_np) == coverage(sets, labels)
    assert coverage(sets.tolist(), labels.tolist()) == coverage(sets, labels)
    assert mean_size(s_np) == mean_size(sets)
    assert torch.equal(set_sizes(s_np), set_sizes(sets))
    assert torch.equal(size_histogram(s_np), size_histogram(sets))
    assert empty_share(s_np) == empty_share(sets) and full_share(s_np) == full_share(sets)
    assert torch.allclose(
        class_conditional_coverage(s_np, y_np), class_conditional_coverage(sets, labels),
        equal_nan=True,
    )
    assert torch.allclose(
        class_conditional_size(s_np, y_np), class_conditional_size(sets, labels), equal_nan=True
    )
    assert summarize(s_np, y_np) == summarize(sets, labels)
    assert prediction_consistency(logits.numpy(), labels.tolist()) == prediction_consistency(
        logits, labels
    )


def test_rscp_takes_numpy_inputs():
    model = nn.Linear(4, 3).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randint(3, (20,), generator=g)
    rscp = RSCP(n_samples=4)
    a = RSCPConformal(rscp, 0.2).calibrate(model, x, y, torch.Generator().manual_seed(1))
    b = RSCPConformal(rscp, 0.2).calibrate(
        model, x.numpy(), y.tolist(), torch.Generator().manual_seed(1)
    )
    assert float(a.threshold) == float(b.threshold)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SplitConformal(HPS()).calibrate("logits", [1]),
         "calibration logits must be a torch.Tensor, a NumPy array or a list of floating"),
        (lambda: SplitConformal(HPS()).calibrate_from_scores({"a": 1}),
         "calibration scores must be a torch.Tensor, a NumPy array or a list of floating-point"
         " numbers, got dict"),
        (lambda: SplitConformal(HPS()).calibrate(np.zeros((3, 2), dtype=np.int64), [0, 1, 0]),
         "calibration logits must hold floating-point numbers, got a NumPy array of dtype int64"),
        (lambda: SplitConformal(HPS()).calibrate(np.zeros((3, 2)), np.array([0.0, 1.0, 0.0])),
         r"labels must hold integers, got a NumPy array of dtype float64 \(use labels.astype"),
        (lambda: SplitConformal(HPS()).calibrate([[0.1, 0.2], [0.3]], [0, 1]),
         "calibration logits must be a rectangular array"),
        (lambda: SplitConformal(HPS()).calibrate([["a", "b"]], [0]),
         "calibration logits must hold floating-point numbers, got a list of str"),
        (lambda: coverage(np.ones((2, 2), dtype=int), [0, 1]),
         r"prediction sets must hold booleans \(True / False\), got a NumPy array of dtype "
         r"int64 \(use sets.astype\(bool\)"),
        (lambda: coverage(torch.ones(2, 2), [0, 1]),
         "prediction sets must be a bool tensor or array, got dtype torch.float32"),
        (lambda: SplitConformal(HPS()).calibrate(torch.zeros(3, 2), torch.zeros(3)),
         "labels must be an integer tensor or array, got dtype torch.float32"),
        (lambda: conformal_quantile(3.5, 0.1),
         "calibration scores must be a torch.Tensor.*got float"),
        (lambda: conformal_quantile(np.float64(3.5), 0.1), "calibration scores must be 1-D"),
    ],
)
def test_wrong_types_give_one_clear_error(call, message):
    with pytest.raises(CpoisonError, match=message):
        call()


def test_probabilities_passed_as_logits_are_warned_about():
    logits, labels = _data(4)
    probs = torch.softmax(logits, dim=1)
    with pytest.warns(ProbabilitiesAsLogitsWarning, match="look like probabilities"):
        cp = SplitConformal(APS(), 0.1).calibrate(
            probs.numpy(), labels, generator=torch.Generator().manual_seed(0)
        )
    with pytest.warns(ProbabilitiesAsLogitsWarning):
        cp.predict(probs.float(), generator=torch.Generator().manual_seed(0))
    with pytest.warns(ProbabilitiesAsLogitsWarning):
        HPS().score(probs)
    with warnings.catch_warnings():  # logits, log-probabilities: no warning
        warnings.simplefilter("error")
        SplitConformal(HPS(), 0.1).calibrate(logits, labels).predict(logits)
        SplitConformal(HPS(), 0.1).calibrate(torch.log(probs), labels)
        HPS().score(torch.full((4, 3), 0.5))  # in [0, 1] but rows sum to 1.5
    assert looks_like_probabilities(probs.float())
    assert not looks_like_probabilities(torch.ones(5, 1))  # one class: ambiguous


def test_one_warning_per_call():
    logits, labels = _data(5)
    probs = torch.softmax(logits, dim=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        APS().score_labels(probs, labels, generator=torch.Generator().manual_seed(0))
        SplitConformal(HPS(), 0.1).calibrate(probs, labels)
        # the bulk path does not warn: the RPS defense scores vote shares (rows sum to 1)
        APS().score_labels_no_grad(probs, labels, generator=torch.Generator().manual_seed(0))
    assert sum(issubclass(w.category, ProbabilitiesAsLogitsWarning) for w in caught) == 2
