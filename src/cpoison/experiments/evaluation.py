"""Conformal evaluation of one victim model (SPEC 6 step 4): calibrate every score on the
victim's clean calibration set, then predict sets for the targets, the other test images of
the target class, and the evaluation set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from cpoison.conformal import RSCP, RSCPConformal, SplitConformal, build_score
from cpoison.conformal.adapters import PredictorFactory, conformal_sets
from cpoison.conformal.scores import ConformalScore
from cpoison.defenses.base import Defense
from cpoison.errors import ConfigError
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator


@dataclass
class EvalViews:
    """Indices into the test set of the three evaluated groups (SPEC 2, 6)."""

    targets: torch.Tensor
    others: torch.Tensor  # other test images of the target class
    evaluation: torch.Tensor  # test set minus targets


@dataclass
class ModelEval:
    """Sets per score and group, plus the argmax labels of every test image.

    ``facts``: per score, what a defense's predictor adds (SPEC 7): ``"certificate"`` (an
    RPS certificate of the targets' sets) or ``"unsupported"`` (why the score could not be
    evaluated under the defense; the score then has no ``sets``)."""

    sets: dict[str, dict[str, torch.Tensor]]  # score -> group -> bool [N, K]
    predictions: torch.Tensor  # argmax over the whole test set
    accuracy: float
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)


def score_sets(
    ws: Workspace, views: EvalViews, scores: tuple[str, ...], alpha: float, seed: int, *,
    cal_logits: torch.Tensor, cal_y: torch.Tensor, test_logits: torch.Tensor,
    predictor: Callable[[ConformalScore], Any] | None = None,
    rscp: Callable[[torch.Generator], torch.Tensor] | str | None = None,
    factory: PredictorFactory | None = None,
) -> ModelEval:
    """The one score loop of every setting: for each score, calibrate ``predictor(score)``
    (default split CP) on ``cal_logits`` / ``cal_y`` and predict sets on ``test_logits``
    (CPU, every test image), then cut them into the groups of ``views``.

    ``seed`` fixes the randomness of randomized scores and RSCP noise (one generator per
    score), so a benign and a poisoned victim with the same seed are paired. ``rscp``: the
    RSCP sets [N_test, K] for a generator, or a string saying why RSCP cannot run (the
    score is then reported as unsupported, without sets). A predictor that can certify
    its sets (RPS) adds the certificate of the targets' sets for non-randomized scores.

    ``factory``: the user's conformal predictor (a config's ``predictor``,
    :mod:`cpoison.conformal.factories`). When set, every score but RSCP gets its sets from
    :func:`~cpoison.conformal.adapters.conformal_sets` ``(factory, score, alpha, generator,
    ...)`` with the same seeded generator per score (so a benign and a poisoned victim stay
    paired) instead of ``predictor``; RSCP smooths the model itself and stays cpoison's.
    It cannot be combined with ``predictor`` (a defense's own predictor)."""
    if factory is not None and predictor is not None:
        raise ConfigError("the victims' conformal predictor (predictor) cannot replace a "
                          "defense's own conformal predictor")
    if predictor is None:
        def predictor(score: ConformalScore) -> Any:
            return SplitConformal(score, alpha)

    groups = {"targets": views.targets, "others": views.others, "evaluation": views.evaluation}
    out: dict[str, dict[str, torch.Tensor]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for name in scores:
        gen = make_generator(derive_seed(seed, "eval", name), ws.device if name == "rscp"
                             else "cpu")
        if name == "rscp":
            if rscp is None or isinstance(rscp, str):
                facts[name] = {"unsupported": rscp or "RSCP cannot run here"}
                continue
            all_sets = rscp(gen)
        elif factory is not None:
            all_sets = conformal_sets(factory, name, alpha, gen, cal_logits, cal_y,
                                      test_logits).cpu()
        else:
            score = build_score(name)
            cp = predictor(score).calibrate(cal_logits, cal_y, gen)
            all_sets = cp.predict(test_logits, generator=gen)
            certify = getattr(cp, "certify", None)
            if certify is not None and not score.randomized:
                facts[name] = {"certificate": certify(test_logits[views.targets])}
        out[name] = {g: all_sets[idx] for g, idx in groups.items()}
    preds = test_logits.argmax(1)
    return ModelEval(out, preds, float((preds == ws.dataset.test_labels).float().mean()),
                     facts)


def evaluate_model(
    ws: Workspace, model: nn.Module, views: EvalViews, scores: tuple[str, ...],
    alpha: float, seed: int, factory: PredictorFactory | None = None,
) -> ModelEval:
    """Sets of every score for every group of one model calibrated on the victim's
    calibration set (:func:`score_sets`; ``factory``: the user's conformal predictor)."""
    ds, split = ws.dataset, ws.split
    return score_sets(
        ws, views, scores, alpha, seed,
        cal_logits=ws.logits(model, ds.train_images[split.victim_cal]),
        cal_y=ds.train_labels[split.victim_cal], test_logits=ws.logits(model, ds.test_images),
        rscp=lambda gen: rscp_sets(ws, model, alpha, gen), factory=factory)


def rscp_sets(ws: Workspace, model: nn.Module, alpha: float, generator: torch.Generator,
              calibration: torch.Tensor | None = None) -> torch.Tensor:
    """RSCP sets [N_test, K] of one model, calibrated on the victim's calibration set (or
    on its examples where the bool mask ``calibration`` is true)."""
    ds, split = ws.dataset, ws.split
    cal_x, cal_y = ds.train_images[split.victim_cal], ds.train_labels[split.victim_cal]
    if calibration is not None:
        cal_x, cal_y = cal_x[calibration], cal_y[calibration]
    cp = RSCPConformal(RSCP(n_samples=ws.preset.rscp_samples), alpha)
    cp.calibrate(model, cal_x.float().div(255).to(ws.device), cal_y, generator=generator)
    return cp.predict(model, ds.test_images.float().div(255).to(ws.device),
                      generator=generator).cpu()


# -- victims under a defense (SPEC 7) -------------------------------------------------------


def replaces_conformal(defense: Defense) -> bool:
    """Whether ``defense`` brings its own conformal predictor (RPS: calibration partitions
    and a vote), which a user's ``predictor`` cannot stand in for."""
    return type(defense).conformal is not Defense.conformal


def evaluate_victim(
    ws: Workspace, defense: Defense, models: list[nn.Module], views: EvalViews,
    scores: tuple[str, ...], alpha: float, seed: int, factory: PredictorFactory | None = None,
) -> ModelEval:
    """:func:`evaluate_model` of a victim trained under ``defense`` (its ``models`` from
    ``defense.fit``). With no defense this *is* :func:`evaluate_model` (same numbers).
    Otherwise ``defense.adapt`` first uses the clean calibration data on the models (head
    refit: a new head fitted on part of it; the rest calibrates), then the logits are
    ``defense.logits`` (RPS: the vote shares of its k_t models),
    every score's predictor is ``defense.conformal`` (RPS: k_c calibration partitions of the
    victim's calibration images and a majority vote), with the same seeded generators as
    :func:`evaluate_model`; RSCP runs on the single model of a defense that supports it and
    is reported as unsupported (``facts[score]["unsupported"]``, no sets) otherwise. A
    predictor that can certify its sets (RPS, non-randomized score) adds the certificate
    of the targets' sets (``facts[score]["certificate"]``).

    ``factory`` (the user's conformal predictor) makes the sets of every score but RSCP in
    place of the defense's split CP; a defense that replaces the conformal predictor
    (:func:`replaces_conformal`) refuses it (the engine's pre-flight says so before
    anything trains)."""
    if defense.name == "none":
        return evaluate_model(ws, models[0], views, scores, alpha, seed, factory)
    if factory is not None and replaces_conformal(defense):
        raise ConfigError(f"defense {defense.name!r} replaces the victims' conformal "
                          "predictor, so a config's predictor cannot make their sets")
    ds, split = ws.dataset, ws.split
    cal_x, cal_y = ds.train_images[split.victim_cal], ds.train_labels[split.victim_cal]
    adapted = defense.adapt(models, cal_x, cal_y, seed, ws.device)
    models, keep = adapted.models, adapted.calibration_keep
    cal_x, cal_y = cal_x[keep], cal_y[keep]
    batch = ws.preset.eval_batch_size
    rscp: Callable[[torch.Generator], torch.Tensor] | str = (
        (lambda gen: rscp_sets(ws, models[0], alpha, gen, keep)) if defense.supports_rscp
        else f"defense {defense.name!r} replaces the conformal predictor; RSCP smooths a "
        "single model")
    return score_sets(
        ws, views, scores, alpha, seed, cal_logits=defense.logits(models, cal_x, ws.device, batch),
        cal_y=cal_y, test_logits=defense.logits(models, ds.test_images, ws.device, batch),
        predictor=None if factory is not None
        else lambda score: defense.conformal(score, alpha, cal_x), rscp=rscp, factory=factory)
