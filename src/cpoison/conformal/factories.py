"""The victims' conformal predictor by name: cpoison's, TorchCP's, MAPIE's or your own.

An experiment config's ``predictor`` (and ``cpoison audit --predictor``) names the
:data:`~cpoison.conformal.adapters.PredictorFactory` that turns a victim's logits into its
prediction sets, so that cpoison measures how far poisoning moves the sets of *your*
conformal pipeline:

- ``cpoison`` (the default; the same as leaving ``predictor`` unset): cpoison's split CP,
  :func:`~cpoison.conformal.adapters.cpoison_factory`;
- ``torchcp``: TorchCP's split predictor with the TorchCP score of the same name: ``hps``
  (and ``nll``, whose sets are HPS's) -> ``LAC()``; ``aps`` -> ``APS(randomized=...)`` and
  ``raps`` -> ``RAPS(penalty=lam, kreg=k_reg, randomized=...)`` with cpoison's own
  settings of that score (:func:`~cpoison.conformal.scores.build_score`: randomized,
  ``lam = 0.01``, ``k_reg`` 1 up to 20 classes, else 5), so the numbers are comparable;
- ``mapie``: MAPIE's ``SplitConformalClassifier`` on the softmax of the logits: ``hps``
  (and ``nll``) -> ``"lac"``; ``aps`` -> ``"aps"`` with ``include_last_label=False``.
  MAPIE's ``"raps"`` is refused: it holds out part of the calibration set (``size_raps``)
  to choose its own ``k_reg`` and penalty, so its sets are neither cpoison's RAPS nor
  calibrated on the victim's whole calibration set;
- ``package.module:function`` or ``path/to/file.py:function``: your own factory
  ``factory(score, alpha, generator)`` returning an object with ``calibrate(logits,
  labels)`` and ``predict(logits)`` (a bool mask ``[N, K]``); or a name given to
  :func:`register_predictor`.

Where TorchCP's and MAPIE's sets differ from cpoison's for the same score is explained in
:mod:`cpoison.conformal.adapters`: with HPS they are the same sets (up to float rounding
at the threshold); TorchCP's randomized APS / RAPS draw one uniform per label where cpoison
draws one per input, and MAPIE's APS randomizes only its calibration scores.

Examples:
    >>> import torch
    >>> from cpoison.conformal.adapters import conformal_sets
    >>> g = torch.Generator().manual_seed(0)
    >>> cal, cal_y = torch.randn(200, 5, generator=g), torch.randint(5, (200,), generator=g)
    >>> factory = predictor_factory("cpoison")
    >>> conformal_sets(factory, "hps", 0.1, g, cal, cal_y, cal[:3]).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cpoison.conformal.adapters import (
    ConformalPredictor,
    MapiePredictor,
    PredictorFactory,
    TorchCPPredictor,
    cpoison_factory,
)
from cpoison.conformal.scores import APS, HPS, NLL, RAPS, build_score
from cpoison.errors import ConfigError, CpoisonError

__all__ = [
    "BUILT_IN_PREDICTORS",
    "PREDICTORS",
    "check_predictor",
    "check_predictor_factory",
    "mapie_factory",
    "predictor_factory",
    "predictor_identity",
    "predictor_names",
    "register_predictor",
    "torchcp_factory",
]

#: the predictors cpoison ships, by name
BUILT_IN_PREDICTORS: tuple[str, ...] = ("cpoison", "torchcp", "mapie")

SPEC_FORM = "'package.module:function' (or 'path/to/file.py:function')"


class _BuiltAtCalibration:
    """A predictor built when :meth:`calibrate` sees the number of classes ``K`` (TorchCP's
    RAPS takes ``k_reg`` up front; cpoison's default depends on ``K``)."""

    def __init__(self, build: Callable[[int], Any]) -> None:
        self.build = build
        self.predictor: Any = None

    def calibrate(self, logits: Tensor, labels: Tensor) -> _BuiltAtCalibration:
        """Build the predictor for ``logits.shape[1]`` classes and calibrate it."""
        self.predictor = self.build(int(logits.shape[1]))
        self.predictor.calibrate(logits, labels)
        return self

    def predict(self, logits: Tensor) -> Any:
        """The built predictor's sets."""
        if self.predictor is None:
            raise CpoisonError("the predictor is not calibrated: call calibrate() first")
        return self.predictor.predict(logits)

    @property
    def threshold(self) -> Any:
        """The built predictor's threshold (None before :meth:`calibrate`)."""
        return getattr(self.predictor, "threshold", None)


def _no_counterpart(library: str, score: str) -> CpoisonError:
    return CpoisonError(f"predictor {library!r} has no counterpart of cpoison's score "
                        f"{score!r} (it maps hps, nll, aps and raps); drop {score!r} from "
                        "scores or use predictor cpoison")


def torchcp_factory(score: str, alpha: float, generator: torch.Generator) -> ConformalPredictor:
    """TorchCP's split predictor for a cpoison score name, with cpoison's settings of it.

    Args:
        score: ``hps`` (or ``lac`` / ``thr`` / ``nll``: the same sets), ``aps`` or ``raps``.
        alpha: Miscoverage level in (0, 1).
        generator: Seeds TorchCP's randomness (:class:`TorchCPPredictor`).

    Returns:
        A :class:`~cpoison.conformal.adapters.TorchCPPredictor` (for RAPS, one built at
        calibration, when the number of classes fixes cpoison's default ``k_reg``).

    Raises:
        CpoisonError: TorchCP is not installed (naming the extra), or a score TorchCP has no
            counterpart of.
    """
    try:
        from torchcp.classification import score as tcp
    except ImportError as err:
        raise CpoisonError(f"predictor 'torchcp' needs TorchCP: pip install "
                           f"'cpoison[torchcp]' (importing it failed: {err})") from None
    ours = build_score(score)
    kind = type(ours)
    if kind in (HPS, NLL):
        return TorchCPPredictor(tcp.LAC(), alpha=alpha, generator=generator)
    if kind is APS:
        return TorchCPPredictor(tcp.APS(randomized=ours.randomized), alpha=alpha,
                                generator=generator)
    if kind is RAPS:
        raps: RAPS = ours  # type: ignore[assignment]

        def build(num_classes: int) -> TorchCPPredictor:
            return TorchCPPredictor(
                tcp.RAPS(randomized=raps.randomized, penalty=raps.lam,
                         kreg=raps.resolved_k_reg(num_classes)),
                alpha=alpha, generator=generator)

        return _BuiltAtCalibration(build)
    raise _no_counterpart("torchcp", score)


def mapie_factory(score: str, alpha: float, generator: torch.Generator) -> ConformalPredictor:
    """MAPIE's split conformal classifier for a cpoison score name.

    Args:
        score: ``hps`` (or ``lac`` / ``thr`` / ``nll``) -> MAPIE's ``"lac"``; ``aps`` ->
            ``"aps"`` with ``include_last_label=False`` (module docstring of
            :mod:`cpoison.conformal.adapters` for how its sets relate to cpoison's).
        alpha: Miscoverage level in (0, 1).
        generator: Draws MAPIE's ``random_state`` at each calibration.

    Returns:
        A :class:`~cpoison.conformal.adapters.MapiePredictor`.

    Raises:
        CpoisonError: MAPIE is not installed (naming the extra), ``raps`` (MAPIE tunes its
            own RAPS on a held-out part of the calibration set), or another score.
    """
    try:
        import mapie.classification  # noqa: F401
    except ImportError as err:
        raise CpoisonError(f"predictor 'mapie' needs MAPIE: pip install 'cpoison[mapie]' "
                           f"(importing it failed: {err})") from None
    kind = type(build_score(score))
    if kind in (HPS, NLL):
        return MapiePredictor("lac", alpha=alpha, generator=generator)
    if kind is APS:
        return MapiePredictor("aps", alpha=alpha, generator=generator,
                              conformity_score_params={"include_last_label": False})
    if kind is RAPS:
        raise CpoisonError(
            "predictor 'mapie' cannot make RAPS sets: MAPIE's RAPS holds out part of the "
            "calibration set (size_raps) to choose its own k_reg and penalty, so its sets "
            "are neither cpoison's RAPS (lam 0.01, k_reg 1) nor calibrated on the victim's "
            "whole calibration set; drop 'raps' from scores, or use predictor torchcp or "
            "cpoison for RAPS")
    raise _no_counterpart("mapie", score)


#: predictor factories by name (:func:`register_predictor` adds more)
PREDICTORS: dict[str, PredictorFactory] = {
    "cpoison": cpoison_factory,
    "torchcp": torchcp_factory,
    "mapie": mapie_factory,
}


def predictor_names() -> tuple[str, ...]:
    """The names a config's ``predictor`` accepts: the built-in ones and those registered."""
    return tuple(PREDICTORS)


def register_predictor(name: str, factory: PredictorFactory) -> None:
    """Make ``factory(score, alpha, generator) -> predictor`` available to configs under
    ``name`` (case-insensitive) in this process.

    Args:
        name: A name without ``:`` that is not a built-in one.
        factory: Called as ``factory(score, alpha, generator)``; returns an object with
            ``calibrate(logits, labels)`` and ``predict(logits)``.

    Raises:
        ConfigError: a name with ``:``, a built-in name, or a factory that is not callable.
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    if not key or ":" in key:
        raise ConfigError(f"predictor name {name!r} must be a non-empty name without ':'")
    if key in BUILT_IN_PREDICTORS:
        raise ConfigError(f"predictor name {name!r} is built in; register yours under "
                          "another name")
    if not callable(factory):
        raise ConfigError(f"predictor {name!r}: the factory must be callable as "
                          f"factory(score, alpha, generator), got a {type(factory).__name__}")
    PREDICTORS[key] = factory


def is_predictor_spec(value: str) -> bool:
    """Whether ``value`` names a user's factory (``module:function``) rather than a name."""
    return ":" in value


def check_predictor(value: Any) -> str:
    """The canonical form of a config's ``predictor``: a known name in lower case, or a
    well-formed ``package.module:function`` / ``file.py:function`` spec (not imported here).

    Raises:
        ConfigError: not a string, an unknown name or a malformed spec (one message).
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"predictor must be a name ({', '.join(predictor_names())}) or "
                          f"{SPEC_FORM}, got {value!r}")
    text = value.strip()
    if is_predictor_spec(text):
        if text.count(":") != 1 or not all(part.strip() for part in text.split(":")):
            raise ConfigError(f"predictor {value!r} must be {SPEC_FORM} naming a "
                              "factory(score, alpha, generator)")
        return text
    if text.lower() not in PREDICTORS:
        raise ConfigError(f"unknown predictor {value!r}; choose one of "
                          f"{', '.join(predictor_names())}, or name your own factory as "
                          f"{SPEC_FORM}")
    return text.lower()


def predictor_factory(spec: str) -> PredictorFactory:
    """The factory a config's ``predictor`` names: a registered name, or a user's
    ``package.module:function`` / ``file.py:function`` (or an object given from Python,
    :func:`cpoison.models.user.register_object`), imported now.

    Raises:
        ConfigError: an unknown name, a malformed spec, a module that cannot be imported, no
            such function, or something that is not callable.
    """
    spec = check_predictor(spec)
    if not is_predictor_spec(spec):
        return PREDICTORS[spec]
    from cpoison.models.user import resolve_function

    try:
        func = resolve_function(spec)
    except ConfigError as err:
        raise ConfigError(str(err).replace("model spec", "predictor", 1)) from None
    if not callable(func) or isinstance(func, torch.nn.Module):
        raise ConfigError(f"predictor {spec!r} is a {type(func).__name__}, not a factory "
                          "function(score, alpha, generator)")
    return func  # type: ignore[return-value]


def predictor_identity(spec: str) -> Any:
    """What determines the sets of a config's ``predictor``, for the cells' keys: a built-in
    name as it is; a registered one with the digest of its factory's source; a user's spec
    with the digest of its function's source (so editing it makes new cells).

    Raises:
        ConfigError: as :func:`predictor_factory`.
    """
    spec = check_predictor(spec)
    if spec in BUILT_IN_PREDICTORS:
        return spec
    from cpoison.models.user import identity_of, object_identity

    if not is_predictor_spec(spec):
        return {"name": spec, **object_identity(PREDICTORS[spec])}
    predictor_factory(spec)  # one clear message for a spec that does not import
    return {"spec": spec, **identity_of(spec)}


def check_predictor_factory(spec: str, scores: tuple[str, ...] | list[str],
                            alpha: float) -> PredictorFactory:
    """Resolve a config's ``predictor`` and build one predictor for every score but RSCP
    (nothing is calibrated), so that a missing library, a score it cannot make or a factory
    that fails is one message before any model trains.

    Args:
        spec: The config's ``predictor``.
        scores: The config's scores (``rscp`` is always cpoison's and is skipped).
        alpha: The miscoverage level.

    Returns:
        The factory.

    Raises:
        ConfigError: as :func:`predictor_factory`; a factory that raises or returns an
            object without ``calibrate`` and ``predict``.
    """
    factory = predictor_factory(spec)
    for score in scores:
        if score == "rscp":
            continue
        try:
            predictor = factory(score, alpha, torch.Generator().manual_seed(0))
        except CpoisonError as err:
            raise ConfigError(f"predictor {spec!r}, score {score!r}: {err}") from None
        except Exception as exc:  # the user's factory failed
            raise ConfigError(f"predictor {spec!r}: calling it as factory({score!r}, {alpha}, "
                              f"generator) failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(predictor, ConformalPredictor):
            raise ConfigError(f"predictor {spec!r} returned a {type(predictor).__name__} for "
                              f"score {score!r}, which has no calibrate(logits, labels) and "
                              "predict(logits) methods")
    return factory
