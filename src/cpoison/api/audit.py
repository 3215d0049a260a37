"""``cpoison audit`` and :func:`audit`: how far can a few poisoned training images move the
prediction sets of *your* conformal pipeline, on *your* data and model (SPEC 12)?

An audit is an ordinary engine run (:func:`cpoison.engine.driver.run`): :func:`audit_config`
turns the practitioner's few choices into an :class:`ExperimentConfig`, the run splits the
data into the SPEC 2 roles, trains a surrogate and crafts poisons, trains benign and poisoned
victims and calibrates every score, so it shows progress, resumes when re-run with the same
arguments (every finished cell is reused), and writes ``results.sqlite``, ``summary.json``,
``report.md`` and its plots. Then :mod:`cpoison.experiments.audit_report` writes
``audit.md``, which opens with a plain-language summary.

Defaults (each one a flag of ``cpoison audit``):

- threat model: black-box (SPEC 2): the attacker holds a disjoint half of the train pool and
  trains a surrogate of *the same architecture* on it (``surrogate`` overrides it); the
  poisons are perturbed attacker images injected into the victim's training set;
- data: an ImageFolder folder or an ``.npz`` file (``cpoison.data.user``); without a test
  split of its own, 20 % of each class is held out as the test set (targets and evaluation
  set); preset ``audit`` (a laptop-CPU recipe: 40 epochs of SGD, no augmentation,
  :data:`cpoison.experiments.presets.GENERIC_PRESETS`);
- goal overconfidence (``goal``: any SPEC 4.1 goal; ``label`` for add-label / remove-label),
  alpha 0.1, scores HPS, APS and RAPS, budgets 1 % and 2 % (a grid), eps 16/255, 50 targets
  of one class (drawn with the seed unless ``target_class``) among those the surrogate
  classifies correctly;
- attacks: the paper's (``ours``: worst-case loss l3, first order, crafted through HPS,
  150 crafting iterations, 1 restart; poison bases: for overconfidence the images of the
  target class with the largest training-gradient norm at the surrogate, the default chosen
  by tuning, for the other goals each target's nearest images in the surrogate's features)
  and RandUn (random noise of the same size on the same bases) as the baseline
  that tells the attack's effect from noise; 2 victims (raise ``victims`` for firmer
  numbers: only the new victims are trained).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from cpoison.attacks.goals import GOAL_KINDS, goal_kind
from cpoison.errors import ConfigError
from cpoison.io import atomic_write, atomic_write_json

__all__ = ["AuditResult", "audit", "audit_config", "parse_budgets"]

DEFAULT_BUDGETS: tuple[float, ...] = (0.01, 0.02)
BASELINES = ("randun", "randga")


@dataclass
class AuditResult:
    """What :func:`audit` wrote: the run folder, ``audit.md``, its opening summary and the
    run's summary (mean ± s.e. of every figure per budget, attack and score)."""

    out: Path
    report: Path
    text: str
    summary: dict[str, Any]


def parse_budgets(values: float | str | Sequence[float | str]) -> list[float]:
    """Budgets from a number, a comma list (``"0.01,0.02"``, ``"1%"``) or a sequence of
    those; ConfigError naming ``--budget`` for anything else."""
    items = [values] if isinstance(values, (int, float, str)) else list(values)
    out: list[float] = []
    for item in items:
        for text in str(item).split(","):
            text = text.strip()
            if not text:
                continue
            try:
                value = (float(text[:-1]) / 100 if text.endswith("%")
                         else float(Fraction(text)))
            except (ValueError, ZeroDivisionError):
                raise ConfigError(f"--budget: {text!r} is not a number (e.g. 0.02, 2%)") \
                    from None
            if not 0 < value <= 1 or math.isnan(value):
                raise ConfigError(f"--budget: {text} is not in (0, 1] (the share of the "
                                  "victim's training set that is poisoned)")
            out.append(value)
    if not out:
        raise ConfigError("--budget: give at least one budget (e.g. 0.02)")
    return list(dict.fromkeys(out))


