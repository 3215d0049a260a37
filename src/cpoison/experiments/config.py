"""Experiment configs (YAML), validated on load: every bad value gets one message naming
the field (SPEC 10). ``--set key=value`` overrides use dotted keys (``goal.kind=...``)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cpoison.attacks import AttackConfig, Goal, attack_label
from cpoison.conformal import SCORE_NAMES
from cpoison.errors import ConfigError


class TargetConfig(BaseModel):
    """Targets (SPEC 4): ``n_targets`` test images of ``target_class`` (drawn at random per
    repeat when None), among those the surrogate classifies correctly if ``correct_only``.

    ``set_size`` (paper Sec. 5.3, Fig. 4 "varying benign set sizes") admits only images whose
    prediction set under the surrogate, with ``set_size_score`` calibrated on the attacker's
    calibration fold at the experiment's alpha, has exactly that many labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_class: int | None = Field(None, ge=0)
    n_targets: int = Field(50, ge=1)
    correct_only: bool = True
    set_size: int | None = Field(None, ge=1)
    set_size_score: str = "hps"

    @field_validator("set_size_score")
    @classmethod
    def _score(cls, value: str) -> str:
        value = value.lower()
        if value not in SCORE_NAMES:
            raise ValueError(f"unknown score {value!r}; choose from {sorted(SCORE_NAMES)}")
        return value


class ExperimentConfig(BaseModel):
    """One experiment: data, threat model, goal, attacks, and the evaluation protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "experiment"
    dataset: str = "fashion-mnist"
    preset: str = "cpu"
    seed: int = 0
    setting: Literal["black-box", "white-box"] = "black-box"
    surrogate_model: str | None = Field(None, description="attacker architecture")
    victim_model: str | None = Field(None, description="victim architecture")
    alpha: float = Field(0.1, gt=0, lt=1)
    scores: tuple[str, ...] = ("hps", "aps", "raps")
    goal: Goal = Goal()
    targets: TargetConfig = TargetConfig()
    budget: float = Field(0.02, gt=0, le=1, description="#poisons / |victim train|")
    eps: float = Field(16 / 255, gt=0, le=1, description="L-inf bound (accepts '16/255')")
    poison_class: Literal["target", "random", "labels-to-add"] = Field(
        "target", description="target: bases of the target class (SPEC 2 default); random: "
        "any class; labels-to-add: the classes in the targets' Y_a (underconfidence, SPEC 4.1)")
    poison_selection: Literal["random", "nearest", "nearest-pixels"] = Field(
        "random", description="random: uniform among eligible images; nearest: for each "
        "target in turn, the eligible image closest to it in the surrogate's features; "
        "nearest-pixels: the same by cosine similarity of the raw pixels")
    n_victims: int = Field(8, ge=1)
    n_repeats: int = Field(1, ge=1)
    attacks: tuple[AttackConfig, ...] = Field(..., min_length=1)

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
        known = set(SCORE_NAMES) | {"rscp"}
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


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML; list items by index)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = raw
        for part in parts[:-1]:
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: no list item {part!r}")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"--set {key}: no list item {last!r}")
            node[int(last)] = _parse_value(text)
        else:
            node[last] = _parse_value(text)
    return raw


def format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: invalid value for '{where}': {first['msg']}{more}"


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a YAML config; user errors raise ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw, str(path))


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    config.labels()
    return config
