"""The transfer setting (paper Sec. 4, full CP): a frozen pretrained extractor, heads fitted
on its features.

A config with ``transfer:`` (:class:`~cpoison.experiments.config.TransferConfig`) runs the
same protocol, cells, keys, grids, executors, rows and report as training from scratch; what
changes is what a "model" is:

* the **extractor**: the preset's (or ``transfer.extractor``'s) architecture trained once
  with the preset's recipe on the split's *public* role (``transfer.public_fraction`` of the
  train pool, disjoint from attacker and victim data), through :meth:`Workspace.train`, so
  it is a model of the artifact store under a content key (the public ids enter it); frozen;
* the **clean features**: the extractor's penultimate features of every attacker / victim
  image of the train pool and of the whole test set, computed once per extractor and kept in
  the store as safetensors (``features/<key>.safetensors``, :func:`keys.features_key`);
* the **surrogate**: :class:`~cpoison.transfer.TransferModel` = frozen extractor + the
  attacker's head (``transfer.surrogate_head``) fitted on the features of D^tr; the attacks
  run on it unchanged (only the head is trainable, so G(delta) is the head gradient and the
  poisons' pixels go through the extractor); the second order uses the head's exact Hessian
  (:attr:`AttackContext.exact_hessian`, Cholesky, residual recorded);
* a **victim**: ``transfer.head`` fitted (deterministically) on the features of its training
  data, a seeded ``victim_subsample`` of the victim training set drawn with the victim's
  seed, plus the poisons' features (poisons are input-space deltas: their features go
  through the extractor); benign heads are stored under :func:`keys.head_key`;
* **evaluation**: split CP on the victim's calibration features (HPS / APS / RAPS, by the
  config's ``predictor`` when one is set; RSCP smooths the extractor + head as one
  module), or full CP (which refuses a ``predictor``) of the victim's head on its
  training data plus the poisons, for the targets and a seeded ``full_cp.eval_size``
  sample of the evaluation set; the rows are the from-scratch rows plus the transfer facts
  (head gradient norms, the second-order residual, full-CP timings).

**Defenses** that make sense on a convex head over frozen features run here too (split CP):
the filters, EPIC, MaxUp, adversarial poisoning, RPS and the head refit
(``Defense.frozen_features``). A defense's ``train_fn`` fits the head on the features of
the training set it is given (a filter's kept points, an RPS partition); a defense with
training hooks (MaxUp, adversarial poisoning, EPIC) then trains that head further with the
preset's recipe and its hooks, through the frozen extractor (its augmentations and
perturbations are in input space). Victims under a defense are evaluated as
extractor + head on images, as the defense's own predictor sees them.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from cpoison.attacks import AttackContext, PoisonSet
from cpoison.defenses import Defense, DefenseOutcome, TrainingHooks, build_defense
from cpoison.errors import ConfigError, DataError
from cpoison.experiments.config import ExperimentConfig, HeadConfig, ModelSpec
from cpoison.experiments.evaluation import (
    EvalViews,
    ModelEval,
    evaluate_victim,
    rscp_sets,
    score_sets,
)
from cpoison.experiments.repeats import repeat_seed, victim_seeds
from cpoison.experiments.settings.base import (
    Setting,
    Victim,
    defense_key,
    evaluation_part,
    victim_factory,
)
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator
from cpoison.store import keys
from cpoison.training import TrainSet, train_model
from cpoison.transfer.attack import TransferAttackData, poison_features
from cpoison.transfer.full_cp import SubsetTooLargeError, full_cp_sets, select_subset
from cpoison.transfer.head import (
    F64,
    HeadConvergenceError,
    add_bias_column,
    fit_head,
    fit_mlp_head,
    head_from_linear,
    head_hessian,
    linear_order,
)
from cpoison.transfer.model import NoFeatureLayerError, TransferModel, check_extractor
from cpoison.transfer.model import extract_features as _extract

log = logging.getLogger(__name__)

_EXTRACTORS: dict[tuple[str, str], nn.Module] = {}
_FEATURES: dict[tuple[str, str], CleanFeatures] = {}


def clear_caches() -> None:
    """Forget the per-process extractors and clean features (they stay in the store)."""
    _EXTRACTORS.clear()
    _FEATURES.clear()


def extract_features(model: nn.Module, images: Tensor, device: torch.device,
                     batch_size: int = 256) -> Tensor:
    """:func:`cpoison.transfer.extract_features` (module-level so tests can count calls)."""
    return _extract(model, images, device=device, batch_size=batch_size)


def _public(ws: Workspace) -> Tensor:
    if ws.split.public is None:
        raise ConfigError("the transfer setting needs a split with a public role "
                          "(transfer.public_fraction)")
    return ws.split.public


def extractor_seed(config: ExperimentConfig) -> int:
    """The extractor's training seed: one per run seed (it is shared by every repeat)."""
    return derive_seed(config.seed, "extractor")


