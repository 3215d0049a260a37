"""Your own conformal predictor: a small protocol, and adapters for TorchCP and MAPIE.

cpoison measures how far poisoning moves prediction sets. The sets may come from any
conformal predictor that can

- ``calibrate(logits, labels)``: take the calibration logits ``[n, K]`` and labels ``[n]``;
- ``predict(logits)``: return the prediction sets of test logits ``[N, K]`` as a bool mask
  ``[N, K]`` (``mask[i, y]`` is True when label ``y`` is in the set of input ``i``).

That is :class:`ConformalPredictor`. cpoison's own
:class:`~cpoison.conformal.SplitConformal` satisfies it (give it a ``generator`` for the
randomized scores); :class:`TorchCPPredictor` wraps a TorchCP score or ``SplitPredictor``
and :class:`MapiePredictor` a MAPIE ``SplitConformalClassifier``. Wherever cpoison
evaluates a model's sets it can take a :data:`PredictorFactory`: a function
``factory(score, alpha, generator)`` returning a fresh predictor for one cpoison score name
(``"hps"``, ``"aps"``, ``"raps"``), the miscoverage level and a seeded generator, which a
predictor uses for all its randomness so that a benign and a poisoned model are compared
under the same draws. :func:`conformal_sets` runs one factory.

Where the libraries' sets differ from cpoison's for the same score (checked in cpoison's
tests against the installed libraries):

- TorchCP (``THR`` / ``LAC``, and ``APS`` / ``RAPS`` with ``randomized=False``): the same
  threshold (the same order statistic ``k = ceil((n + 1)(1 - alpha))``) and the same sets,
  up to float rounding of the scores at the threshold (TorchCP's ``torch.softmax`` and
  unstable sort against cpoison's; TorchCP computes the RAPS penalty in float32 whatever
  the logits' dtype; cpoison snaps APS scores that are 1 in exact arithmetic to exactly 1).
  TorchCP's RAPS defaults (``penalty=0``, ``kreg=0``) are not cpoison's (``lam=0.01``,
  ``k_reg=1`` up to 20 classes): pass them explicitly to compare. TorchCP's randomized
  APS draws one uniform per *entry* of the test scores from the global RNG, cpoison one
  per *input*, shared across labels: the calibration thresholds agree for the same draws
  (cpoison's ``u`` is TorchCP's ``1 - U``), the randomized test sets do not.
- MAPIE: ``"lac"`` gives cpoison's HPS sets (MAPIE keeps labels up to ``1e-8`` above the
  threshold). MAPIE's ``"aps"`` and ``"raps"`` always randomize the calibration scores
  (``cumsum - U * p_y``, ``U`` from ``numpy.random.RandomState(random_state)``), and
  predict without randomization: with ``include_last_label=False`` a label is in the set
  when its inclusive cumulative probability is at most the threshold, and the top label
  always is (no empty sets); with ``True`` (MAPIE's default) the first label over the
  threshold is added as well. So MAPIE's APS sets are cpoison's non-randomized APS sets
  against a threshold calibrated on randomized scores, plus the top label.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import Tensor, nn

from cpoison.conformal.inputs import ArrayLike, as_tensor
from cpoison.conformal.predictor import SplitConformal
from cpoison.conformal.quantile import check_alpha
from cpoison.conformal.scores import build_score, check_labels, check_logits
from cpoison.errors import ConfigError, CpoisonError

__all__ = [
    "ConformalPredictor",
    "FixedProbaClassifier",
    "MapiePredictor",
    "PredictorFactory",
    "TorchCPPredictor",
    "TorchModelClassifier",
    "as_sets",
    "conformal_sets",
    "cpoison_factory",
]


@runtime_checkable
class ConformalPredictor(Protocol):
    """What cpoison needs from a conformal predictor: calibrate on logits, predict sets.

    ``predict`` returns a bool ``[N, K]`` mask (an int 0/1 tensor or a NumPy array is
    accepted and converted by :func:`as_sets`). ``calibrate`` may return anything (``self``
    by convention).
    """

    def calibrate(self, logits: Tensor, labels: Tensor) -> Any:
        """Calibrate on logits ``[n, K]`` and integer labels ``[n]``."""
        ...

    def predict(self, logits: Tensor) -> Any:
        """Prediction sets of logits ``[N, K]`` as a bool mask ``[N, K]``."""
        ...


#: ``factory(score, alpha, generator)``: a fresh, uncalibrated :class:`ConformalPredictor`
#: for a cpoison score name, a miscoverage level and a seeded ``torch.Generator``.
PredictorFactory = Callable[[str, float, torch.Generator], ConformalPredictor]


def cpoison_factory(score: str, alpha: float, generator: torch.Generator) -> SplitConformal:
    """cpoison's own predictor: :class:`SplitConformal` with the score of that name."""
    return SplitConformal(build_score(score), alpha, generator=generator)


