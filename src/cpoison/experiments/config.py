"""Experiment configs (YAML), validated on load: every bad value gets one message naming
the field (SPEC 10). ``--set key=value`` overrides and ``grid:`` keys use dotted keys
(``goal.kind``, ``attacks.0.loss``). Every name a config holds (dataset, preset, models and
their arguments, scores inside attacks, attack names, goal kinds, grid keys) is checked here,
before any model trains; ranges that need the dataset are checked by the engine's
pre-flight (:mod:`cpoison.engine.preflight`)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from cpoison.attacks import AttackConfig, Goal, attack_label
from cpoison.attacks.goals import goal_kind
from cpoison.conformal.scores import score_names
from cpoison.data.registry import canonical_name
from cpoison.defenses.registry import DefenseConfig, parse_defense
from cpoison.errors import ConfigError, CpoisonError
from cpoison.models.registry import model_kwargs


class TargetConfig(BaseModel):
    """Targets (SPEC 4): ``n_targets`` test images of ``target_class`` (drawn at random per
    repeat when None), among those the surrogate classifies correctly if ``correct_only``.

    ``set_size`` (paper Sec. 5.3, Fig. 4 "varying benign set sizes") admits only images whose
    prediction set under the surrogate, with ``set_size_score`` calibrated on the attacker's
    calibration fold at the experiment's alpha, has exactly that many labels;
    ``min_set_size`` admits those whose set has at least that many ("targets with room":
    an overconfidence attack has labels to remove, and the attacker can see this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_class: int | None = Field(None, ge=0)
    n_targets: int = Field(50, ge=1)
    correct_only: bool = True
    set_size: int | None = Field(None, ge=1)
    min_set_size: int | None = Field(None, ge=1)
    set_size_score: str = "hps"
    exclude_classes: tuple[int, ...] = Field(
        (), description="classes a randomly drawn target class must not be (e.g. the "
        "classes an attack was tuned on)")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """``min_set_size`` and ``exclude_classes`` unset are left out, so configs without
        them keep their keys."""
        data = handler(self)
        if isinstance(data, dict):
            if data.get("min_set_size") is None:
                data.pop("min_set_size", None)
            if not data.get("exclude_classes"):
                data.pop("exclude_classes", None)
        return data  # type: ignore[no-any-return]

    @field_validator("set_size_score")
    @classmethod
    def _score(cls, value: str) -> str:
        value = value.lower()
        if value not in score_names():
            raise ValueError(f"unknown score {value!r}; choose from {sorted(score_names())}")
        return value


def is_user_arch(arch: str) -> bool:
    """True when ``arch`` names a user's model function (``package.module:function`` or
    ``path/to/file.py:function``, SPEC 12) rather than a registry model."""
    return ":" in arch


class ModelSpec(BaseModel):
    """An architecture with its arguments (SPEC 11). ``kwargs: null`` (or a bare name in a
    config, ``victim: mlp``) means the preset's arguments when ``arch`` is the preset's
    architecture, else the architecture's own defaults.

    ``arch`` may also be a user's model function, ``package.module:function`` (or
    ``path/to/file.py:function``), called as ``function(in_channels, num_classes,
    image_size)`` (SPEC 12, :func:`cpoison.models.user.load_user_model`); such a spec takes
    no ``kwargs``. Its form is checked here; the engine's pre-flight imports it and runs one
    forward pass on the dataset's shape before any model trains.

    ``weights`` (optional, ``.safetensors`` only): the weights every model of this spec
    starts training from (fine-tuning a pretrained model), instead of a seeded random
    initialisation. Their content digest enters the model's key. A spec without weights
    dumps exactly as before (no ``weights`` key), so existing keys are unchanged.

    ``train_fn`` (optional, ``package.module:function``): the user's own training loop,
    called as ``train_fn(model, train_set, generator)`` instead of the preset's recipe for
    every model of this spec (:meth:`cpoison.experiments.workspace.Workspace.train`); the
    digest of its source enters the models' keys. Unset, it is left out of the dump."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str
    kwargs: dict[str, Any] | None = None
    weights: str | None = None
    train_fn: str | None = None

    @field_validator("arch")
    @classmethod
    def _known(cls, value: str) -> str:
        if is_user_arch(value):
            module, _, func = value.partition(":")
            if value.count(":") != 1 or not module.strip() or not func.strip():
                raise ValueError(f"model spec {value!r} must be 'package.module:function' "
                                 "(or 'path/to/file.py:function')")
            return value
        try:
            model_kwargs(value)
        except CpoisonError as err:
            raise ValueError(f"{err}; or name your own model function as "
                             "'package.module:function'") from None
        return value

    @field_validator("train_fn")
    @classmethod
    def _train_fn(cls, value: str | None) -> str | None:
        if value is not None and (value.count(":") != 1 or not all(
                part.strip() for part in value.split(":"))):
            raise ValueError(f"train_fn {value!r} must be 'package.module:function' (or "
                             "'path/to/file.py:function')")
        return value

    @field_validator("weights")
    @classmethod
    def _safetensors(cls, value: str | None) -> str | None:
        if value is not None and not str(value).lower().endswith(".safetensors"):
            raise ValueError(f"weights {value!r}: cpoison reads .safetensors files only "
                             "(never pickle checkpoints)")
        return value

    @model_validator(mode="after")
    def _known_kwargs(self) -> ModelSpec:
        if is_user_arch(self.arch):
            if self.kwargs:
                raise ValueError(f"model function {self.arch!r} takes no kwargs (it is called "
                                 "as function(in_channels, num_classes, image_size))")
            return self
        allowed = model_kwargs(self.arch)
        wrong = sorted(set(self.kwargs or {}) - set(allowed))
        if wrong:
            raise ValueError(f"model {self.arch!r} takes no argument {wrong[0]!r}; its "
                             f"arguments are {allowed}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict):
            for optional in ("weights", "train_fn"):  # unchanged dumps (and keys) without
                if data.get(optional) is None:
                    data.pop(optional, None)
        return data  # type: ignore[no-any-return]

    def resolve(self, preset_arch: str, preset_kwargs: dict[str, Any]) -> ModelSpec:
        """This spec with ``kwargs`` made explicit."""
        if self.kwargs is not None:
            return self
        same = self.arch.replace("-", "").lower() == preset_arch.replace("-", "").lower()
        return ModelSpec(arch=self.arch, kwargs=dict(preset_kwargs) if same else {},
                         weights=self.weights, train_fn=self.train_fn)


def _model_spec(value: Any) -> Any:
    return {"arch": value} if isinstance(value, str) else value


def _attack_score(value: Any) -> str | None:
    return getattr(value, "score", None)


def is_user_dataset(value: str) -> bool:
    """True when ``dataset`` is a path to a user's data (SPEC 12: an ImageFolder folder, an
    ``.npz`` or a ``.csv`` file) rather than a registry name: it ends in ``.npz`` or
    ``.csv``, holds a path
    separator or starts with ``.`` or ``~``; else a registry name wins, and any other name
    of an existing file or folder is a path."""
    text = str(value).strip()
    if text.lower().endswith((".npz", ".csv")) or "/" in text or os.sep in text or text.startswith(
            (".", "~")):
        return True
    try:
        canonical_name(text)
        return False
    except CpoisonError:
        return bool(text) and Path(text).exists()


class UserDataConfig(BaseModel):
    """How a user's data (``dataset: PATH``, SPEC 12) is read: ``test_fraction`` of each
    class is held out as the test set (targets and evaluation set, SPEC 2) when the data has
    no test split of its own (an ImageFolder with ``train/`` and ``test/``, an ``.npz`` with
    ``x_test`` / ``y_test``). The split is seeded with the config's ``seed``. ``label``
    names a CSV file's label column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_fraction: float = Field(0.2, gt=0, lt=1)
    label: str | None = Field(
        None, description="a CSV file's label column: its header name or index (default: "
        "the last column)")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and data.get("label") is None:
            data.pop("label", None)  # unchanged dumps (and keys) without it
        return data  # type: ignore[no-any-return]