def _data_path(data: Any, out: Path, test_fraction: float | None, seed: int) -> str:
    """The path the config names: the user's path (absolute), or, for a torch ``Dataset``
    or an :class:`~cpoison.data.ImageDataset` given from Python, ``OUT/data.npz`` written
    from it (uint8 arrays, no pickle) so that the run can reload it in any process."""
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if not path.exists():
            raise ConfigError(f"--data {data}: no such file or folder")
        if path.is_file() and path.suffix.lower() not in (".npz", ".csv"):
            raise ConfigError(f"--data {data}: give an ImageFolder folder (one subfolder per "
                              "class), an .npz file with arrays x and y, or a .csv file")
        return str(path.resolve())
    import numpy as np

    from cpoison.data import ImageDataset
    from cpoison.data.user import DEFAULT_TEST_FRACTION, from_torch_dataset

    ds = data if isinstance(data, ImageDataset) else from_torch_dataset(
        data, test_fraction=test_fraction or DEFAULT_TEST_FRACTION, seed=seed)
    def layout(x: Any) -> Any:  # images as NHWC; feature vectors [N, D] as they are
        return x.numpy() if x.dim() == 2 else x.permute(0, 2, 3, 1).numpy()

    arrays = {"x": layout(ds.train_images),
              "y": ds.train_labels.numpy(),
              "x_test": layout(ds.test_images),
              "y_test": ds.test_labels.numpy(), "classes": np.array(ds.classes, dtype=str)}

    def write(p: Path) -> None:
        with p.open("wb") as handle:
            np.savez(handle, **arrays)

    return str(atomic_write(out / "data.npz", write).resolve())


def model_name(model: Any, what: str = "--model") -> str:
    """A model as a config names it: a string as it is (``package.module:function``, a file
    or a registry name), an ``nn.Module`` object or a factory given from Python by a name
    for this process (:func:`cpoison.models.user.register_object`)."""
    if isinstance(model, str):
        return model
    from cpoison.models.user import register_object

    return register_object(model, what)


def predictor_name(predictor: Any) -> str | None:
    """The victims' conformal predictor as a config names it: ``None`` (cpoison's split
    CP), a name or ``package.module:function`` string as it is, or a factory given from
    Python (a function or class called as ``factory(score, alpha, generator)``) by a name
    for this process (:func:`cpoison.models.user.register_object`)."""
    if predictor is None or isinstance(predictor, str):
        return predictor
    if not callable(predictor):
        raise ConfigError(
            f"predictor: expected a name (cpoison, torchcp, mapie), a "
            f"'package.module:function' string or a factory function(score, alpha, "
            f"generator) -> predictor, got a {type(predictor).__name__}")
    from cpoison.models.user import register_object

    return register_object(predictor, "predictor")


def _model_spec(model: Any, weights: str | Path | None,
                train_fn: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"arch": model_name(model)}
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--weights {weights}: no such file")
        spec["weights"] = str(path.resolve())
    if train_fn is not None:
        spec["train_fn"] = model_name(train_fn, "train_fn")
    return spec