def as_sets(sets: Any, n: int, k: int, what: str = "the predictor's sets") -> Tensor:
    """A predictor's output as a bool ``[n, k]`` tensor (from bool, 0/1 ints or NumPy).

    Raises :class:`CpoisonError` for another shape or values other than 0 and 1.
    """
    if isinstance(sets, np.ndarray) and sets.dtype.kind in "iu" or (
        isinstance(sets, Tensor) and not sets.is_floating_point() and sets.dtype != torch.bool
    ):
        t = torch.as_tensor(sets)
        if t.numel() and not bool(((t == 0) | (t == 1)).all()):
            raise CpoisonError(f"{what} must be a 0/1 or bool mask [N, K], got other values")
        sets = t.bool()
    sets = as_tensor(sets, what, "bool")
    if tuple(sets.shape) != (n, k):
        raise CpoisonError(
            f"{what} must be a bool mask of shape [{n}, {k}] (one row per input, one column "
            f"per class), got shape {tuple(sets.shape)}"
        )
    return sets


def conformal_sets(
    factory: PredictorFactory,
    score: str,
    alpha: float,
    generator: torch.Generator,
    cal_logits: ArrayLike,
    cal_labels: ArrayLike,
    test_logits: ArrayLike,
) -> Tensor:
    """Calibrate ``factory(score, alpha, generator)`` and return its test sets, bool [N, K].

    This is the one step where cpoison's evaluation of a model turns logits into sets; with
    :func:`cpoison_factory` it gives exactly ``SplitConformal(score, alpha)``'s sets for the
    same generator.
    """
    cal_logits = check_logits(cal_logits, "calibration logits")
    cal_labels = check_labels(cal_labels, cal_logits.shape[0], cal_logits.shape[1])
    test_logits = check_logits(test_logits, "test logits")
    predictor = factory(score, alpha, generator)
    if not isinstance(predictor, ConformalPredictor):
        raise CpoisonError(
            f"the predictor factory returned a {type(predictor).__name__}, which has no "
            "calibrate(logits, labels) and predict(logits) methods"
        )
    predictor.calibrate(cal_logits, cal_labels)
    sets = predictor.predict(test_logits)
    return as_sets(sets, test_logits.shape[0], test_logits.shape[1]).to(test_logits.device)


