"""The SPEC 6 units of work in the transfer setting (SPEC 2, 3.5; issue 10).

A config with ``transfer:`` (:class:`~cpoison.experiments.config.TransferConfig`) runs the
same protocol, cells, keys, grids, executors, rows and report as from-scratch training; what
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
* **evaluation**: split CP on the victim's calibration features (HPS / APS / RAPS; RSCP
  smooths the extractor + head as one module), or full CP (SPEC 3.5) of the victim's head on
  its training data plus the poisons, for the targets and a seeded ``full_cp.eval_size``
  sample of the evaluation set; the rows are the from-scratch rows (SPEC 3.3) plus the
  transfer facts (head gradient norms, the second-order residual, full-CP timings).
"""

from __future__ import annotations

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

from cpoison.attacks import AttackContext, PoisonSet, attack_label
from cpoison.conformal import SplitConformal, build_score
from cpoison.errors import ConfigError, DataError
from cpoison.experiments.config import ExperimentConfig, HeadConfig, ModelSpec
from cpoison.experiments.evaluation import EvalViews, ModelEval, rscp_sets
from cpoison.experiments.metrics import victim_row
from cpoison.experiments.repeats import repeat_seed, row_meta, victim_seeds, views_of
from cpoison.experiments.workspace import Workspace
from cpoison.seeding import derive_seed, make_generator
from cpoison.store import keys
from cpoison.transfer.attack import TransferAttackData
from cpoison.transfer.full_cp import FullConformal, SubsetTooLargeError, select_subset
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


def _tc(config: ExperimentConfig) -> Any:
    if config.transfer is None:
        raise ValueError("not a transfer-setting config")
    return config.transfer


# -- the extractor ----------------------------------------------------------------------------


def extractor_spec(ws: Workspace, config: ExperimentConfig) -> ModelSpec:
    """The extractor's architecture and arguments (default: the preset's model)."""
    return ws.spec(_tc(config).extractor)


def extractor_seed(config: ExperimentConfig) -> int:
    """The extractor's training seed: one per run seed (it is shared by every repeat)."""
    return derive_seed(config.seed, "extractor")


def _public(ws: Workspace) -> Tensor:
    if ws.split.public is None:
        raise ConfigError("the transfer setting needs a split with a public role "
                          "(transfer.public_fraction)")
    return ws.split.public


def extractor_key(ws: Workspace, config: ExperimentConfig) -> str:
    """The extractor's model key (SPEC 11): dataset digest, public ids, recipe,
    architecture, seed, device type, trainer version."""
    return ws.model_key(ws.trainset(_public(ws)), extractor_seed(config),
                        extractor_spec(ws, config))


def check_extractor_spec(ws: Workspace, config: ExperimentConfig) -> None:
    """Build the extractor once (no training) and check it has a feature layer; one
    :class:`NoFeatureLayerError` naming ``transfer.extractor`` otherwise."""
    spec = extractor_spec(ws, config)
    try:
        model = ws.build(0, spec)
    except ConfigError as err:
        raise NoFeatureLayerError(f"transfer.extractor {spec.arch!r} cannot serve as a feature "
                                  f"extractor: {err}") from None
    try:
        check_extractor(model)
    except NoFeatureLayerError as err:
        raise NoFeatureLayerError(f"transfer.extractor {spec.arch!r}: {err}") from None


def extractor(ws: Workspace, config: ExperimentConfig) -> nn.Module:
    """The frozen extractor: trained once on the public role (or loaded from the store)."""
    key = extractor_key(ws, config)
    memo = (str(ws.store.root), key)
    if memo not in _EXTRACTORS:
        model = ws.train(ws.trainset(_public(ws)), extractor_seed(config), desc="extractor",
                         spec=extractor_spec(ws, config))
        check_extractor(model)
        _EXTRACTORS[memo] = model.requires_grad_(False).eval()
    return _EXTRACTORS[memo]


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


