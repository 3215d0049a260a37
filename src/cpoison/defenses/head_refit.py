"""Clean head refit: a conformal-aware defense beyond the paper (SPEC 7, issue 11's open
question).

The paper's threat model poisons the training data only; the calibration data is the
defender's own, clean and exchangeable with the test data (SPEC 2). Split CP spends all of
it on the quantile. This defense spends part of it on the model instead:

1. a seeded share ``refit_fraction`` of the calibration set is set aside;
2. the victim's last linear layer (the head, ``logits = head(features(x))``) is replaced by
   a multinomial logistic regression fitted on the victim's own penultimate features of
   those clean examples (scikit-learn, L2 strength chosen by stratified cross-validation
   on the same clean examples, so nothing about the attack is tuned);
3. split CP (any score, SPEC 3.2) is calibrated on the *rest* of the calibration set with
   the refitted model.

Why it can help: the paper's poisons act through the weights training fits on them. Every
weight of the refitted head is fitted on clean data, so what remains of the attack is
only what the poisons wrote into the features. Why coverage is kept: the refit examples
and the calibration examples are disjoint, and the refitted model is a function of the
refit part only, so the calibration scores stay exchangeable with the test scores and the
split-CP guarantee (SPEC 3.2) holds with the smaller calibration set. What it costs: a
calibration set ``1 - refit_fraction`` as large (a coarser quantile) and a head fitted on
few examples (clean accuracy; measured in docs/results.md). It trains no model: the
victims are the undefended ones (the same artifact-store keys), so it can be evaluated on
every stored run for the price of an evaluation.

The idea is in the family of last-layer retraining on trusted data (Kirichenko et al.,
ICLR 2023, "Last layer re-training is sufficient for robustness to spurious
correlations"); applying it to the calibration split of conformal prediction is this
package's.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from cpoison.defenses.base import Adapted, Defense, DefenseConfigBase
from cpoison.errors import ConfigError
from cpoison.seeding import derive_seed, make_generator
from cpoison.training.trainer import predict_features

# inverse L2 strengths the cross-validation chooses from (on standardised features)
_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


class HeadRefitConfig(DefenseConfigBase):
    """``defense: {name: head_refit, refit_fraction: 0.5}``."""

    name: Literal["head_refit"] = "head_refit"
    refit_fraction: float = Field(
        0.5, gt=0, lt=1,
        description="share of the clean calibration set used to refit the head; the rest "
                    "calibrates")
    folds: int = Field(3, ge=2, le=10,
                       description="cross-validation folds that choose the L2 strength")


class RefitHead(nn.Module):
    """A victim's feature extractor with a new linear head: ``head(base.features(x))``."""

    def __init__(self, base: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The victim's penultimate features, unchanged."""
        return self.base.features(x)  # type: ignore[no-any-return, operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the refitted head (the features in the head's dtype: a transfer
        victim's features are float64)."""
        return self.head(  # type: ignore[no-any-return]
            self.features(x).to(self.head.weight.dtype))


def refit_split(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Bool mask [n]: which calibration examples refit the head (seeded, the same for a
    benign victim and its poisoned twin, which share the seed)."""
    n = labels.numel()
    n_refit = int(round(fraction * n))
    perm = torch.randperm(n, generator=make_generator(derive_seed(seed, "head_refit")))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[perm[:n_refit]] = True
    return mask


def fit_clean_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int, folds: int,
             seed: int) -> tuple[nn.Linear, dict[str, Any]]:
    """Multinomial logistic regression on standardised ``features`` (L2 strength by
    stratified ``folds``-fold cross-validation, fewer folds where a class has fewer
    examples), folded back into one ``nn.Linear`` on the raw features. Classes absent from
    ``labels`` get a bias of -1e4 (never predicted).

    Not :func:`cpoison.transfer.head.fit_head`: that fits the same model by Newton's method
    with the exact ``(D + 1) K`` Hessian (right for the transfer head's few features), which
    for a victim's 512 features is a 5,130-square system per step; scikit-learn's L-BFGS
    does without it."""
    x = features.double().numpy()
    y = labels.numpy()
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-8] = 1.0
    # a class with fewer examples than folds would leave a fold without it: fewer folds,
    # and with a singleton class no cross-validation at all (C = 1)
    folds = min(folds, int(np.bincount(y)[np.unique(y)].min()))
    z = (x - mean) / std
    if folds >= 2:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % (2**32))
        search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(_CS)}, cv=cv,
                              scoring="neg_log_loss")
        clf = search.fit(z, y).best_estimator_
    else:
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(z, y)
    coef, intercept = clf.coef_ / std, clf.intercept_ - (clf.coef_ / std) @ mean
    if coef.shape[0] == 1:  # two classes: sklearn keeps one row, logit of class 1
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept / 2
    weight = np.zeros((num_classes, x.shape[1]))
    bias = np.full(num_classes, -1e4)
    weight[clf.classes_], bias[clf.classes_] = coef, intercept
    head = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head, {"C": float(clf.C), "folds": max(folds, 0), "refit_examples": int(len(y))}


class HeadRefit(Defense):
    """Refit the victim's head on part of the clean calibration set; calibrate on the rest
    (module doc)."""

    name = "head_refit"
    frozen_features = True

    def __init__(self, config: HeadRefitConfig) -> None:
        super().__init__(config)
        self.config: HeadRefitConfig = config

    def check_sizes(self, n_train: int, n_calibration: int) -> None:
        fraction, folds = self.config.refit_fraction, self.config.folds
        n_refit = int(round(fraction * n_calibration))
        if n_refit < 2 * folds or n_calibration - n_refit < 2:
            raise ConfigError(
                f"defense 'head_refit': a calibration set of {n_calibration} examples split "
                f"at refit_fraction {fraction} leaves {n_refit} to refit (need >= "
                f"{2 * folds} for {folds}-fold cross-validation) and "
                f"{n_calibration - n_refit} to calibrate (need >= 2)")

    def adapt(
        self, models: list[nn.Module], calibration_images: torch.Tensor,
        calibration_labels: torch.Tensor, seed: int, device: torch.device | str = "cpu",
    ) -> Adapted:
        if len(models) != 1:
            raise ConfigError(f"defense 'head_refit' expects one model, got {len(models)}")
        self.check_sizes(0, calibration_labels.numel())
        model = models[0]
        refit = refit_split(calibration_labels, self.config.refit_fraction, seed)
        feats = predict_features(model, calibration_images[refit], device)
        num_classes = int(model.head.out_features)  # type: ignore[union-attr]
        head, facts = fit_clean_head(feats, calibration_labels[refit], num_classes,
                               self.config.folds, derive_seed(seed, "head_refit_cv"))
        refitted = RefitHead(model, head.to(next(model.parameters()).device)).eval()
        return Adapted([refitted], ~refit, {"head_refit": facts})