def audit_config(
    data: str,
    model: Any = None,
    *,
    weights: str | Path | None = None,
    surrogate: Any = None,
    surrogate_weights: str | Path | None = None,
    train_fn: Any = None,
    surrogate_train_fn: Any = None,
    label_column: str | int | None = None,
    alpha: float = 0.1,
    budgets: float | str | Sequence[float | str] = DEFAULT_BUDGETS,
    eps: float | str = "16/255",
    goal: str = "overconfidence",
    label: int | None = None,
    scores: Sequence[str] | str = ("hps", "aps", "raps"),
    victims: int = 2,
    repeats: int = 1,
    target_class: int | None = None,
    targets: int = 50,
    baselines: Sequence[str] | str = ("randun",),
    selection: str | None = None,
    iterations: int = 150,
    preset: str = "audit",
    test_fraction: float | None = None,
    seed: int = 0,
    setting: str = "black-box",
    defenses: Sequence[Any] | None = None,
    predictor: Any = None,
    name: str | None = None,
) -> Any:
    """The :class:`~cpoison.experiments.config.ExperimentConfig` of an audit (module
    docstring for the defaults); every value is validated with one message naming it.

    ``data`` is a path (an ImageFolder folder, an ``.npz`` or a ``.csv``; ``label_column``
    names a CSV file's label column); ``model`` a ``package.module:function`` (or
    ``path/to/file.py:function``), a registry name, an ``nn.Module`` object or a factory
    function (default: ``mlp``). ``train_fn``: the user's training function
    (``package.module:function`` or a function), for the victims and, unless
    ``surrogate_train_fn`` says otherwise, the surrogate (``"cpoison"``: the preset's
    recipe). ``defenses``: values of the config's ``defense`` field (SPEC 7), run as a grid
    beside each other. ``predictor``: the conformal predictor that makes your pipeline's
    sets: ``None`` (cpoison's split CP), ``"cpoison"``, ``"torchcp"``, ``"mapie"``, a
    ``package.module:function`` / ``file.py:function`` string, or a factory given from
    Python, called as ``factory(score, alpha, generator)`` and returning an object with
    ``calibrate(logits, labels)`` and ``predict(logits)`` (a bool mask ``[N, K]``)."""
    from cpoison.experiments.config import validate_config

    if goal not in GOAL_KINDS:
        raise ConfigError(f"--goal {goal!r}: choose one of {', '.join(GOAL_KINDS)}")
    if isinstance(scores, str):
        scores = [s for s in (t.strip() for t in scores.split(",")) if s]
    if isinstance(baselines, str):
        baselines = [b for b in (t.strip() for t in baselines.split(",")) if b]
    baselines = [b.lower() for b in baselines if b.lower() != "none"]
    for b in baselines:
        if b not in BASELINES:
            raise ConfigError(f"--baselines {b!r}: choose from {', '.join(BASELINES)} or none")
    goal_raw: dict[str, Any] = {"kind": goal}
    if label is not None:
        goal_raw["label"] = label
    attacks: list[dict[str, Any]] = [{
        "name": "ours", "loss": "l3", "order": 1, "score": "hps",
        "crafting": {"iterations": iterations, "restarts": 1, "augment": False}}]
    attacks += [{"name": b} for b in baselines]
    grid: dict[str, list[Any]] = {"budget": parse_budgets(budgets)}
    if defenses:
        grid["defense"] = list(defenses)
    victim_model = "mlp" if model is None else model
    spec = _model_spec(victim_model, weights, train_fn)
    surrogate_fn = (train_fn if surrogate_train_fn is None
                    else None if surrogate_train_fn == "cpoison" else surrogate_train_fn)
    surrogate_spec = (_model_spec(surrogate, surrogate_weights, surrogate_fn) if surrogate
                      else _model_spec(victim_model, weights, surrogate_fn))
    raw: dict[str, Any] = {
        "name": name or f"audit of {spec['arch']} on {Path(data).name}",
        "dataset": data, "preset": preset, "seed": seed, "setting": setting,
        "victim": spec,
        "surrogate": surrogate_spec,
        "alpha": alpha, "scores": list(scores), "goal": goal_raw,
        "targets": {"target_class": target_class, "n_targets": targets},
        "budget": grid["budget"][0], "eps": eps,
        "poison_selection": selection or goal_kind(goal).default_selection,
        "n_victims": victims, "n_repeats": repeats, "attacks": attacks, "grid": grid,
    }
    predictor_spec = predictor_name(predictor)
    if predictor_spec is not None:
        raw["predictor"] = predictor_spec
    data_settings: dict[str, Any] = {}
    if test_fraction is not None:
        data_settings["test_fraction"] = test_fraction
    if label_column is not None:
        data_settings["label"] = str(label_column)
    if data_settings:
        raw["data"] = data_settings
    return validate_config(raw, "audit")