def features_key(ws: Workspace, config: ExperimentConfig) -> str:
    return keys.features_key(extractor=extractor_key(ws, config), train_ids=feature_ids(ws),
                             dataset=ws.digest, device_type=ws.device.type)


def clean_features(ws: Workspace, config: ExperimentConfig) -> CleanFeatures:
    """The clean features of this config's extractor: from the process, else the store,
    else computed (once) and stored."""
    key = features_key(ws, config)
    memo = (str(ws.store.root), key)
    if memo in _FEATURES:
        return _FEATURES[memo]
    data = ws.store.get("features", key, ".safetensors")
    ids = feature_ids(ws)
    if data is not None:
        t = st_load(data)
        out = CleanFeatures(key, t["train_ids"], t["train"], t["test"])
    else:
        model = extractor(ws, config)
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
            metadata={"extractor": extractor_key(ws, config)}))
    _FEATURES[memo] = out
    return out


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


def _load_or_fit(ws: Workspace, key: str, spec: HeadConfig, features: Tensor,
                 labels: Tensor, seed: int, desc: str) -> tuple[nn.Module, dict[str, float]]:
    k = ws.dataset.num_classes
    head = empty_head(spec, int(features.shape[1]), k)
    meta = ws.store.load_model_meta(key, head)
    if meta is not None:
        return head.to(ws.device).eval(), {
            k2: float(v) for k2, v in meta.items() if k2.startswith("head_")}
    start = time.perf_counter()
    head, facts = fit(spec, features.to(ws.device), labels.to(ws.device), k, seed, desc)
    ws.train_seconds += time.perf_counter() - start
    ws.trained.append(desc)
    ws.store.save_model(key, head, {"desc": desc, "seed": seed, "device": ws.device.type,
                                    **facts})
    return head.to(ws.device).eval(), facts


# -- the attacker -----------------------------------------------------------------------------


def surrogate_seed(config: ExperimentConfig, repeat: int) -> int:
    return derive_seed(repeat_seed(config, repeat), "surrogate")


def surrogate_key(ws: Workspace, config: ExperimentConfig, repeat: int) -> str:
    """Key of the attacker's head (its extractor's key, D^tr, the head's settings)."""
    spec = _tc(config).surrogate_head
    return keys.head_key(extractor=extractor_key(ws, config), indices=ws.split.attacker_train,
                         poison_ids=None, poison_delta=None, head=spec,
                         seed=head_seed(spec, surrogate_seed(config, repeat)),
                         device_type=ws.device.type)


def train_surrogate(ws: Workspace, config: ExperimentConfig, repeat: int) -> TransferModel:
    """Extractor + the attacker's head fitted on the features of D^tr (stored by key)."""
    ext = extractor(ws, config)
    feats = clean_features(ws, config)
    ids = ws.split.attacker_train
    head, _ = _load_or_fit(ws, surrogate_key(ws, config, repeat), _tc(config).surrogate_head,
                           feats.rows(ids), ws.dataset.train_labels[ids],
                           surrogate_seed(config, repeat), f"surrogate head r{repeat}")
    return TransferModel(ext, head).to(ws.device).eval()


def adjust_context(ws: Workspace, config: ExperimentConfig, ctx: AttackContext,
                   surrogate: nn.Module) -> AttackContext:
    """The attack context of the transfer setting: the attacker head's exact Hessian for the
    second order (logistic head), and under full CP the attacker's training points (a seeded
    subset of ``full_cp.subset_size``) in the role of the calibration fold (SPEC 3.5)."""
    tc = _tc(config)
    changes: dict[str, Any] = {"surrogates": None}  # heads: no ensembles / retraining yet
    if tc.surrogate_head.kind == "logistic":
        feats = clean_features(ws, config).rows(ws.split.attacker_train)
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
            surrogate.extractor, feats, ws.dataset.train_labels[ws.split.attacker_train],  # type: ignore[arg-type]
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


# -- victims ----------------------------------------------------------------------------------


