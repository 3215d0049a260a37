"""Head refit on clean calibration data (SPEC 7, beyond the paper): the refit and the
calibration parts are disjoint and seeded; the refitted head undoes what poisoned training
wrote into the head (a corrupted head, dirty labels) on a trained model; split CP on the rest
keeps coverage; bad settings give one clear message."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import accuracy, make_train_fn

from cpoison.conformal import HPS, SplitConformal, coverage
from cpoison.data.base import ImageDataset
from cpoison.defenses import build_defense, parse_defense
from cpoison.defenses.head_refit import fit_clean_head, refit_split
from cpoison.errors import ConfigError
from cpoison.training import TrainSet, predict_logits

ALPHA = 0.1


# the digits' training images are in the dataset's order (writers): the victim trains on a
# random 1000 of them and the other 500 are the clean calibration set, exchangeable with
# the (random) test digits
_ORDER = torch.randperm(1500, generator=torch.Generator().manual_seed(0))


def _train(digits: ImageDataset, labels: torch.Tensor | None = None) -> TrainSet:
    labels = digits.train_labels if labels is None else labels
    return TrainSet(digits.train_images, labels, _ORDER[:1000].sort().values)


def _cal(digits: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    return digits.train_images[_ORDER[1000:]], digits.train_labels[_ORDER[1000:]]


def _recall(model: torch.nn.Module, digits: ImageDataset, label: int) -> float:
    pred = predict_logits(model, digits.test_images).argmax(1)
    of = digits.test_labels == label
    return float((pred[of] == label).float().mean())


def test_parts_are_disjoint_seeded_and_the_rest_calibrates(digits: ImageDataset) -> None:
    cal_x, cal_y = _cal(digits)
    mask = refit_split(cal_y, 0.5, seed=3)
    assert int(mask.sum()) == 250 and torch.equal(mask, refit_split(cal_y, 0.5, seed=3))
    assert not torch.equal(mask, refit_split(cal_y, 0.5, seed=4))
    model = make_train_fn()(_train(digits), 0, None)
    adapted = build_defense("head_refit").adapt([model], cal_x, cal_y, seed=3)
    assert torch.equal(adapted.calibration_keep, ~mask)  # what refits never calibrates
    assert adapted.record["head_refit"]["refit_examples"] == 250
    assert adapted.record["head_refit"]["C"] > 0
    # the features are the victim's own; only the head is new
    x = digits.test_images[:5].float() / 255
    refitted = adapted.models[0]
    assert torch.equal(refitted.features(x), model.features(x))
    assert not torch.equal(refitted.head.weight, model.head.weight)


def test_refit_undoes_a_corrupted_head(digits: ImageDataset) -> None:
    """Swap the head rows of classes 3 and 8: every 3 reads as an 8 and back; the refit on
    clean calibration data restores both classes and the accuracy."""
    model = make_train_fn()(_train(digits), 0, None)
    clean_acc, clean_recall = accuracy(model, digits), _recall(model, digits, 3)
    with torch.no_grad():
        model.head.weight[[3, 8]] = model.head.weight[[8, 3]].clone()
        model.head.bias[[3, 8]] = model.head.bias[[8, 3]].clone()
    assert _recall(model, digits, 3) < 0.1
    adapted = build_defense("head_refit").adapt([model], *_cal(digits), seed=0)
    # a head fitted on 250 examples: within 0.15 of the clean recall, 3 points of accuracy
    assert _recall(adapted.models[0], digits, 3) > clean_recall - 0.15
    assert accuracy(adapted.models[0], digits) > clean_acc - 0.03


def test_refit_undoes_dirty_labels_in_the_head(digits: ImageDataset) -> None:
    """Poisoned training (half of the training 3s labelled 8) makes the victim call test 3s
    8s; the head refitted on clean calibration data recovers the 3s, and HPS sets calibrated
    on the rest cover the 3s again."""
    labels = digits.train_labels.clone()
    trained = _ORDER[:1000]
    threes = trained[labels[trained] == 3]
    labels[threes[::2]] = 8
    model = make_train_fn()(_train(digits, labels), 0, None)
    cal_x, cal_y = _cal(digits)
    adapted = build_defense("head_refit").adapt([model], cal_x, cal_y, seed=0)
    before, after = _recall(model, digits, 3), _recall(adapted.models[0], digits, 3)
    assert after > before + 0.15, (before, after)

    def set_size_of_threes(m: torch.nn.Module, keep: torch.Tensor) -> float:
        cp = SplitConformal(HPS(), ALPHA).calibrate(predict_logits(m, cal_x[keep]), cal_y[keep])
        sets = cp.predict(predict_logits(m, digits.test_images))
        return float(sets[digits.test_labels == 3].sum(1).float().mean())

    keep = adapted.calibration_keep
    # the poisoned head spreads the 3s over {3, 8}; the refitted one is surer of them
    assert set_size_of_threes(adapted.models[0], keep) < set_size_of_threes(model, keep)


def test_split_cp_after_the_refit_keeps_coverage(digits: ImageDataset) -> None:
    """Exchangeable data: coverage of the test digits, averaged over 10 refit splits, is at
    least 1 - alpha (up to the test set's sampling error)."""
    model = make_train_fn()(_train(digits), 0, None)
    cal_x, cal_y = _cal(digits)
    covs = []
    for seed in range(10):
        adapted = build_defense("head_refit").adapt([model], cal_x, cal_y, seed=seed)
        m, keep = adapted.models[0], adapted.calibration_keep
        cp = SplitConformal(HPS(), ALPHA).calibrate(predict_logits(m, cal_x[keep]), cal_y[keep])
        sets = cp.predict(predict_logits(m, digits.test_images))
        covs.append(float(coverage(sets, digits.test_labels)))
    assert sum(covs) / len(covs) >= 1 - ALPHA - 0.02, covs


@pytest.mark.parametrize(("value", "fragment"), [
    ({"name": "head_refit", "refit_fraction": 0.0}, "invalid value for 'refit_fraction' (0.0)"),
    ({"name": "head_refit", "refit_fraction": 1.0}, "invalid value for 'refit_fraction' (1.0)"),
    ({"name": "head_refit", "folds": 1}, "invalid value for 'folds' (1)"),
])
def test_bad_settings_give_one_clear_message(value: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_defense(value)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_calibration_set_too_small_to_split_is_named() -> None:
    with pytest.raises(ConfigError, match="calibration set of 8 examples"):
        build_defense("head_refit").check_sizes(1000, 8)


def test_the_fitted_head_predicts_as_the_regression_with_two_or_absent_classes() -> None:
    """The head folded back onto raw features separates two classes (scikit-learn keeps a
    single row for them) and never predicts a class it has not seen."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(120, 5, generator=gen) * torch.tensor([1.0, 5.0, 0.1, 1.0, 1.0]) + 3.0
    y = (x[:, 1] > 3.0).long() * 2  # labels 0 and 2 of K = 4
    head, facts = fit_clean_head(x, y, num_classes=4, folds=3, seed=0)
    pred = head(x).argmax(1)
    assert float((pred == y).float().mean()) > 0.95
    assert set(pred.tolist()) <= {0, 2} and facts["folds"] == 3
