"""Victims under a poisoning defense (SPEC 7), as the evaluation protocol (SPEC 6) trains
and reports them.

Both victims of a pair (benign and poisoned) train under the config's ``defense`` with the
same seed (SPEC 6 pairing): :func:`fit_victim` calls ``defense.fit`` with a ``train_fn``
built on :meth:`Workspace.train`, so every model a defense trains goes through the artifact
store (SPEC 11):

* a model trained with the defense's training hooks (MaxUp, adversarial poisoning, EPIC)
  is keyed by its content *and the defense's settings*; the hooks' record (EPIC's dropped
  ids, the adversarial perturbation's statistics) is saved with it and restored when it is
  loaded;
* a model trained without hooks (a filter's feature model and its final model on the
  filtered set, RPS's partition models) is keyed by its content alone: a filter's feature
  model *is* the undefended victim of the same data and seed, trained once for every filter
  and for ``defense: none``.

:func:`fit_victim` also writes the victim's record to ``victims/<victim key>.json`` (under
a defense): the marker by which the engine knows a benign victim is done, and the
provenance of the row facts. :func:`defense_facts` gives the row fields: the defense's
label, the shares of poisons and of clean points removed (SPEC 7), the defense's record,
and for RPS the certificate of the targets' sets.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from cpoison.defenses import DefenseOutcome, TrainFn, TrainingHooks, build_defense
from cpoison.defenses.registry import defense_label
from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.evaluation import ModelEval
from cpoison.experiments.workspace import Workspace
from cpoison.training import TrainSet

# record keys reported as row fields of their own (the rest goes to ``defense_record``)
_SHARES = ("poisons_removed_share", "clean_removed_share")


def victim_train_fn(ws: Workspace, config: ExperimentConfig, desc: str) -> TrainFn:
    """``train_fn(data, seed, hooks)`` for ``defense.fit``: the config's victim
    architecture, the preset's recipe, through the store (module doc for the keys)."""

    def train_fn(data: TrainSet, seed: int, hooks: TrainingHooks | None) -> nn.Module:
        return ws.train(data, seed, desc=desc, spec=config.victim, hooks=hooks,
                        defense=config.defense)

    return train_fn


def fit_victim(ws: Workspace, config: ExperimentConfig, data: TrainSet, seed: int,
               desc: str) -> DefenseOutcome:
    """Train (or load) one victim on ``data`` under the config's defense. With no defense
    this is exactly ``ws.train(data, seed, desc, config.victim)``."""
    defense = build_defense(config.defense)
    outcome = defense.fit(data, victim_train_fn(ws, config, desc), seed)
    if config.defense.name != "none":
        key = ws.model_key(data, seed, config.victim, defense=config.defense)
        ws.store.put_json("victims", key, {
            "key": key, "desc": desc, "defense": config.defense.model_dump(mode="json"),
            "removed": [int(i) for i in outcome.removed.tolist()], "record": outcome.record,
        })
    return outcome


def _record(outcome: DefenseOutcome) -> dict[str, Any]:
    return {k: v for k, v in outcome.record.items() if k != "defense"}


def certificate_facts(evaluation: ModelEval, score: str, suffix: str,
                      n_poisons: int) -> dict[str, Any]:
    """RPS certificate of the targets' sets (SPEC 7: how many poisoned points the sets
    provably tolerate): medians over the targets of the training radius (poisoned training
    points, each changing at most one of the k_t models) and of the calibration radius, and
    the share of targets whose set is certified against this attack's number of poisons."""
    cert = (evaluation.facts.get(score) or {}).get("certificate")
    if cert is None:
        return {}
    radius = cert.train_radius.long()
    facts = {
        f"certified_train_radius_{suffix}": float(radius.double().median()),
        f"certified_calib_radius_{suffix}": float(cert.calib_radius.double().median()),
    }
    max_radius = cert.table.shape[1] - 1  # k_t for smoothed HPS; 0: no training certificate
    if max_radius > 0:  # n poisons change at most min(n, k_t) of the k_t models
        need = min(n_poisons, max_radius)
        facts[f"certified_against_poisons_{suffix}"] = float((radius >= need).double().mean())
    return facts


def defense_facts(
    config: ExperimentConfig, benign_fit: DefenseOutcome, victim_fit: DefenseOutcome,
    benign: ModelEval, victim: ModelEval, score: str, n_poisons: int,
) -> dict[str, Any]:
    """The defense's fields of one result row (SPEC 7): ``defense`` (its label),
    ``poisons_removed_share`` / ``clean_removed_share`` of the poisoned victim,
    ``clean_removed_share_benign``; under a defense also its record for both victims
    (``defense_record``, ``defense_record_benign``), RPS's certificate
    (:func:`certificate_facts`), and ``unsupported: true`` with the reason when the score
    could not be evaluated under the defense (then the row has no figures)."""
    row: dict[str, Any] = {"defense": defense_label(config.defense)}
    row.update({k: victim_fit.record.get(k) for k in _SHARES})
    row["clean_removed_share_benign"] = benign_fit.record.get("clean_removed_share")
    if config.defense.name == "none":
        return row
    row["defense_record"] = _record(victim_fit)
    row["defense_record_benign"] = _record(benign_fit)
    reason = (victim.facts.get(score) or {}).get("unsupported")
    if reason is not None:
        row.update(unsupported=True, unsupported_reason=reason)
    row.update(certificate_facts(benign, score, "benign", n_poisons))
    row.update(certificate_facts(victim, score, "victim", n_poisons))
    return row