def audit(
    data: Any,
    model: Any,
    out: str | Path,
    *,
    store: Any = None,
    device: str | None = None,
    progress: bool = True,
    use_cache: bool = True,
    any_device: bool = False,
    threads: int | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    **settings: Any,
) -> AuditResult:
    """Audit ``model`` trained on ``data`` against data poisoning of its conformal
    prediction sets (SPEC 12), into the folder ``out``; re-running resumes.

    Args:
        data: an ImageFolder folder, an ``.npz`` file (images, or feature vectors
            ``x [N, D]``) or a ``.csv`` file of feature vectors (a path), or, from Python,
            a torch ``Dataset`` of (image, label) or an
            :class:`~cpoison.data.ImageDataset` (written to ``OUT/data.npz``).
        model: an ``nn.Module`` object (deep-copied for every model trained: all start
            from its weights), a factory function called as ``(in_channels, num_classes,
            image_size)`` for images (``image_size`` an int when square, else
            ``(height, width)``) or ``(num_features, num_classes)`` for feature vectors,
            ``package.module:function`` / ``path/to/file.py:function`` naming such a
            factory, a registry name, or None (``mlp``). Objects and functions given from
            Python run with the local executor only.
        out: the run folder (``audit.md``, ``report.md``, plots, ``results.sqlite``).
        store: artifact store (default ``$CPOISON_CACHE`` or ``~/.cache/cpoison``), or a
            list of stores (the first written, the others only read);
            ``use_cache=False`` keeps the artifacts in ``OUT/artifacts``.
        device, progress, any_device, threads, executor, executor_options: as for
            :func:`cpoison.api.runner.run_experiment`.
        **settings: :func:`audit_config`'s keywords (``predictor``: the conformal
            predictor that makes your pipeline's sets, a name, a spec or a factory
            function; ``train_fn``: your training function
            ``train_fn(model, train_set, generator) -> model``, where ``train_set`` is a
            torch ``Dataset`` of ``(x, y)`` with the poisons applied; ``surrogate_train_fn``;
            ``label_column``; ``weights``, ``alpha``, ``budgets``,
            ``eps``, ``goal``, ``label``, ``scores``, ``victims``, ``target_class``,
            ``targets``, ``baselines``, ``selection``, ``iterations``, ``preset``,
            ``test_fraction``, ``seed``, ``surrogate``, ``defenses``, ...).

    Returns:
        An :class:`AuditResult`; ``result.text`` is the plain summary that opens
        ``audit.md``.

    Raises:
        ConfigError, DataError: any bad input, before anything is trained.
    """
    from cpoison.api.runner import run_options
    from cpoison.engine.driver import check_output_folder, run
    from cpoison.engine.grid import expand_grid
    from cpoison.engine.runtime import workspace_for
    from cpoison.experiments.audit_report import write_audit_report

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if not isinstance(data, (str, Path)):
        check_output_folder(out)
    path = _data_path(data, out, settings.get("test_fraction"), settings.get("seed", 0))
    config = audit_config(path, model, **settings)
    from cpoison.models.user import is_python_object

    local_only = [f"{field}.{part}" for field in ("victim", "surrogate")
                  for part in ("arch", "train_fn")
                  if is_python_object(getattr(getattr(config, field), part, None))]
    if is_python_object(config.predictor):
        local_only.append("predictor")
    if local_only and executor != "local":
        raise ConfigError(f"executor {executor!r}: the model, training function or predictor "
                          f"given as a Python object ({', '.join(local_only)}) lives in this "
                          "process only, so the run needs executor='local'; for Ray, put it "
                          "in a module every worker can import and pass "
                          "'package.module:function'")
    opts = run_options(out, store, use_cache, device=device, progress=progress,
                       any_device=any_device, threads=threads)
    summary = run(config, out, opts, executor, executor_options)
    ws = workspace_for(opts, expand_grid(config)[0].config)
    ds = ws.dataset
    facts = {
        "data": path, "dataset": ds.name, "classes": list(ds.classes),
        "n_train_pool": int(ds.train_labels.numel()), "n_test": int(ds.test_labels.numel()),
        "image_shape": list(ds.input_shape), "kind": ds.kind,
        "victim_train": int(ws.split.victim_train.numel()),
        "attacker_train": int(ws.split.attacker_train.numel()),
        "victim_cal": int(ws.split.victim_cal.numel()),
        "model": config.victim.arch if config.victim else ws.preset.model,
        "weights": config.victim.weights if config.victim else None,
        "surrogate": config.surrogate.arch if config.surrogate else ws.preset.model,
        "predictor": config.predictor or "cpoison",
    }
    atomic_write_json(out / "audit.json", facts)
    report, text = write_audit_report(out, summary, config.model_dump(mode="json"), facts)
    return AuditResult(out, report, text, summary)