# -- clean features ---------------------------------------------------------------------------


@dataclass
class CleanFeatures:
    """Clean features of one extractor: ``train`` ``[n, D]`` for the sorted pool ids
    ``train_ids`` (every attacker and victim role), ``test`` ``[N_test, D]`` (float32)."""

    key: str
    train_ids: Tensor
    train: Tensor
    test: Tensor

    def rows(self, ids: Tensor) -> Tensor:
        """Features of pool ids ``ids`` (each must be covered)."""
        pos = torch.searchsorted(self.train_ids, ids)
        pos = pos.clamp_max(self.train_ids.numel() - 1)
        if not bool((self.train_ids[pos] == ids).all()):
            raise DataError("asked for the features of pool ids outside the attacker and "
                            "victim roles")
        return self.train[pos]


def feature_ids(ws: Workspace) -> Tensor:
    s = ws.split
    return torch.cat([s.attacker_train, s.attacker_cal, s.victim_train, s.victim_cal]).unique()


# -- heads ------------------------------------------------------------------------------------


def empty_head(spec: HeadConfig, feature_dim: int, num_classes: int) -> nn.Module:
    """An unfitted float64 head of ``spec`` (the skeleton a stored head is loaded into)."""
    if spec.kind == "logistic":
        return nn.Linear(feature_dim, num_classes, dtype=F64)
    return nn.Sequential(nn.Linear(feature_dim, spec.hidden), nn.Tanh(),
                         nn.Linear(spec.hidden, num_classes)).to(F64)


def head_seed(spec: HeadConfig, seed: int) -> int | None:
    """The seed that enters a head's key: ``None`` for the deterministic convex head."""
    return None if spec.kind == "logistic" else seed


