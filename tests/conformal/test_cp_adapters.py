"""The conformal-predictor protocol, and the TorchCP and MAPIE adapters checked against the
installed libraries: their sets equal cpoison's for the same score, or differ as the
adapters module explains (randomization, MAPIE's prediction rule)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cp_reference import make_data
from torch import nn
from torchcp_import import import_torchcp

from cpoison.conformal import APS, HPS, RAPS, SplitConformal, conformal_quantile
from cpoison.conformal.adapters import (
    ConformalPredictor,
    MapiePredictor,
    TorchCPPredictor,
    TorchModelClassifier,
    as_sets,
    conformal_sets,
    cpoison_factory,
)
from cpoison.errors import CpoisonError


def _cal_test(seed: int, k: int, n: int = 400, n_test: int = 300):
    cal, cal_y = make_data(seed, n, k)
    test, test_y = make_data(1000 + seed, n_test, k)
    return (torch.from_numpy(cal), torch.from_numpy(cal_y), torch.from_numpy(test),
            torch.from_numpy(test_y))


# -- the protocol --------------------------------------------------------------------------


class _Oracle:
    """A third-party predictor: every label whose logit is within 1 of the top one."""

    def calibrate(self, logits, labels):
        return self

    def predict(self, logits):
        return (logits >= logits.max(dim=1, keepdim=True).values - 1).int().numpy()


def test_predictors_satisfy_the_protocol():
    assert isinstance(SplitConformal(HPS()), ConformalPredictor)
    assert isinstance(TorchCPPredictor.__new__(TorchCPPredictor), ConformalPredictor)
    assert isinstance(MapiePredictor(), ConformalPredictor)
    assert isinstance(_Oracle(), ConformalPredictor)
    assert not isinstance(object(), ConformalPredictor)


def test_cpoison_factory_gives_split_conformal_sets_for_the_same_generator():
    cal, cal_y, test, _ = _cal_test(0, 10)
    for score in ("hps", "aps", "raps"):
        ours = conformal_sets(cpoison_factory, score, 0.1, torch.Generator().manual_seed(3),
                              cal, cal_y, test)
        gen = torch.Generator().manual_seed(3)
        cp = SplitConformal(score, 0.1).calibrate(cal, cal_y, generator=gen)
        assert torch.equal(ours, cp.predict(test, generator=gen))


def test_any_object_with_the_two_methods_can_be_the_predictor():
    cal, cal_y, test, _ = _cal_test(1, 5)
    sets = conformal_sets(lambda s, a, g: _Oracle(), "hps", 0.1, torch.Generator(),
                          cal, cal_y, test)
    assert sets.dtype == torch.bool and sets.shape == test.shape
    assert bool(sets.any(dim=1).all())


def test_a_wrong_predictor_gives_one_clear_error():
    cal, cal_y, test, _ = _cal_test(2, 5, 50, 10)
    with pytest.raises(CpoisonError, match="returned a int, which has no calibrate"):
        conformal_sets(lambda s, a, g: 3, "hps", 0.1, torch.Generator(), cal, cal_y, test)

    class Bad(_Oracle):
        def predict(self, logits):
            return torch.ones(logits.shape[0], 2, dtype=torch.bool)

    with pytest.raises(CpoisonError, match=r"shape \[10, 5\].*got shape \(10, 2\)"):
        conformal_sets(lambda s, a, g: Bad(), "hps", 0.1, torch.Generator(), cal, cal_y, test)
    with pytest.raises(CpoisonError, match="0/1 or bool mask"):
        as_sets(np.full((2, 2), 2), 2, 2)


def test_split_conformal_keeps_a_default_generator():
    cal, cal_y, test, _ = _cal_test(3, 7)
    a = SplitConformal(APS(), 0.1, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    b = SplitConformal(APS(), 0.1).calibrate(cal, cal_y, generator=gen)
    assert torch.equal(a.calibrate(cal, cal_y).predict(test), b.predict(test, generator=gen))
    with pytest.raises(CpoisonError, match="generator must be a torch.Generator"):
        SplitConformal(APS(), 0.1, generator=5)


# -- TorchCP -------------------------------------------------------------------------------


def _torchcp_pairs():
    tcp = import_torchcp()
    return [
        ("lac", tcp.score.LAC(), HPS()),
        ("aps", tcp.score.APS(randomized=False), APS(randomized=False)),
        ("raps", tcp.score.RAPS(randomized=False, penalty=0.05, kreg=2),
         RAPS(lam=0.05, k_reg=2, randomized=False)),
    ]


@pytest.mark.parametrize("which", ["lac", "aps", "raps"])
def test_torchcp_sets_equal_cpoison_sets_for_the_same_score(which):
    theirs_score, ours_score = {n: (t, o) for n, t, o in _torchcp_pairs()}[which]
    total = disagreements = 0
    for seed in range(12):
        alpha, k = [0.05, 0.1, 0.2][seed % 3], [5, 10, 20][seed % 3]
        cal, cal_y, test, _ = _cal_test(seed, k)
        tcp = TorchCPPredictor(theirs_score, alpha=alpha).calibrate(cal, cal_y)
        cp = SplitConformal(ours_score, alpha).calibrate(cal, cal_y)
        # the same order statistic, up to float rounding of the scores (TorchCP computes the
        # RAPS penalty lam * (rank - k_reg) in float32, whatever the logits' dtype)
        tol = 1e-6 if which == "raps" else 1e-12
        assert float(tcp.threshold) == pytest.approx(float(cp.threshold), abs=tol)
        theirs, ours = tcp.predict(test), cp.predict(test)
        assert theirs.dtype == torch.bool
        total += ours.numel()
        disagreements += int((theirs != ours).sum())
    # only labels whose score lies within rounding of the threshold can differ
    assert disagreements <= 0.001 * total, (disagreements, total)


def test_torchcp_split_predictor_object_is_taken_as_it_is():
    tcp = import_torchcp()
    cal, cal_y, test, _ = _cal_test(4, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        predictor = tcp.predictor.SplitPredictor(tcp.score.LAC(), alpha=0.1)
    a = TorchCPPredictor(predictor, alpha=0.1).calibrate(cal, cal_y).predict(test)
    b = TorchCPPredictor(tcp.score.LAC(), alpha=0.1).calibrate(cal, cal_y).predict(test)
    assert torch.equal(a, b)
    with pytest.raises(CpoisonError, match="takes a TorchCP score"):
        TorchCPPredictor(42)


@pytest.mark.parametrize("seed", range(4))
def test_torchcp_randomized_aps_threshold_equals_cpoison_with_the_same_uniforms(seed):
    """TorchCP draws U ~ U(0, 1) from the global RNG and scores cumsum - U * p_y: cpoison's
    u is 1 - U. The adapter runs TorchCP under a fixed seed (global RNG restored)."""
    tcp = import_torchcp()
    cal, cal_y, test, _ = _cal_test(seed, [10, 7][seed % 2])
    before = torch.random.get_rng_state()
    ad = TorchCPPredictor(tcp.score.APS(randomized=True), alpha=0.1, seed=100 + seed)
    ad.calibrate(cal, cal_y)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100 + seed)
        big_u = torch.rand(cal.shape[0])
    ours = APS().score_labels(cal, cal_y, u=1.0 - big_u.double())
    q = conformal_quantile(ours, 0.1)
    assert float(ad.threshold) == pytest.approx(float(q), abs=1e-6)
    # the randomized test sets differ by design (one U per entry in TorchCP, one u per input
    # in cpoison) but cover alike
    theirs = ad.predict(test)
    assert theirs.shape == test.shape


def test_torchcp_adapter_is_reproducible_from_a_generator():
    tcp = import_torchcp()
    cal, cal_y, test, _ = _cal_test(5, 10)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return conformal_sets(
            lambda s, a, g: TorchCPPredictor(tcp.score.APS(), alpha=a, generator=g),
            "aps", 0.1, gen, cal, cal_y, test,
        )

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


# -- MAPIE ---------------------------------------------------------------------------------

mapie = pytest.importorskip("mapie.classification")


def test_mapie_lac_sets_equal_cpoison_hps_sets():
    total = disagreements = 0
    for seed in range(12):
        alpha, k = [0.05, 0.1, 0.2][seed % 3], [5, 10, 20][seed % 3]
        cal, cal_y, test, _ = _cal_test(seed, k)
        mp = MapiePredictor("lac", alpha=alpha).calibrate(cal, cal_y)
        cp = SplitConformal(HPS(), alpha).calibrate(cal, cal_y)
        assert mp.threshold == pytest.approx(float(cp.threshold), abs=1e-12)
        theirs, ours = mp.predict(test), cp.predict(test)
        total += ours.numel()
        disagreements += int((theirs != ours).sum())
    # MAPIE keeps labels up to 1e-8 above the threshold, and softmaxes with numpy
    assert disagreements <= 0.001 * total, (disagreements, total)


@pytest.mark.parametrize("seed", range(4))
def test_mapie_aps_sets_are_the_explained_variant_of_cpoison_aps(seed):
    """MAPIE's APS: randomized calibration (cpoison's u = 1 - MAPIE's U), non-randomized
    prediction (inclusive cumsum <= q) that always keeps the top label
    (include_last_label=False)."""
    cal, cal_y, test, _ = _cal_test(seed, [10, 7][seed % 2])
    mp = MapiePredictor("aps", alpha=0.1, random_state=seed,
                        conformity_score_params={"include_last_label": False})
    theirs = mp.calibrate(cal, cal_y).predict(test)

    big_u = np.random.RandomState(seed).uniform(size=cal.shape[0])
    cal_scores = APS().score_labels(cal, cal_y, u=torch.from_numpy(1.0 - big_u))
    cp = SplitConformal(APS(randomized=False), 0.1).calibrate_from_scores(cal_scores)
    assert mp.threshold == pytest.approx(float(cp.threshold), abs=1e-12)
    ours = cp.predict(test)
    ours[torch.arange(test.shape[0]), test.argmax(dim=1)] = True  # never an empty set
    mismatch = int((theirs != ours).sum())
    assert mismatch <= 0.001 * ours.numel(), mismatch
    # MAPIE's default (include_last_label=True) adds the first label over the threshold
    default = MapiePredictor("aps", alpha=0.1, random_state=seed).calibrate(cal, cal_y)
    assert bool((default.predict(test) >= theirs).all())


def test_mapie_over_a_fitted_torch_model_matches_the_logits_adapter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).double()
    g = torch.Generator().manual_seed(1)
    x_cal, x_test = torch.randn(300, 6, generator=g).double(), torch.randn(80, 6, generator=g)
    with torch.no_grad():
        y_cal = torch.distributions.Categorical(logits=model(x_cal)).sample()
    clf = TorchModelClassifier(model, num_classes=4).fit()
    scc = mapie.SplitConformalClassifier(clf, confidence_level=0.9, prefit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scc.conformalize(x_cal.numpy(), y_cal.numpy())
        _, direct = scc.predict_set(x_test.double().numpy())
    with torch.no_grad():
        cal_logits, test_logits = model(x_cal), model(x_test.double())
    via_logits = MapiePredictor("lac", alpha=0.1).calibrate(cal_logits, y_cal).predict(
        test_logits
    )
    assert torch.equal(torch.from_numpy(direct[:, :, 0]), via_logits)
    ours = SplitConformal(HPS(), 0.1).calibrate(cal_logits, y_cal).predict(test_logits)
    assert int((ours != via_logits).sum()) <= 2
    assert model.training  # the classifier restores the model's mode