def _seed_from(generator: torch.Generator | None, seed: int | None) -> int | None:
    """An integer seed: ``seed``, or one drawn from ``generator``, or None."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        return seed
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise CpoisonError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


# -- TorchCP -------------------------------------------------------------------------------


class TorchCPPredictor:
    """A TorchCP score or split predictor as a :class:`ConformalPredictor`.

    Args:
        predictor: A TorchCP score object (``LAC()``, ``APS(randomized=False)``,
            ``RAPS(penalty=0.01, kreg=1)``, ...), wrapped in TorchCP's ``SplitPredictor``;
            or a TorchCP predictor with ``calculate_threshold(logits, labels, alpha)`` and
            ``predict_with_logits(logits)`` (``SplitPredictor``,
            ``ClassConditionalPredictor``, ...), used as it is.
        alpha: Miscoverage level in (0, 1).
        generator: Seeds TorchCP's randomness: TorchCP draws from torch's global RNG, so
            every ``calibrate`` and ``predict`` runs under a seed drawn from this generator
            inside ``torch.random.fork_rng`` (the global RNG is left as it was). ``None``:
            TorchCP uses the global RNG as it stands.
        seed: A fixed seed instead of ``generator``.

    Examples:
        >>> from torchcp.classification.score import APS  # doctest: +SKIP
        >>> cp = TorchCPPredictor(APS(randomized=False), alpha=0.1)  # doctest: +SKIP
        >>> sets = cp.calibrate(cal_logits, cal_labels).predict(test_logits)  # doctest: +SKIP
    """

    def __init__(
        self,
        predictor: Any,
        alpha: float = 0.1,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        if hasattr(predictor, "calculate_threshold") and hasattr(predictor, "predict_with_logits"):
            self.predictor = predictor
        elif callable(predictor):
            from torchcp.classification.predictor import SplitPredictor

            with warnings.catch_warnings():  # SplitPredictor warns that temperature is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                self.predictor = SplitPredictor(predictor, model=None, alpha=self.alpha)
        else:
            raise CpoisonError(
                "TorchCPPredictor takes a TorchCP score (THR(), APS(), RAPS(), ...) or a TorchCP "
                f"predictor (SplitPredictor(score)), got {type(predictor).__name__}"
            )
        self.generator = generator
        self.seed = seed

    def _run(self, fn: Callable[[], Any]) -> Any:
        seed = _seed_from(self.generator, self.seed)
        if seed is None:
            return fn()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn()

    @property
    def threshold(self) -> Tensor | None:
        """TorchCP's ``q_hat`` after :meth:`calibrate`."""
        q = getattr(self.predictor, "q_hat", None)
        return None if q is None else torch.as_tensor(q)

    def calibrate(self, logits: ArrayLike, labels: ArrayLike) -> TorchCPPredictor:
        """Compute TorchCP's threshold from calibration logits and labels."""
        logits = check_logits(logits, "calibration logits", warn_probabilities=True)
        labels = check_labels(labels, logits.shape[0], logits.shape[1])
        self._num_classes = logits.shape[1]
        self._run(lambda: self.predictor.calculate_threshold(logits, labels, self.alpha))
        return self

    def predict(self, logits: ArrayLike) -> Tensor:
        """TorchCP's prediction sets as a bool tensor ``[N, K]``."""
        if self.threshold is None:
            raise CpoisonError("TorchCPPredictor is not calibrated: call calibrate() first")
        logits = check_logits(logits, warn_probabilities=True)
        sets = self._run(lambda: self.predictor.predict_with_logits(logits))
        return as_sets(sets, logits.shape[0], logits.shape[1], "TorchCP's sets")

    def __repr__(self) -> str:
        return f"TorchCPPredictor({type(self.predictor).__name__}, alpha={self.alpha})"


# -- MAPIE ---------------------------------------------------------------------------------


