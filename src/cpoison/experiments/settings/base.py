"""The training-setting seam: what differs between training victims from scratch and fitting
a head on a frozen pretrained extractor (and any other setting, e.g. fine-tuning the last
block) is owned by one :class:`Setting` object; the protocol (:mod:`cpoison.experiments.
protocol`), the engine's keys and its checks ask it and never look at the setting
themselves. :func:`cpoison.experiments.settings.setting_for` is the one place that does.

A setting answers, for one experiment point:

* its **checks** (before anything trains) and the **workspace** it needs (a public role);
* the **attacker**: the repeat's surrogate, its key, and the changes it makes to the
  attack's context and to the config fields that shape crafting;
* the **victims**: the benign victim of a pair and its poisoned twin (both under the
  config's defense), their keys, and what evaluating a cell adds to its key;
* their **evaluation**: conformal sets for every score on the three groups of a poison set
  (:class:`~cpoison.experiments.evaluation.ModelEval`), and the facts a row carries.

Adding a setting: one module with a :class:`Setting` subclass, plus one line in
:data:`cpoison.experiments.settings.registry.SETTINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch.nn as nn

from cpoison.attacks import AttackContext, PoisonSet
from cpoison.conformal.adapters import PredictorFactory
from cpoison.conformal.factories import predictor_factory, predictor_identity
from cpoison.defenses import Defense, DefenseOutcome
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.evaluation import EvalViews, ModelEval
from cpoison.experiments.workspace import Workspace


def defense_key(config: ExperimentConfig) -> Any:
    """The defense's part of the victims' and the cells' keys: its settings, or ``None`` for
    no defense (keys as before defenses existed)."""
    return None if config.defense.name == "none" else config.defense


def predictor_key(config: ExperimentConfig) -> Any:
    """The victims' conformal predictor's part of the cells' keys
    (:func:`cpoison.conformal.factories.predictor_identity`: a built-in name, or a user's
    spec with the digest of its source), or ``None`` for cpoison's split CP (keys as before
    the field existed)."""
    return None if config.predictor is None else predictor_identity(config.predictor)


def evaluation_part(config: ExperimentConfig, evaluation: dict[str, Any]) -> dict[str, Any]:
    """A cell key's ``evaluation`` part with the predictor's identity added when one is set
    (unset: the part as it was, so stored cells stay valid)."""
    key = predictor_key(config)
    return evaluation if key is None else {**evaluation, "predictor": key}


def victim_factory(config: ExperimentConfig) -> PredictorFactory | None:
    """The factory of the config's ``predictor`` (imported now), or ``None`` for cpoison's
    split CP."""
    return None if config.predictor is None else predictor_factory(config.predictor)


@dataclass
class Victim:
    """One trained victim of a pair: the defense's outcome (``outcome.models`` are what is
    evaluated), the facts its row reports, and what a setting's evaluation needs besides
    the models (full CP: the training features and labels the head was fitted on)."""

    outcome: DefenseOutcome
    facts: dict[str, Any] = field(default_factory=dict)
    train: Any = None


class Setting:
    """Base of every training setting; subclasses implement the abstract methods and may
    override the defaults (no extra checks, no public role, the attack context and the
    crafting fields unchanged, no extra row facts, the poison set's own views)."""

    #: the registry name
    name: ClassVar[str] = ""

    def __init__(self, options: Any = None) -> None:
        #: the setting's own config section (``None`` for training from scratch)
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- the world ------------------------------------------------------------------------

    def public_fraction(self) -> float | None:
        """Share of the train pool held out as a public role (None: no public role)."""
        return None

    def check(self, ws: Workspace, config: ExperimentConfig, where: str = "") -> None:
        """ConfigError (one message naming the field) for what this setting cannot run,
        before any model trains; ``where`` names the grid cell."""

    # -- the attacker ---------------------------------------------------------------------

    def surrogate_key(self, ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
        raise NotImplementedError

    def train_surrogate(self, ws: Workspace, config: ExperimentConfig,
                        repeat: int) -> nn.Module:
        """Train (or load) the repeat's surrogate."""
        raise NotImplementedError

    def adjust_context(self, ws: Workspace, config: ExperimentConfig, ctx: AttackContext,
                       surrogate: nn.Module) -> AttackContext:
        """The attack context of this setting (default: unchanged)."""
        return ctx

    def crafting_fields(self, config: ExperimentConfig,
                        fields: dict[str, Any]) -> dict[str, Any]:
        """The config fields that shape crafting, adjusted for this setting (default:
        unchanged)."""
        return fields

    # -- the victims ----------------------------------------------------------------------

    def benign_key(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> str:
        raise NotImplementedError

    def benign_stored(self, ws: Workspace, config: ExperimentConfig, key: str) -> bool:
        """Whether the benign victim of ``key`` is in the store: its model, or under a
        defense its victim record ``victims/<key>.json``."""
        if defense_key(config) is None:
            return ws.store.has_model(key)
        return ws.store.exists("victims", key, ".json")

    def fit_benign(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> Victim:
        """Train (or load) benign victim ``victim`` of the repeat under the defense."""
        raise NotImplementedError

    def fit_poisoned(self, ws: Workspace, config: ExperimentConfig, repeat: int, victim: int,
                     poisons: PoisonSet, benign: Victim, desc: str) -> Victim:
        """Train the poisoned twin of ``benign`` (same seed, same defense)."""
        raise NotImplementedError

    def cell_parts(self, ws: Workspace, config: ExperimentConfig, eval_seed: int
                   ) -> dict[str, Any]:
        """What a cell's key holds besides the poisons and the benign victim: ``victim``
        (the victims' spec), ``evaluation`` (scores, alpha, seed, ...) and ``defense``."""
        raise NotImplementedError

    # -- evaluation -----------------------------------------------------------------------

    def evaluation_views(self, config: ExperimentConfig, views: EvalViews,
                         eval_seed: int) -> EvalViews:
        """The groups the sets are measured on (default: the poison set's own)."""
        return views

    def benign_evaluation_needs_poisons(self) -> bool:
        """Whether a benign victim's evaluation depends on how many poisons its twin gets
        (then it is shared only between attacks with as many; default: no)."""
        return False

    def evaluate(self, ws: Workspace, config: ExperimentConfig, victim: Victim,
                 views: EvalViews, eval_seed: int, defense: Defense,
                 n_poisons: int) -> ModelEval:
        """Sets of every score on ``views`` for one victim (the benign and the poisoned one
        of a pair share ``eval_seed``, so randomized scores are paired)."""
        raise NotImplementedError

    def row_facts(self, config: ExperimentConfig, benign: Victim, poisoned: Victim,
                  poisons: PoisonSet) -> dict[str, Any]:
        """Facts of this setting every row of the cell carries (default: none)."""
        return {}