class HeadConfig(BaseModel):
    """A head on frozen features (transfer setting, SPEC 2): ``logistic`` (default), the
    L2-penalised multinomial logistic regression fitted to convergence by Newton's method
    (:func:`cpoison.transfer.fit_head`; strictly convex, so full CP and the exact-Hessian
    second order apply), or ``mlp`` (``Linear -> Tanh -> Linear`` of ``hidden`` units,
    L-BFGS from a seeded start, :func:`cpoison.transfer.fit_mlp_head`). ``lam``: the L2
    penalty of the sum-form objective; ``tol``: the per-point gradient-norm tolerance;
    ``max_iter``: Newton iterations (L-BFGS iterations per round for ``mlp``); ``tol``
    unset: 1e-9 for ``logistic``, 1e-6 for ``mlp``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["logistic", "mlp"] = "logistic"
    lam: float = Field(1.0, gt=0)
    hidden: int = Field(64, ge=1)
    tol: float | None = Field(None, gt=0)
    max_iter: int = Field(100, ge=1)

    def tolerance(self) -> float:
        """``tol``, or the kind's default."""
        return self.tol if self.tol is not None else (1e-9 if self.kind == "logistic" else 1e-6)


class FullCPConfig(BaseModel):
    """Full CP of the victims (SPEC 3.5): ``method`` exact (warm-started refits) or
    influence (one Newton step); ``subset_size`` training points of each victim (seeded;
    ``null`` for all of them; more than the victim has is an error); ``eval_size``
    evaluation-set images (seeded) whose coverage is reported (full CP costs
    ``n x K x |test|``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["exact", "influence"] = "influence"
    subset_size: int | None = Field(2000, ge=1)
    eval_size: int = Field(500, ge=1)


class TransferConfig(BaseModel):
    """The transfer setting (SPEC 2, paper Sec. 4): a feature extractor of architecture
    ``extractor`` (default: the preset's model) is pretrained once on ``public_fraction`` of
    the train pool (a role of its own, disjoint from attacker and victim data), frozen, and
    known to both sides. The attacker fits ``surrogate_head`` on the features of D^tr and
    crafts input-space poisons through the extractor; each victim fits ``head`` on the
    features of ``victim_subsample`` of the victim training set (a seeded subset per victim,
    so the J victims differ; 1.0: all of it; the budget stays #poisons / |victim train|)
    plus the poisons' features.

    ``conformal``: ``split`` (the victims calibrate on their calibration set, SPEC 3.2) or
    ``full`` (full CP of the victims' heads, SPEC 3.5, with ``full_cp``'s settings; the attack
    then uses the attacker's training points' scores in the role of the calibration scores,
    Eq. 7). A grid may vary any of these by dotted key (``transfer.head.lam``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_fraction: float = Field(0.2, gt=0, lt=1)
    extractor: ModelSpec | None = None
    head: HeadConfig = HeadConfig()
    surrogate_head: HeadConfig = HeadConfig()
    victim_subsample: float = Field(0.9, gt=0, le=1)
    conformal: Literal["split", "full"] = "split"
    full_cp: FullCPConfig = FullCPConfig()

    @field_validator("extractor", mode="before")
    @classmethod
    def _spec(cls, value: Any) -> Any:
        return _model_spec(value)

    @model_validator(mode="after")
    def _full_needs_convex(self) -> TransferConfig:
        if self.conformal == "full" and self.head.kind != "logistic":
            raise ValueError("full CP (transfer.conformal: full) needs the convex head "
                             "(transfer.head.kind: logistic); the MLP head is not convex")
        return self




class ExperimentConfig(BaseModel):
    """One experiment: data, threat model, goal, attacks, and the evaluation protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "experiment"
    dataset: str = Field("fashion-mnist", description="a registry name, or the path of a "
                         "user's ImageFolder folder, .npz or .csv file (SPEC 12)")
    data: UserDataConfig | None = Field(
        None, description="how a user's data is split (only with dataset: PATH)")
    preset: str = Field("cpu", description="cpu, cpu-full, paper, ...; default 'audit' for "
                        "a user's data (SPEC 12)")
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] | None = Field(
        None, description="the training precision of every model, replacing the preset's "
        "(auto: bf16 where the CPU has it natively, else fp32); pin fp32 for a run that "
        "another kind of CPU will continue from its exported cells")
    setting: Literal["black-box", "white-box"] = "black-box"
    transfer: TransferConfig | None = Field(
        None, description="the transfer setting (SPEC 2): frozen pretrained extractor, "
        "victims fit a head; unset: from-scratch training")
    surrogate: ModelSpec | None = Field(
        None, description="attacker architecture and arguments (default: the preset's)")
    victim: ModelSpec | None = Field(
        None, description="victim architecture and arguments (default: the preset's)")
    alpha: float = Field(0.1, gt=0, lt=1)
    scores: tuple[str, ...] = ("hps", "aps", "raps")
    predictor: str | None = Field(
        None, description="the victims' conformal predictor: a name (cpoison, torchcp, "
        "mapie) or package.module:function / file.py:function naming a factory(score, "
        "alpha, generator) -> predictor with calibrate(logits, labels) and "
        "predict(logits); unset: cpoison's split CP")
    goal: Goal = Goal()
    targets: TargetConfig = TargetConfig()
    budget: float = Field(0.02, gt=0, le=1, description="#poisons / |victim train|")
    eps: float = Field(16 / 255, gt=0, le=1, description="L-inf bound (accepts '16/255')")
    poison_class: Literal["target", "random", "labels-to-add", "other"] = Field(
        "target", description="target: bases of the target class (SPEC 2 default); random: "
        "any class; labels-to-add: the classes in the targets' Y_a (underconfidence, SPEC "
        "4.1; add-label: the label to add); other: any class but the target class. Unset: "
        "by goal (each goal kind's poison_class: unequal-coverage other, add-label labels-to-add, "
        "the rest target)")
    poison_selection: Literal["random", "nearest", "nearest-pixels", "gradient-norm"] = Field(
        "random", description="random: uniform among eligible images; nearest: for each "
        "target in turn, the eligible image closest to it in the surrogate's features; "
        "nearest-pixels: the same by cosine similarity of the raw pixels; gradient-norm: "
        "the eligible images with the largest training-gradient norm at the surrogate")
    n_victims: int = Field(8, ge=1)
    n_repeats: int = Field(1, ge=1)
    # -- defense (SPEC 7, 11): how both victims of a pair train and calibrate -----------
    defense: DefenseConfig = Field(
        default_factory=lambda: parse_defense("none"), description="the victims' poisoning "
        "defense: a name (maxup) or a mapping ({name: epic, fraction: 0.3}); grid-able")
    # -- end defense ---------------------------------------------------------------------
    attacks: tuple[AttackConfig, ...] = Field(..., min_length=1)
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted config keys -> lists of values; the run "
        "is their product (SPEC 11)")

    @model_validator(mode="before")
    @classmethod
    def _user_data_preset(cls, data: Any) -> Any:
        """A user's data without ``preset`` gets the ``audit`` preset (SPEC 12)."""
        if (isinstance(data, dict) and "preset" not in data
                and isinstance(data.get("dataset"), str) and is_user_dataset(data["dataset"])):
            return {**data, "preset": "audit"}
        return data

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if is_user_dataset(value):
            return value.strip()
        try:
            return canonical_name(value)
        except CpoisonError as err:
            raise ValueError(f"{err}; or give the path of an ImageFolder folder or an .npz "
                             "file (e.g. ./my_images)") from None

    @model_validator(mode="after")
    def _goal_defaults(self) -> ExperimentConfig:
        """``data`` only with a user's data; ``poison_class`` by goal when unset (SPEC 4.1:
        each goal kind's ``poison_class``, :mod:`cpoison.attacks.goals`). The resolved value
        is set without marking the field as given, so a grid over ``goal.kind`` resolves it
        per point."""
        if self.data is not None and not is_user_dataset(self.dataset):
            raise ValueError(f"data (test_fraction, label) applies to a dataset given as a "
                             f"path, not to {self.dataset!r}")
        if "poison_class" not in self.model_fields_set:
            object.__setattr__(self, "poison_class", goal_kind(self.goal).poison_class)
        return self

    @field_validator("surrogate", "victim", mode="before")
    @classmethod
    def _spec(cls, value: Any) -> Any:
        return _model_spec(value)

    @field_validator("defense", mode="before")
    @classmethod
    def _defense(cls, value: Any) -> Any:
        try:
            return parse_defense(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("predictor")
    @classmethod
    def _predictor(cls, value: str | None) -> str | None:
        """A known name (lower case) or a well-formed spec; ``cpoison`` is the default and
        reads as unset, so it leaves every key as it was."""
        if value is None:
            return None
        from cpoison.conformal.factories import check_predictor  # imports scikit-learn

        try:
            value = check_predictor(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return None if value == "cpoison" else value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if key == "grid" or key.startswith("grid."):
                raise ValueError("a grid cannot vary 'grid' itself")
            if not values:
                raise ValueError(f"grid key {key!r} has an empty list of values")
        return value

    @model_validator(mode="after")
    def _transfer(self) -> ExperimentConfig:
        """In the transfer setting the models are the extractor and the heads: ``surrogate``
        / ``victim`` / weights do not apply (one message each; which defenses run there is
        the setting's check, before anything trains)."""
        if self.transfer is None:
            return self
        for name in ("surrogate", "victim"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: the transfer setting has no {name} architecture; "
                                 f"set transfer.extractor (and transfer."
                                 f"{'surrogate_head' if name == 'surrogate' else 'head'})")
        if self.transfer.conformal == "full" and self.predictor is not None:
            raise ValueError(f"predictor {self.predictor!r}: full CP (transfer.conformal: "
                             "full) refits the victim's head for every candidate label and "
                             "has no calibrate / predict split for another predictor; use "
                             "transfer.conformal: split, or leave predictor unset")
        if self.transfer.conformal == "full" and "rscp" in self.scores:
            raise ValueError("scores: RSCP has no full-CP form; drop 'rscp' or use "
                             "transfer.conformal: split")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict):
            for optional in ("transfer", "predictor"):  # unset: dumps (and hashes) as before
                if data.get(optional, 0) is None:
                    data.pop(optional)
        return data  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _attack_scores(self) -> ExperimentConfig:
        known = set(score_names()) | {"rscp"}
        for i, attack in enumerate(self.attacks):
            score = _attack_score(attack)
            if score is not None and score.lower() not in known:
                raise ValueError(f"attacks.{i}.score: unknown score {score!r}; choose from "
                                 f"{sorted(known)}")
        return self

    @field_validator("eps", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(Fraction(value.strip()))
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"not a number or fraction: {value!r}") from None
        return value

    @field_validator("scores")
    @classmethod
    def _scores(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = set(score_names()) | {"rscp"}
        out = tuple(v.lower() for v in value)
        for v in out:
            if v not in known:
                raise ValueError(f"unknown score {v!r}; choose from {sorted(known)}")
        if not out:
            raise ValueError("at least one score is needed")
        return out

    def labels(self) -> list[str]:
        """Unique result names of the attacks, in config order."""
        names = [attack_label(a) for a in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"attack labels must be unique, got {names}; set 'label'")
        return names


def _parse_value(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"--set {key}: {text!r} is not a valid YAML value ({first})") from None


def set_dotted(raw: dict[str, Any], key: str, value: Any, what: str = "--set") -> None:
    """Set ``raw[key]`` for a dotted ``key`` (list items by index), creating mappings on the
    way; ConfigError naming the key when it runs into a scalar or a missing list item."""
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{what} {key}: {where!r} is not an item of a list of "
                                  f"{len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            above = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"{what} {key}: {above!r} holds a value ({node!r}), not a "
                              "mapping of settings")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML; list items by index)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        set_dotted(raw, key, _parse_value(text, key))
    return raw


def format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: invalid value for '{where}': {first['msg']}{more}"


def read_config(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file (a user's path, else a shipped config)."""
    from cpoison.resources import resolve_config

    path = resolve_config(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a YAML config; user errors raise ConfigError."""
    raw = apply_overrides(read_config(path), overrides or [])
    return validate_config(raw, str(path))


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    config.labels()
    return config