def victim_ids(ws: Workspace, config: ExperimentConfig, repeat: int, victim: int) -> Tensor:
    """Pool ids of victim ``victim``'s clean training data: a seeded ``victim_subsample`` of
    the victim training set (the victim's training seed), and under full CP a seeded
    ``full_cp.subset_size`` of that (the full-CP training set, SPEC 3.5)."""
    tc = _tc(config)
    seed, _ = victim_seeds(config, repeat, victim)
    pool = ws.split.victim_train
    n = max(1, round(tc.victim_subsample * pool.numel()))
    ids = pool[select_subset(pool.numel(), n, derive_seed(seed, "subsample"))]
    if tc.conformal == "full" and tc.full_cp.subset_size is not None:
        ids = ids[select_subset(ids.numel(), tc.full_cp.subset_size,
                                derive_seed(seed, "full-cp"))]
    return ids


def check_sizes(ws: Workspace, config: ExperimentConfig, where: str = "") -> None:
    """Pre-flight (no model): the public role, the full-CP subset against the victims'
    data; the extractor's feature layer."""
    tc = _tc(config)
    if ws.split.public is None or ws.split.public.numel() < 2:
        raise ConfigError(f"transfer.public_fraction {tc.public_fraction} leaves no public "
                          f"data to pretrain the extractor{where}")
    n = max(1, round(tc.victim_subsample * ws.split.victim_train.numel()))
    size = tc.full_cp.subset_size
    if tc.conformal == "full" and size is not None and size > n:
        raise SubsetTooLargeError(
            f"transfer.full_cp.subset_size {size} is larger than a victim's training data "
            f"({n} = victim_subsample {tc.victim_subsample} of "
            f"{ws.split.victim_train.numel()}); use at most {n}, or null{where}")
    check_extractor_spec(ws, config)


def benign_key(ws: Workspace, config: ExperimentConfig, repeat: int, victim: int) -> str:
    spec = _tc(config).head
    seed, _ = victim_seeds(config, repeat, victim)
    return keys.head_key(extractor=extractor_key(ws, config),
                         indices=victim_ids(ws, config, repeat, victim), poison_ids=None,
                         poison_delta=None, head=spec, seed=head_seed(spec, seed),
                         device_type=ws.device.type)


def benign_victim(ws: Workspace, config: ExperimentConfig, repeat: int,
                  victim: int) -> tuple[nn.Module, dict[str, float]]:
    """Benign victim head ``victim`` of the repeat (stored by :func:`benign_key`)."""
    seed, _ = victim_seeds(config, repeat, victim)
    ids = victim_ids(ws, config, repeat, victim)
    feats = clean_features(ws, config)
    return _load_or_fit(ws, benign_key(ws, config, repeat, victim), _tc(config).head,
                        feats.rows(ids), ws.dataset.train_labels[ids], seed,
                        f"benign head r{repeat} v{victim}")


def poison_features(ws: Workspace, ext: nn.Module, poisons: PoisonSet) -> Tensor:
    """Features of the poisoned images ``clip(pool[ids] / 255 + delta, 0, 1)``."""
    base = ws.dataset.train_images[poisons.ids].float().div(255)
    return extract_features(ext, (base + poisons.delta.float()).clamp(0, 1), ws.device,
                            ws.preset.eval_batch_size)


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


# -- evaluation -------------------------------------------------------------------------------


def _groups(views: EvalViews) -> dict[str, Tensor]:
    return {"targets": views.targets, "others": views.others, "evaluation": views.evaluation}