class FixedProbaClassifier(ClassifierMixin, BaseEstimator):
    """A prefit scikit-learn classifier whose ``predict_proba`` returns its input.

    Its ``X`` *is* the class probabilities ``[N, K]``: it lets MAPIE calibrate and predict on
    probabilities computed elsewhere (a torch model's softmax). ``fit`` only records the
    classes ``0 .. n_classes - 1``.
    """

    def __init__(self, n_classes: int = 10) -> None:
        self.n_classes = n_classes

    def fit(self, X: Any = None, y: Any = None) -> FixedProbaClassifier:  # noqa: N803
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(X, dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.argmax(np.asarray(X), axis=1)


class TorchModelClassifier(ClassifierMixin, BaseEstimator):
    """A fitted torch model as a prefit scikit-learn classifier (for MAPIE and friends).

    ``predict_proba(X)`` is ``softmax(model(X) / temperature)`` in eval mode, batched, with
    ``X`` a NumPy array or tensor of the model's inputs (images ``[N, C, H, W]`` as floats,
    or feature vectors). Use it as ``SplitConformalClassifier(TorchModelClassifier(model,
    num_classes=10), prefit=True)``.

    Args:
        model: The fitted ``nn.Module`` mapping a batch of inputs to logits ``[B, K]``.
        num_classes: ``K``.
        batch_size: Inputs per forward pass.
        device: Where the forward passes run (default: where the model's parameters are).
        temperature: Softmax temperature.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        temperature: float = 1.0,
    ) -> None:
        self.model = model
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.device = device
        self.temperature = temperature

    def fit(self, X: Any = None, y: Any = None) -> TorchModelClassifier:  # noqa: N803
        if not isinstance(self.model, nn.Module):
            raise CpoisonError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        self.classes_ = np.arange(self.num_classes)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # the torch model is fitted; there is nothing to learn here

    def logits(self, X: Any) -> Tensor:  # noqa: N803
        """The model's logits ``[N, K]`` (CPU, float32 or the model's dtype)."""
        model = self.model
        param = next(iter(model.parameters()), None)
        device = self.device or (param.device if param is not None else "cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else None
        x = as_tensor(X, "X", "float")
        was_training = model.training
        model.eval()
        out = []
        try:
            with torch.no_grad():
                for i in range(0, x.shape[0], self.batch_size):
                    xb = x[i : i + self.batch_size].to(device)
                    out.append(model(xb if dtype is None else xb.to(dtype)).cpu())
        finally:
            model.train(was_training)
        logits = torch.cat(out) if out else torch.empty(0, self.num_classes)
        return check_logits(logits, "the model's logits")

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        z = self.logits(X).double() / self.temperature
        return torch.softmax(z, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.logits(X).argmax(dim=1).numpy()


class MapiePredictor:
    """MAPIE's ``SplitConformalClassifier`` on logits, as a :class:`ConformalPredictor`.

    MAPIE gets ``softmax(logits)`` (float64) through a :class:`FixedProbaClassifier`, so
    its sets are those of the probabilities the victim's model gives; see the module doc
    for how its APS / RAPS sets relate to cpoison's.

    Args:
        conformity_score: MAPIE's score name (``"lac"``, ``"aps"``, ``"raps"``,
            ``"top_k"``) or object.
        alpha: Miscoverage level in (0, 1); MAPIE's ``confidence_level`` is ``1 - alpha``.
        generator: Draws MAPIE's ``random_state`` at each ``calibrate`` (MAPIE's APS and
            RAPS randomize their calibration scores).
        random_state: A fixed ``random_state`` instead of ``generator``.
        conformity_score_params: Passed to ``predict_set`` (``{"include_last_label":
            False}`` for APS).
    """

    def __init__(
        self,
        conformity_score: Any = "lac",
        alpha: float = 0.1,
        generator: torch.Generator | None = None,
        random_state: int | None = None,
        conformity_score_params: dict[str, Any] | None = None,
    ) -> None:
        self.conformity_score = conformity_score
        self.alpha = check_alpha(alpha)
        self.generator = generator
        self.random_state = random_state
        self.conformity_score_params = conformity_score_params
        self.classifier: Any = None

    @staticmethod
    def probabilities(logits: Tensor) -> np.ndarray:
        """``softmax(logits)`` in float64 as NumPy, what MAPIE is given."""
        return torch.softmax(logits.detach().double(), dim=1).cpu().numpy()

    def calibrate(self, logits: ArrayLike, labels: ArrayLike) -> MapiePredictor:
        """``conformalize`` MAPIE's classifier on the calibration probabilities."""
        from mapie.classification import SplitConformalClassifier

        logits = check_logits(logits, "calibration logits", warn_probabilities=True)
        labels = check_labels(labels, logits.shape[0], logits.shape[1])
        k = logits.shape[1]
        self.classifier = SplitConformalClassifier(
            FixedProbaClassifier(k).fit(),
            confidence_level=1 - self.alpha,
            conformity_score=self.conformity_score,
            prefit=True,
            random_state=_seed_from(self.generator, self.random_state),
        )
        with warnings.catch_warnings():  # MAPIE warns about small calibration sets itself
            warnings.simplefilter("ignore", UserWarning)
            probs = self.probabilities(logits)
            self.classifier.conformalize(probs, labels.cpu().numpy())
            # MAPIE computes its quantile at the first predict_set: do it now, so that
            # ``threshold`` reads it after calibrate as for the other predictors
            self.classifier.predict_set(
                probs[:1], conformity_score_params=self.conformity_score_params
            )
        return self

    @property
    def threshold(self) -> float | None:
        """MAPIE's conformal quantile after :meth:`calibrate` (its private attribute)."""
        if self.classifier is None:
            return None
        try:
            q = self.classifier._mapie_classifier.conformity_score_function_.quantiles_
        except AttributeError:  # a MAPIE version that stores it elsewhere
            return None
        value = float(np.ravel(q)[0])
        return math.inf if math.isnan(value) else value

    def predict(self, logits: ArrayLike) -> Tensor:
        """MAPIE's prediction sets as a bool tensor ``[N, K]``."""
        if self.classifier is None:
            raise CpoisonError("MapiePredictor is not calibrated: call calibrate() first")
        logits = check_logits(logits, warn_probabilities=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _, sets = self.classifier.predict_set(
                self.probabilities(logits), conformity_score_params=self.conformity_score_params
            )
        return as_sets(np.asarray(sets)[:, :, 0], logits.shape[0], logits.shape[1],
                       "MAPIE's sets").to(logits.device)

    def __repr__(self) -> str:
        return f"MapiePredictor({self.conformity_score!r}, alpha={self.alpha})"
