"""One-off use in a few lines, from tensors and a model: :func:`craft_poisons` crafts a poison
set against your (trained) model, :func:`evaluate_sets` calibrates and evaluates one
model's prediction sets. Both work in memory: nothing is trained, stored or keyed, and there
is no victim pairing or repeat; grids of budgets, victims and repeats are the engine's job
(``cpoison.audit`` and ``cpoison attack``).

>>> poisons = craft_poisons(model, bases, base_labels, targets, target_labels, cal_x, cal_y,
...                         eps=16 / 255, alpha=0.1)
>>> poisoned = bases + poisons.delta          # add these to the victim's training data
>>> evaluate_sets(victim, cal_x, cal_y, test_x, test_y, score="aps")["mean_size"]

Inputs are images ``[N, C, H, W]`` (float in [0, 1], or uint8 0..255) or feature vectors
``[N, D]`` (any float, never clipped), as tensors, NumPy arrays or lists.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from cpoison.attacks import AttackConfig, AttackContext, Goal, PoisonSet, build_attack
from cpoison.conformal import coverage, mean_size
from cpoison.conformal.adapters import as_sets, conformal_sets, cpoison_factory
from cpoison.conformal.factories import predictor_factory
from cpoison.errors import ConfigError
from cpoison.models.user import check_model
from cpoison.seeding import derive_seed, make_generator
from cpoison.training import predict_logits

__all__ = ["craft_poisons", "evaluate_sets"]

Clip = tuple[float, float] | None


def _inputs(x: Any, what: str) -> torch.Tensor:
    """Float inputs from a tensor, array or list: uint8 images are divided by 255."""
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{what}: not an array of numbers ({exc})") from None
    if t.dim() not in (2, 4):
        raise ConfigError(f"{what} must be images [N, C, H, W] or feature vectors [N, D], "
                          f"got shape {tuple(t.shape)}")
    return t.float().div(255.0) if t.dtype == torch.uint8 else t.float()


def _labels(y: Any, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(y).long().flatten()
    if t.numel() != n:
        raise ConfigError(f"{what}: {t.numel()} labels for {n} inputs")
    return t


def _classifier(model: nn.Module, x: torch.Tensor, num_classes: int | None) -> nn.Module:
    """The model with cpoison's features / head interface, checked on ``x``'s shape."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if num_classes is None:
        with torch.no_grad():
            was = model.training
            model.eval()
            num_classes = int(model(x[:2]).shape[1])
            model.train(was)
    return check_model(model, tuple(x.shape[1:]), num_classes, "model").eval()


def _attack_config(attack: Any, iterations: int | None, settings: dict[str, Any]) -> Any:
    if not isinstance(attack, str):
        return attack
    raw: dict[str, Any] = {"name": attack, **settings}
    if iterations is not None and attack in ("ours", "misclassification"):
        raw.setdefault("crafting", {})
        raw["crafting"] = {**raw["crafting"], "iterations": iterations}
    try:
        return TypeAdapter(AttackConfig).validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"attack {attack!r}: {where}: {first['msg']}") from None