@torch.no_grad()
def evaluate_split(ws: Workspace, ext: nn.Module, head: nn.Module, feats: CleanFeatures,
                   views: EvalViews, scores: tuple[str, ...], alpha: float,
                   seed: int) -> ModelEval:
    """Split CP of one victim head on its calibration features (the generators of
    :func:`cpoison.experiments.evaluation.evaluate_model`, so a pair is matched)."""
    split = ws.split
    cal_logits = head(feats.rows(split.victim_cal).to(ws.device, F64))
    test_logits = head(feats.test.to(ws.device, F64))
    cal_y = ws.dataset.train_labels[split.victim_cal]
    out: dict[str, dict[str, Tensor]] = {}
    for name in scores:
        gen = make_generator(derive_seed(seed, "eval", name), ws.device if name == "rscp"
                             else "cpu")
        if name == "rscp":
            all_sets = rscp_sets(ws, TransferModel(ext, head).eval(), alpha, gen)
        else:
            cp = SplitConformal(build_score(name), alpha).calibrate(
                cal_logits.cpu(), cal_y, gen)
            all_sets = cp.predict(test_logits.cpu(), generator=gen)
        out[name] = {g: all_sets[idx] for g, idx in _groups(views).items()}
    preds = test_logits.argmax(1).cpu()
    return ModelEval(out, preds, float((preds == ws.dataset.test_labels).float().mean()))


def full_cp_views(config: ExperimentConfig, views: EvalViews, seed: int) -> EvalViews:
    """The targets, and a seeded ``full_cp.eval_size`` sample of the evaluation set (and
    the target class's images in it as the "others")."""
    size = _tc(config).full_cp.eval_size
    ev = views.evaluation
    if size < ev.numel():
        gen = make_generator(derive_seed(seed, "full-cp-eval"))
        ev = ev[torch.randperm(ev.numel(), generator=gen)[:size]].sort().values
    return EvalViews(views.targets, views.others[torch.isin(views.others, ev)], ev)


def evaluate_full(ws: Workspace, config: ExperimentConfig, head: nn.Module, x: Tensor,
                  y: Tensor, feats: CleanFeatures, views: EvalViews,
                  train_u: Tensor, seed: int) -> tuple[ModelEval, dict[str, float]]:
    """Full CP (SPEC 3.5) of a victim whose head was fitted on ``x, y`` (all of them are
    full-CP training points; ``train_u`` their uniforms for randomized scores), for the
    targets and ``views``'s evaluation sample."""
    tc = _tc(config)
    k = ws.dataset.num_classes
    query = torch.cat([views.targets, views.evaluation])
    out: dict[str, dict[str, Tensor]] = {}
    facts: dict[str, float] = {"full_cp_seconds": 0.0, "full_cp_fallbacks": 0.0}
    theta = head_from_linear(head)  # type: ignore[arg-type]
    n_test = ws.dataset.test_labels.numel()
    for name in config.scores:
        gen = make_generator(derive_seed(seed, "eval", name))
        test_u = torch.rand(n_test, generator=gen, dtype=F64)[query]
        cp = FullConformal(name, config.alpha, tc.full_cp.method, tc.head.lam,
                           tc.head.tolerance(), subset_size=None)
        cp.fit(x.to(ws.device), y.to(ws.device), k, u=train_u, init=theta.to(ws.device))
        res = cp.predict(feats.test[query].to(ws.device), u=test_u)
        sets = torch.zeros(n_test, k, dtype=torch.bool)
        sets[query] = res.sets.cpu()
        out[name] = {g: sets[idx] for g, idx in _groups(views).items()}
        facts["full_cp_seconds"] += res.seconds
        facts["full_cp_fallbacks"] += float(res.fallbacks)
        facts["full_cp_n_train"] = float(res.n_train)
    with torch.no_grad():
        preds = head(feats.test.to(ws.device, F64)).argmax(1).cpu()
    acc = float((preds == ws.dataset.test_labels).float().mean())
    return ModelEval(out, preds, acc), facts