def fit(spec: HeadConfig, features: Tensor, labels: Tensor, num_classes: int, seed: int,
        what: str, init: nn.Module | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Fit head ``spec`` on ``features`` (float64); returns the head and its facts
    (per-point gradient norm, iterations). Non-convergence raises one message naming
    ``what`` and the gradient norm. ``init``: warm start of a logistic head (same optimum,
    fewer Newton steps)."""
    try:
        if spec.kind == "logistic":
            fitted = fit_head(features, labels, num_classes, spec.lam, spec.tolerance(),
                              spec.max_iter, init=None if init is None
                              else head_from_linear(init))  # type: ignore[arg-type]
            return fitted.linear(), {"head_grad_norm": fitted.grad_norm,
                                     "head_iterations": float(fitted.iterations)}
        net = fit_mlp_head(features, labels, num_classes, spec.hidden, spec.lam,
                           seed=seed, tol=spec.tolerance(), max_iter=spec.max_iter)
        return net, {}
    except HeadConvergenceError as err:
        raise HeadConvergenceError(f"{what} (transfer head {spec.kind}, lam={spec.lam}): "
                                   f"{err}") from None


def _head_facts(meta: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in meta.items() if k.startswith("head_")}


def load_or_fit_head(ws: Workspace, key: str, spec: HeadConfig, features: Tensor,
                     labels: Tensor, seed: int, desc: str
                     ) -> tuple[nn.Module, dict[str, float]]:
    """A head stored under ``key``, else fitted now and stored
    (:meth:`Workspace.load_or_fit`, as every model); returns it with its facts."""
    k = ws.dataset.num_classes

    def fit_now(_: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        return fit(spec, features.to(ws.device), labels.to(ws.device), k, seed, desc)

    head, meta = ws.load_or_fit(
        [key], lambda: empty_head(spec, int(features.shape[1]), k), fit_now, desc,
        {"desc": desc, "seed": seed, "device": ws.device.type})
    return head, _head_facts(meta)


def poisoned_data(ws: Workspace, clean_ids: Tensor, clean_x: Tensor, p_x: Tensor,
                  poisons: PoisonSet) -> tuple[Tensor, Tensor]:
    """A victim's poisoned training features and labels: injected poisons are appended
    (black-box); replacement poisons (white-box) take the place of their clean bases among
    the victim's ids (bases the victim's subset lacks are dropped)."""
    labels = ws.dataset.train_labels
    if poisons.inject:
        return (torch.cat([clean_x, p_x]),
                torch.cat([labels[clean_ids], labels[poisons.ids]]))
    x = clean_x.clone()
    pos = {int(i): j for j, i in enumerate(clean_ids.tolist())}
    for row, pid in enumerate(poisons.ids.tolist()):
        if pid in pos:
            x[pos[pid]] = p_x[row]
    return x, labels[clean_ids]


def _groups(views: EvalViews) -> dict[str, Tensor]:
    return {"targets": views.targets, "others": views.others, "evaluation": views.evaluation}


class Transfer(Setting):
    """A frozen extractor pretrained on a public role; heads fitted on its features."""

    name = "transfer"

    @property
    def tc(self) -> Any:
        """The config's ``transfer`` section."""
        return self.options

    def public_fraction(self) -> float | None:
        return float(self.tc.public_fraction)

    # -- checks ---------------------------------------------------------------------------

    def check(self, ws: Workspace, config: ExperimentConfig, where: str = "") -> None:
        """The public role, the full-CP subset against the victims' data, the extractor's
        feature layer, and the defense: one that does not run on frozen features, or any
        defense under full CP, is refused with one message."""
        tc = self.tc
        defense = build_defense(config.defense)
        if config.defense.name != "none" and (not defense.frozen_features
                                              or tc.conformal == "full"):
            why = ("full CP refits the head for every candidate label"
                   if tc.conformal == "full" else
                   "victims fit a head on frozen features, and this defense does not")
            raise ConfigError(
                f"defense {config.defense.name!r} does not run in the transfer setting with "
                f"conformal: {tc.conformal} ({why}); defenses that do (split CP): "
                f"{', '.join(_frozen_feature_defenses())}{where}")
        if ws.split.public is None or ws.split.public.numel() < 2:
            raise ConfigError(f"transfer.public_fraction {tc.public_fraction} leaves no public "
                              f"data to pretrain the extractor{where}")
        n = max(1, round(tc.victim_subsample * ws.split.victim_train.numel()))
        size = tc.full_cp.subset_size
        if tc.conformal == "full" and size is not None and size > n:
            raise SubsetTooLargeError(
                f"transfer.full_cp.subset_size {size} is larger than a victim's training "
                f"data ({n} = victim_subsample {tc.victim_subsample} of "
                f"{ws.split.victim_train.numel()}); use at most {n}, or null{where}")
        self.check_extractor_spec(ws, config)

    # -- the extractor --------------------------------------------------------------------

    def extractor_spec(self, ws: Workspace, config: ExperimentConfig) -> ModelSpec:
        """The extractor's architecture and arguments (default: the preset's model)."""
        return ws.spec(self.tc.extractor)

    def extractor_key(self, ws: Workspace, config: ExperimentConfig) -> str:
        """The extractor's model key: dataset digest, public ids, recipe, architecture,
        seed, device type, trainer version."""
        return ws.model_key(ws.trainset(_public(ws)), extractor_seed(config),
                            self.extractor_spec(ws, config))

    def check_extractor_spec(self, ws: Workspace, config: ExperimentConfig) -> None:
        """Build the extractor once (no training) and check it has a feature layer; one
        :class:`NoFeatureLayerError` naming ``transfer.extractor`` otherwise."""
        spec = self.extractor_spec(ws, config)
        try:
            model = ws.build(0, spec)
        except ConfigError as err:
            raise NoFeatureLayerError(f"transfer.extractor {spec.arch!r} cannot serve as a "
                                      f"feature extractor: {err}") from None
        try:
            check_extractor(model)
        except NoFeatureLayerError as err:
            raise NoFeatureLayerError(f"transfer.extractor {spec.arch!r}: {err}") from None

    def extractor(self, ws: Workspace, config: ExperimentConfig) -> nn.Module:
        """The frozen extractor: trained once on the public role (or loaded)."""
        key = self.extractor_key(ws, config)
        memo = (str(ws.store.root), key)
        if memo not in _EXTRACTORS:
            model = ws.train(ws.trainset(_public(ws)), extractor_seed(config),
                             desc="extractor", spec=self.extractor_spec(ws, config))
            check_extractor(model)
            _EXTRACTORS[memo] = model.requires_grad_(False).eval()
        return _EXTRACTORS[memo]

    def features_key(self, ws: Workspace, config: ExperimentConfig) -> str:
        return keys.features_key(extractor=self.extractor_key(ws, config),
                                 train_ids=feature_ids(ws), dataset=ws.digest,
                                 device_type=ws.device.type)

    def clean_features(self, ws: Workspace, config: ExperimentConfig) -> CleanFeatures:
        """The clean features of this config's extractor: from the process, else the store,
        else computed (once) and stored."""
        key = self.features_key(ws, config)
        memo = (str(ws.store.root), key)
        if memo in _FEATURES:
            return _FEATURES[memo]
        data = ws.store.get("features", key, ".safetensors")
        ids = feature_ids(ws)
        if data is not None:
            t = st_load(data)
            out = CleanFeatures(key, t["train_ids"], t["train"], t["test"])
        else:
            model = self.extractor(ws, config)
            start = time.perf_counter()
            ds = ws.dataset
            out = CleanFeatures(
                key, ids,
                extract_features(model, ds.train_images[ids], ws.device,
                                 ws.preset.eval_batch_size).contiguous(),
                extract_features(model, ds.test_images, ws.device,
                                 ws.preset.eval_batch_size).contiguous())
            log.info("clean features %s: %d + %d images in %.1fs", key, ids.numel(),
                     ds.test_labels.numel(), time.perf_counter() - start)
            ws.store.put("features", key, ".safetensors", st_save(
                {"train_ids": out.train_ids, "train": out.train, "test": out.test},
                metadata={"extractor": self.extractor_key(ws, config)}))
        _FEATURES[memo] = out
        return out

    def poison_features(self, ws: Workspace, ext: nn.Module, poisons: PoisonSet) -> Tensor:
        """Features of the poisoned images (:func:`cpoison.transfer.attack.poison_features`)."""
        return poison_features(ext, ws.dataset.train_images, poisons, ws.device,
                               ws.preset.eval_batch_size)

    # -- the attacker ---------------------------------------------------------------------

    @staticmethod
    def surrogate_seed(config: ExperimentConfig, repeat: int) -> int:
        return derive_seed(repeat_seed(config, repeat), "surrogate")

    def surrogate_key(self, ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
        """Key of the attacker's head (its extractor's key, D^tr, the head's settings)."""
        spec = self.tc.surrogate_head
        return keys.head_key(extractor=self.extractor_key(ws, config),
                             indices=ws.split.attacker_train, poison_ids=None,
                             poison_delta=None, head=spec,
                             seed=head_seed(spec, self.surrogate_seed(config, repeat)),
                             device_type=ws.device.type)

    def train_surrogate(self, ws: Workspace, config: ExperimentConfig,
                        repeat: int) -> TransferModel:
        """Extractor + the attacker's head fitted on the features of D^tr (stored)."""
        ext = self.extractor(ws, config)
        feats = self.clean_features(ws, config)
        ids = ws.split.attacker_train
        head, _ = load_or_fit_head(ws, self.surrogate_key(ws, config, repeat),
                                   self.tc.surrogate_head, feats.rows(ids),
                                   ws.dataset.train_labels[ids],
                                   self.surrogate_seed(config, repeat),
                                   f"surrogate head r{repeat}")
        return TransferModel(ext, head).to(ws.device).eval()

    def adjust_context(self, ws: Workspace, config: ExperimentConfig, ctx: AttackContext,
                       surrogate: nn.Module) -> AttackContext:
        """The attacker head's exact Hessian for the second order (logistic head), and
        under full CP the attacker's training points (a seeded subset of
        ``full_cp.subset_size``) in the role of the calibration fold."""
        tc = self.tc
        changes: dict[str, Any] = {"surrogates": None}  # heads: no ensembles / retraining yet
        if tc.surrogate_head.kind == "logistic":
            feats = self.clean_features(ws, config).rows(ws.split.attacker_train)
            head = surrogate.head  # type: ignore[union-attr]
            lam = tc.surrogate_head.lam

            def exact_hessian() -> Tensor:
                """Per-point Hessian of the head's penalised training loss, linear order."""
                theta = head_from_linear(head).to(ws.device)
                xa = add_bias_column(feats.to(ws.device))
                perm = linear_order(theta.shape[0], theta.shape[1] - 1, ws.device)
                return head_hessian(xa, theta, lam)[perm][:, perm] / xa.shape[0]

            changes["exact_hessian"] = exact_hessian
            changes["transfer"] = TransferAttackData(
                surrogate.extractor, feats,  # type: ignore[arg-type]
                ws.dataset.train_labels[ws.split.attacker_train],
                ws.split.attacker_train, lam, ws.dataset.num_classes)
        if tc.conformal == "full":
            ids = ws.split.attacker_train
            size = tc.full_cp.subset_size
            pick = select_subset(ids.numel(), min(size, ids.numel()) if size else None,
                                 derive_seed(ctx.seed, "attacker-full-cp"))
            ids = ids[pick]
            changes["cal_x"] = ws.dataset.train_images[ids].to(ws.device).float().div(255)
            changes["cal_y"] = ws.dataset.train_labels[ids].to(ws.device)
        return dataclasses.replace(ctx, **changes)

    def crafting_fields(self, config: ExperimentConfig,
                        fields: dict[str, Any]) -> dict[str, Any]:
        """The victims' head, their subsample and their full-CP method and evaluation sample
        do not shape crafting (the extractor and the attacker's head are in the surrogate's
        key); under full CP the subset size does (the attacker's loss uses that many of its
        training points' scores)."""
        tf = fields["transfer"]
        for name in ("head", "victim_subsample"):
            tf.pop(name, None)
        full_cp = tf.pop("full_cp", None)
        if self.tc.conformal == "full" and full_cp is not None:
            tf["attacker_subset_size"] = full_cp["subset_size"]
        return fields

    # -- victims --------------------------------------------------------------------------

    def victim_ids(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> Tensor:
        """Pool ids of victim ``victim``'s clean training data: a seeded
        ``victim_subsample`` of the victim training set (the victim's training seed), and
        under full CP a seeded ``full_cp.subset_size`` of that (the full-CP training set)."""
        tc = self.tc
        seed, _ = victim_seeds(config, repeat, victim)
        pool = ws.split.victim_train
        n = max(1, round(tc.victim_subsample * pool.numel()))
        ids = pool[select_subset(pool.numel(), n, derive_seed(seed, "subsample"))]
        if tc.conformal == "full" and tc.full_cp.subset_size is not None:
            ids = ids[select_subset(ids.numel(), tc.full_cp.subset_size,
                                    derive_seed(seed, "full-cp"))]
        return ids

    def _head_key(self, ws: Workspace, config: ExperimentConfig, data: TrainSet,
                  seed: int) -> str:
        spec = self.tc.head
        return keys.head_key(extractor=self.extractor_key(ws, config), indices=data.indices,
                             poison_ids=data.poison_ids, poison_delta=data.poison_delta,
                             head=spec, seed=head_seed(spec, seed), device_type=ws.device.type)

    def benign_key(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> str:
        """The benign head's key; under a defense, that key with the defense's settings
        (the key of its victim record ``victims/<key>.json``)."""
        seed, _ = victim_seeds(config, repeat, victim)
        data = ws.trainset(self.victim_ids(ws, config, repeat, victim))
        key = self._head_key(ws, config, data, seed)
        defense = defense_key(config)
        return key if defense is None else keys.digest(kind="defended-victim", head=key,
                                                       defense=defense)

    def fit_benign(self, ws: Workspace, config: ExperimentConfig, repeat: int,
                   victim: int) -> Victim:
        seed, _ = victim_seeds(config, repeat, victim)
        ids = self.victim_ids(ws, config, repeat, victim)
        feats = self.clean_features(ws, config)
        if defense_key(config) is not None:
            return self._defended(ws, config, ws.trainset(ids), seed,
                                  self.benign_key(ws, config, repeat, victim),
                                  f"benign r{repeat} v{victim}")
        head, facts = load_or_fit_head(ws, self.benign_key(ws, config, repeat, victim),
                                       self.tc.head, feats.rows(ids),
                                       ws.dataset.train_labels[ids], seed,
                                       f"benign head r{repeat} v{victim}")
        outcome = DefenseOutcome([head], torch.zeros(0, dtype=torch.long), {})
        return Victim(outcome, facts, (feats.rows(ids), ws.dataset.train_labels[ids]))

    def fit_poisoned(self, ws: Workspace, config: ExperimentConfig, repeat: int, victim: int,
                     poisons: PoisonSet, benign: Victim, desc: str) -> Victim:
        """The poisoned head: the same training ids and seed plus the poisons' features;
        with no defense it warm-starts from the benign head (which changes only the path to
        the same unique optimum) and is not stored (cheap to refit)."""
        seed, _ = victim_seeds(config, repeat, victim)
        ids = self.victim_ids(ws, config, repeat, victim)
        if defense_key(config) is not None:
            keep = poisons.ids if poisons.inject else poisons.ids[torch.isin(poisons.ids, ids)]
            mask = torch.isin(poisons.ids, keep)
            data = ws.trainset(ids).with_poisons(poisons.ids[mask], poisons.delta[mask],
                                                 inject=poisons.inject)
            return self._defended(ws, config, data, seed, None, desc)
        tc = self.tc
        ext = self.extractor(ws, config)
        clean_x = self.clean_features(ws, config).rows(ids)
        p_x = self.poison_features(ws, ext, poisons)
        x, y = poisoned_data(ws, ids, clean_x, p_x, poisons)
        start = time.perf_counter()
        head = benign.outcome.models[0]
        poisoned, facts = fit(tc.head, x.to(ws.device), y.to(ws.device),
                              ws.dataset.num_classes, seed, f"{desc} head",
                              init=head if tc.head.kind == "logistic" else None)
        seconds = time.perf_counter() - start
        ws.train_seconds += seconds
        ws.trained.append(f"{desc} head")
        outcome = DefenseOutcome([poisoned], torch.zeros(0, dtype=torch.long), {})
        return Victim(outcome, {**facts, "poisoned_fit_seconds": seconds,
                                "victim_train_size": int(y.numel())}, (x, y))

    # -- victims under a defense ----------------------------------------------------------

    def _features_of(self, ws: Workspace, config: ExperimentConfig,
                     data: TrainSet) -> tuple[Tensor, Tensor]:
        """Features and labels of a training set view: clean features, and for its poisons
        the features of the poisoned images (through the extractor)."""
        x = self.clean_features(ws, config).rows(data.indices).clone()
        if data.poison_ids is not None:
            is_poison = torch.isin(data.indices, data.poison_ids)
            if bool(is_poison.any()):
                positions = torch.nonzero(is_poison).flatten()
                images, _ = data.load(positions)
                x[positions] = extract_features(self.extractor(ws, config), images, ws.device,
                                                ws.preset.eval_batch_size)
        return x, data.labels[data.indices]

    def _defended(self, ws: Workspace, config: ExperimentConfig, data: TrainSet, seed: int,
                  record_key: str | None, desc: str) -> Victim:
        """A victim trained under the config's defense: ``defense.fit`` with a ``train_fn``
        that fits the head on the features of what it is given (stored by content) and, for
        a defense with training hooks, trains it further with them (stored with the
        defense's settings and the hooks' record). ``record_key``: where the benign
        victim's record goes (the engine's marker that it is done)."""
        tc = self.tc
        ext = self.extractor(ws, config)
        recipe = ws.preset.recipe

        def train_fn(part: TrainSet, part_seed: int, hooks: TrainingHooks | None) -> nn.Module:
            x, y = self._features_of(ws, config, part)
            key = self._head_key(ws, config, part, part_seed)
            head, _ = load_or_fit_head(ws, key, tc.head, x, y, part_seed, f"{desc} head")
            if hooks is None:
                return TransferModel(ext, head).to(ws.device).eval()

            def train_with_hooks(start: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
                model = TransferModel(ext, start)
                train_model(model, part, recipe, part_seed, ws.device, ws.progress,
                            f"{desc} head ({config.defense.name})", hooks=hooks)
                return model.head, {}

            defended_key = keys.digest(kind="defended-head", head=key, recipe=recipe,
                                       defense=config.defense)
            trained, _ = ws.load_or_fit(
                [defended_key], lambda: copy.deepcopy(head), train_with_hooks,
                f"{desc} head", {"desc": desc, "seed": part_seed, "device": ws.device.type,
                                 "defense": config.defense.model_dump(mode="json")}, hooks)
            return TransferModel(ext, trained).to(ws.device).eval()

        outcome = build_defense(config.defense).fit(data, train_fn, seed)
        if record_key is not None:
            ws.store.put_json("victims", record_key, {
                "key": record_key, "desc": desc,
                "defense": config.defense.model_dump(mode="json"),
                "removed": [int(i) for i in outcome.removed.tolist()],
                "record": outcome.record})
        return Victim(outcome, {"victim_train_size": len(data)})

    # -- evaluation -----------------------------------------------------------------------

    def cell_parts(self, ws: Workspace, config: ExperimentConfig, eval_seed: int
                   ) -> dict[str, Any]:
        tc = self.tc
        return {
            "victim": {"transfer_head": tc.head, "victim_subsample": tc.victim_subsample},
            "evaluation": evaluation_part(config, {
                "scores": list(config.scores), "alpha": config.alpha, "seed": eval_seed,
                "conformal": tc.conformal,
                "full_cp": tc.full_cp if tc.conformal == "full" else None,
                "rscp_samples": ws.preset.rscp_samples if "rscp" in config.scores
                else None}),
            "defense": defense_key(config),
        }

    def evaluation_views(self, config: ExperimentConfig, views: EvalViews,
                         eval_seed: int) -> EvalViews:
        """Under full CP: the targets, and a seeded ``full_cp.eval_size`` sample of the
        evaluation set (and the target class's images in it as the "others")."""
        if self.tc.conformal != "full":
            return views
        size = self.tc.full_cp.eval_size
        ev = views.evaluation
        if size < ev.numel():
            gen = make_generator(derive_seed(eval_seed, "full-cp-eval"))
            ev = ev[torch.randperm(ev.numel(), generator=gen)[:size]].sort().values
        return EvalViews(views.targets, views.others[torch.isin(views.others, ev)], ev)

    def benign_evaluation_needs_poisons(self) -> bool:
        """Under full CP the uniforms of the training points are drawn for the benign and
        the poisoned victim together."""
        return self.tc.conformal == "full"

    def evaluate(self, ws: Workspace, config: ExperimentConfig, victim: Victim,
                 views: EvalViews, eval_seed: int, defense: Defense,
                 n_poisons: int) -> ModelEval:
        """Split CP of the head on the calibration features (no defense); under a defense,
        the defense's predictor on extractor + head (images); full CP of the head on its
        training features (:meth:`evaluate_full`)."""
        factory = victim_factory(config)
        if defense.name != "none":
            return evaluate_victim(ws, defense, victim.outcome.models, views, config.scores,
                                   config.alpha, eval_seed, factory)
        head = victim.outcome.models[0]
        feats = self.clean_features(ws, config)
        if self.tc.conformal == "full":
            if factory is not None:  # the config refuses it; a guard for direct callers
                raise ConfigError("full CP (transfer.conformal: full) cannot use a config's "
                                  "predictor; use transfer.conformal: split")
            x, y = victim.train
            gen = make_generator(derive_seed(eval_seed, "full-cp-train-u"))
            n_clean = int(self.victim_ids_count(ws, config))
            u = torch.rand(n_clean + n_poisons, generator=gen, dtype=F64)
            return self.evaluate_full(ws, config, head, x, y, feats, views,
                                      u[:int(y.numel())], eval_seed, victim)
        ext = self.extractor(ws, config)
        with torch.no_grad():
            cal_logits = head(feats.rows(ws.split.victim_cal).to(ws.device, F64)).cpu()
            test_logits = head(feats.test.to(ws.device, F64)).cpu()
        return score_sets(
            ws, views, config.scores, config.alpha, eval_seed, cal_logits=cal_logits,
            cal_y=ws.dataset.train_labels[ws.split.victim_cal], test_logits=test_logits,
            rscp=lambda gen: rscp_sets(ws, TransferModel(ext, head).eval(), config.alpha, gen),
            factory=factory)

    def victim_ids_count(self, ws: Workspace, config: ExperimentConfig) -> int:
        """How many clean training points a victim has (the same for every victim)."""
        return int(self.victim_ids(ws, config, 0, 0).numel())

    def evaluate_full(self, ws: Workspace, config: ExperimentConfig, head: nn.Module,
                      x: Tensor, y: Tensor, feats: CleanFeatures, views: EvalViews,
                      train_u: Tensor, seed: int, victim: Victim) -> ModelEval:
        """Full CP of a victim whose head was fitted on ``x, y`` (all of them are full-CP
        training points; ``train_u`` their uniforms for randomized scores), for the targets
        and ``views``'s evaluation sample; its timings go into ``victim.facts``."""
        tc = self.tc
        k = ws.dataset.num_classes
        query = torch.cat([views.targets, views.evaluation])
        out: dict[str, dict[str, Tensor]] = {}
        facts: dict[str, float] = {"full_cp_seconds": 0.0, "full_cp_fallbacks": 0.0}
        theta = head_from_linear(head)  # type: ignore[arg-type]
        n_test = ws.dataset.test_labels.numel()
        for name in config.scores:
            gen = make_generator(derive_seed(seed, "eval", name))
            test_u = torch.rand(n_test, generator=gen, dtype=F64)[query]
            res = full_cp_sets(x.to(ws.device), y.to(ws.device),
                               feats.test[query].to(ws.device), k, name, config.alpha,
                               tc.full_cp.method, tc.head.lam, tc.head.tolerance(),
                               subset_size=None, train_u=train_u, test_u=test_u,
                               init=theta.to(ws.device))
            sets = torch.zeros(n_test, k, dtype=torch.bool)
            sets[query] = res.sets.cpu()
            out[name] = {g: sets[idx] for g, idx in _groups(views).items()}
            facts["full_cp_seconds"] += res.seconds
            facts["full_cp_fallbacks"] += float(res.fallbacks)
            facts["full_cp_n_train"] = float(res.n_train)
        with torch.no_grad():
            preds = head(feats.test.to(ws.device, F64)).argmax(1).cpu()
        acc = float((preds == ws.dataset.test_labels).float().mean())
        victim.facts["full_cp"] = facts
        victim.facts["full_cp_eval_size"] = int(views.evaluation.numel())
        return ModelEval(out, preds, acc)

    def row_facts(self, config: ExperimentConfig, benign: Victim, poisoned: Victim,
                  poisons: PoisonSet) -> dict[str, Any]:
        tc = self.tc
        extra: dict[str, Any] = {"transfer": True, "conformal": tc.conformal,
                                 "head": tc.head.kind, "head_lam": tc.head.lam,
                                 "victim_train_size": poisoned.facts.get("victim_train_size"),
                                 "poisoned_fit_seconds": poisoned.facts.get(
                                     "poisoned_fit_seconds"),
                                 "cg_residual": poisons.meta.get("cg_residual"),
                                 "head_grad_norm_benign": benign.facts.get("head_grad_norm"),
                                 "head_grad_norm_victim": poisoned.facts.get("head_grad_norm")}
        if tc.conformal == "full":
            bf, vf = benign.facts["full_cp"], poisoned.facts["full_cp"]
            extra.update(full_cp_method=tc.full_cp.method, full_cp_eval_size=poisoned.facts[
                "full_cp_eval_size"], full_cp_seconds=bf["full_cp_seconds"]
                + vf["full_cp_seconds"], full_cp_fallbacks=bf["full_cp_fallbacks"]
                + vf["full_cp_fallbacks"], full_cp_n_train_benign=bf.get("full_cp_n_train"),
                full_cp_n_train_victim=vf.get("full_cp_n_train"))
        return extra


def _frozen_feature_defenses() -> list[str]:
    from cpoison.defenses import DEFENSES

    return [name for name, (_, cls) in DEFENSES.items() if cls.frozen_features]