def craft_poisons(
    model: nn.Module,
    bases: Any,
    base_labels: Any,
    targets: Any,
    target_labels: Any,
    cal_x: Any,
    cal_y: Any,
    *,
    eps: float,
    alpha: float = 0.1,
    goal: str | Goal | dict[str, Any] = "overconfidence",
    attack: str | Any = "ours",
    seed: int = 0,
    iterations: int | None = None,
    train_x: Any = None,
    train_y: Any = None,
    clip: Clip | str = "auto",
    num_classes: int | None = None,
    inject: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
    **attack_settings: Any,
) -> PoisonSet:
    """Craft poisons: perturbations ``delta`` (``|delta| <= eps``) of ``bases`` that, added
    to a victim's training data, move the victim's prediction sets on ``targets`` toward
    ``goal``. ``model`` is the attacker's trained surrogate (its gradients steer the
    poisons); ``cal_x``, ``cal_y`` the attacker's calibration data.

    Args:
        model: a trained ``nn.Module`` mapping inputs to logits; its last ``nn.Linear``
            gives the logits (any module, or one with ``features`` and ``head``).
        bases, base_labels: the images (or feature vectors) to perturb and their labels.
        targets, target_labels: the test inputs whose sets should move, and their labels.
        cal_x, cal_y: calibration inputs and labels.
        eps: the L-inf bound of each perturbation (pixel units in [0, 1], or feature
            units).
        alpha: the conformal miscoverage level.
        goal: ``overconfidence`` (shrink the sets), ``underconfidence``,
            ``unequal-coverage``, ``add-label`` / ``remove-label`` (a dict with ``label``),
            or a :class:`~cpoison.attacks.Goal`.
        attack: ``ours`` (the paper's attack), ``randun`` / ``randga`` (random noise of the
            same size), ``misclassification``, or an attack config object; its settings
            as keywords (``loss="l2"``, ``order=2``, ``score="aps"``, ...).
        seed: the seed of every random draw.
        iterations: crafting iterations (default: the attack's, 150 for ``ours``).
        train_x, train_y: the attacker's training data, for the second-order update
            (default: the calibration data).
        clip: the range poisoned inputs stay in (``None``: no clipping); ``"auto"``:
            ``(0, 1)`` for images ``[N, C, H, W]``, none for feature vectors ``[N, D]``.
        num_classes: K (default: the model's output width).
        inject: the poisons are new training examples (True) or replace the bases in the
            victim's data (False: the clean bases' gradient is subtracted).
        device: where to craft (default: the model's device).
        progress: show a progress bar.

    Returns:
        A :class:`~cpoison.attacks.PoisonSet`: ``delta`` (float, like ``bases``) and
        ``ids`` (0..P-1, the bases' positions); the poisoned inputs are
        ``bases + poisons.delta``.

    Raises:
        ConfigError: bad shapes, an unknown attack, goal or setting.
    """
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    dev = torch.device(device) if device is not None else (
        param.device if param is not None else torch.device("cpu"))
    x_b = _inputs(bases, "bases").to(dev)
    x_t, x_c = _inputs(targets, "targets").to(dev), _inputs(cal_x, "cal_x").to(dev)
    if not x_b.shape[1:] == x_t.shape[1:] == x_c.shape[1:]:
        raise ConfigError(f"bases {tuple(x_b.shape[1:])}, targets {tuple(x_t.shape[1:])} "
                          f"and cal_x {tuple(x_c.shape[1:])} must have one input shape")
    surrogate = _classifier(model, x_c, num_classes)
    if clip == "auto":
        clip = (0.0, 1.0) if x_b.dim() == 4 else None
    goal_obj = goal if isinstance(goal, Goal) else Goal(**(
        {"kind": goal} if isinstance(goal, str) else goal))
    x_tr = x_c if train_x is None else _inputs(train_x, "train_x")
    y_tr = (cal_y if train_x is None else train_y)
    ctx = AttackContext(
        surrogate=surrogate, bases=x_b,
        base_labels=_labels(base_labels, x_b.shape[0], "base_labels").to(dev),
        base_ids=torch.arange(x_b.shape[0]), inject=inject,
        cal_x=x_c, cal_y=_labels(cal_y, x_c.shape[0], "cal_y").to(dev),
        target_x=x_t, target_y=_labels(target_labels, x_t.shape[0], "target_labels").to(dev),
        train_x=x_tr.cpu(), train_y=_labels(y_tr, x_tr.shape[0], "train_y"),
        goal=goal_obj, alpha=alpha, eps=float(eps), seed=seed, device=dev,
        progress=progress, clip=clip,  # type: ignore[arg-type]
    )
    return build_attack(_attack_config(attack, iterations, attack_settings)).craft(ctx)


def evaluate_sets(
    model: nn.Module,
    cal_x: Any,
    cal_y: Any,
    test_x: Any,
    test_y: Any,
    *,
    score: str = "aps",
    alpha: float = 0.1,
    predictor: Any = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Split conformal prediction with ``model``: calibrate on (``cal_x``, ``cal_y``),
    predict sets on ``test_x`` and measure them against ``test_y``.

    Args:
        model: an ``nn.Module`` mapping inputs to logits.
        cal_x, cal_y, test_x, test_y: inputs (images or feature vectors, as for
            :func:`craft_poisons`) and labels.
        score: ``hps``, ``aps``, ``raps`` or ``nll`` (cpoison's split CP).
        alpha: the miscoverage level.
        predictor: your own conformal predictor instead: a name (``"torchcp"``,
            ``"mapie"``, ``"cpoison"``) or ``package.module:function`` naming a factory, as
            a config's ``predictor`` takes it; a factory ``(score, alpha, generator) ->
            predictor``; or a predictor object, with ``calibrate(logits, labels)`` and
            ``predict(logits)`` (e.g. :class:`cpoison.conformal.adapters.MapiePredictor`).
        seed: the seed of randomised scores.

    Returns:
        ``{"sets": bool [N, K], "coverage": float, "mean_size": float, "accuracy": float,
        "logits": [N, K]}``.
    """
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    dev = torch.device(device) if device is not None else (
        param.device if param is not None else torch.device("cpu"))
    x_c, x_t = _inputs(cal_x, "cal_x"), _inputs(test_x, "test_x")
    y_c = _labels(cal_y, x_c.shape[0], "cal_y")
    y_t = _labels(test_y, x_t.shape[0], "test_y")
    cal_logits = predict_logits(model, x_c, dev, batch_size)
    test_logits = predict_logits(model, x_t, dev, batch_size)
    gen = make_generator(derive_seed(seed, "evaluate-sets"))
    if predictor is None:
        factory = cpoison_factory
    elif isinstance(predictor, str):
        factory = predictor_factory(predictor)
    elif callable(getattr(predictor, "calibrate", None)):
        def factory(_score: str, _alpha: float, _gen: torch.Generator) -> Any:
            return predictor
    else:
        factory = predictor
    sets = conformal_sets(factory, score, alpha, gen, cal_logits, y_c, test_logits)
    sets = as_sets(sets, *test_logits.shape)
    return {"sets": sets, "coverage": float(coverage(sets, y_t)),
            "mean_size": float(mean_size(sets)),
            "accuracy": float((test_logits.argmax(1) == y_t).float().mean()),
            "logits": test_logits}