def evaluate_cell(ws: Workspace, config: ExperimentConfig, repeat: int, attack_index: int,
                  victim: int, poisons: PoisonSet) -> list[dict[str, Any]]:
    """One cell in the transfer setting: benign head and its poisoned twin (same training
    ids and seed; the poisoned fit warm-starts from the benign head, which changes only the
    path to the same unique optimum), evaluated with every score; one row per score."""
    tc = _tc(config)
    poisons.check_ids(ws.dataset.train_labels.numel())
    views = views_of(ws, poisons)
    seed, eval_seed = victim_seeds(config, repeat, victim)
    label = attack_label(config.attacks[attack_index])
    ext = extractor(ws, config)
    feats = clean_features(ws, config)
    ids = victim_ids(ws, config, repeat, victim)
    clean_x = feats.rows(ids)
    benign, bfacts = benign_victim(ws, config, repeat, victim)
    p_x = poison_features(ws, ext, poisons)
    x, y = poisoned_data(ws, ids, clean_x, p_x, poisons)
    start = time.perf_counter()
    poisoned, pfacts = fit(tc.head, x.to(ws.device), y.to(ws.device), ws.dataset.num_classes,
                           seed, f"{label} head r{repeat} v{victim}",
                           init=benign if tc.head.kind == "logistic" else None)
    fit_seconds = time.perf_counter() - start
    ws.train_seconds += fit_seconds
    ws.trained.append(f"{label} head r{repeat} v{victim}")
    extra: dict[str, Any] = {"transfer": True, "conformal": tc.conformal,
                             "head": tc.head.kind, "head_lam": tc.head.lam,
                             "victim_train_size": int(y.numel()),
                             "poisoned_fit_seconds": fit_seconds,
                             "cg_residual": poisons.meta.get("cg_residual"),
                             "head_grad_norm_benign": bfacts.get("head_grad_norm"),
                             "head_grad_norm_victim": pfacts.get("head_grad_norm")}
    if tc.conformal == "split":
        ev_views = views
        b_eval = evaluate_split(ws, ext, benign, feats, views, config.scores, config.alpha,
                                eval_seed)
        v_eval = evaluate_split(ws, ext, poisoned, feats, views, config.scores,
                                config.alpha, eval_seed)
    else:
        ev_views = full_cp_views(config, views, eval_seed)
        gen = make_generator(derive_seed(eval_seed, "full-cp-train-u"))
        n_clean = int(ids.numel())
        u = torch.rand(n_clean + len(poisons), generator=gen, dtype=F64)
        b_eval, bf = evaluate_full(ws, config, benign, clean_x, ws.dataset.train_labels[ids],
                                   feats, ev_views, u[:n_clean], eval_seed)
        v_u = u if poisons.inject else u[:n_clean]
        v_eval, vf = evaluate_full(ws, config, poisoned, x, y, feats, ev_views, v_u,
                                   eval_seed)
        extra.update(full_cp_method=tc.full_cp.method, full_cp_eval_size=int(
            ev_views.evaluation.numel()), full_cp_seconds=bf["full_cp_seconds"]
            + vf["full_cp_seconds"], full_cp_fallbacks=bf["full_cp_fallbacks"]
            + vf["full_cp_fallbacks"], full_cp_n_train_benign=bf.get("full_cp_n_train"),
            full_cp_n_train_victim=vf.get("full_cp_n_train"))
    rows = []
    for s in config.scores:
        row = row_meta(config, attack_index, poisons, views, repeat, victim, s)
        row.update(victim_row(b_eval, v_eval, s, ev_views, ws.dataset.test_labels,
                              ws.dataset.num_classes, goal=config.goal,
                              target_class=int(poisons.meta["target_class"])))
        row.update(extra)
        rows.append(row)
    log.info("%s r%d v%d (transfer, %s CP): %s", label, repeat, victim, tc.conformal,
             ", ".join(f"{r['score']} {r['benign_set_size']:.2f}->{r['victim_set_size']:.2f}"
                       for r in rows))
    return rows


__all__ = [
    "CleanFeatures",
    "adjust_context",
    "benign_key",
    "benign_victim",
    "check_sizes",
    "clean_features",
    "clear_caches",
    "evaluate_cell",
    "extractor",
    "extractor_key",
    "features_key",
    "surrogate_key",
    "train_surrogate",
    "victim_ids",
]
