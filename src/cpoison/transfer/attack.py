"""The attack in the transfer setting and on full CP (SPEC 2, 3.5, 4.2, 5.1, 5.2).

The attacker knows the frozen extractor and fits its own convex head ``theta*`` on the
features of its training data. Its objective is the relaxed loss l2 of Eq. 7
(:func:`cpoison.attacks.losses.relaxed_loss`) evaluated on features, with the head's
*training* points' scores in the role of the calibration scores (SPEC 3.5: in full CP the
training points play that role), or its worst case l3 (Eq. 8, 14, 15). The poisons are
crafted in input space (eps-bounded, clean-label) through the extractor by
:func:`cpoison.attacks.alignment.align_poisons` on a :class:`TransferModel`, whose only
trainable parameters are the head's, so G(delta) is the head gradient:

* first order (Eq. 11-13): align G with g = grad l3 at theta*;
* second order (Eq. 16-17): align G with s = (H + damping I)^-1 g, H the *exact* Hessian of
  the head's penalised training loss at theta* (:func:`cpoison.transfer.head.head_hessian`),
  solved by Cholesky; the relative residual ``||(H + damping I) s - g|| / ||g||`` is recorded.

:func:`evaluate_full_cp_victims` measures the effect on fresh victims: each victim fits the
head on its own training subset plus the poisons' features, and full-CP sets of the targets
and of an evaluation set are compared with those of its benign twin (same subset, no poisons).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from cpoison.attacks.alignment import CraftingConfig, align_poisons, signed_step
from cpoison.attacks.goals import Goal, goal_kind, labels_to_add
from cpoison.attacks.losses import LossData, logit_scorer, quantile_rank, relaxed_loss
from cpoison.attacks.poison_set import PoisonSet
from cpoison.attacks.worst_case import worst_case_gradient
from cpoison.conformal import build_score, coverage, mean_size, reduction_ratio
from cpoison.conformal.quantile import check_alpha
from cpoison.errors import ConfigError, CpoisonError
from cpoison.seeding import derive_seed, make_generator
from cpoison.transfer.full_cp import Method, full_cp_sets, select_subset
from cpoison.transfer.head import (
    F64,
    FittedHead,
    add_bias_column,
    fit_head,
    head_hessian,
    linear_order,
)
from cpoison.transfer.model import TransferModel, extract_features

__all__ = [
    "TransferAttackData",
    "VictimReport",
    "craft_implicit",
    "craft_transfer_poisons",
    "evaluate_full_cp_victims",
    "full_cp_loss_data",
    "head_target_direction",
    "poison_features",
]


def full_cp_loss_data(
    head: FittedHead,
    train_features: Tensor,
    train_labels: Tensor,
    target_features: Tensor,
    target_labels: Tensor,
    score: str,
    goal: Goal,
    alpha: float,
    seed: int,
) -> LossData:
    """Eq. 7's data on features: the head's training points as the calibration fold, the
    targets, fixed uniforms (seeded) and, for underconfidence, Y_in = C(X_v) + Y_a + {y*_v}
    (C with the training scores' conformal quantile at theta*, as in
    :func:`cpoison.attacks.conformal_attack.loss_data`)."""
    gen = make_generator(derive_seed(seed, "loss-u"))
    dev = head.theta.device
    data = LossData(
        train_features.to(dev, F64), train_labels.to(dev).long(),
        torch.rand(train_labels.numel(), generator=gen, dtype=F64).to(dev),
        target_features.to(dev, F64), target_labels.to(dev).long(),
        torch.rand(target_labels.numel(), generator=gen, dtype=F64).to(dev),
    )
    if goal_kind(goal).needs_labels_in:
        scorer = logit_scorer(build_score(score))
        lin = head.linear()
        with torch.no_grad():
            _, cal_scores = scorer(lin, data.cal_x, data.cal_u)
            cal = cal_scores.gather(1, data.cal_y[:, None]).squeeze(1).sort().values
            q = cal[quantile_rank(cal.numel(), alpha) - 1]
            logits, scores = scorer(lin, data.target_x, data.target_u)
        true = torch.zeros_like(scores, dtype=torch.bool)
        true.scatter_(1, data.target_y[:, None], True)
        data.y_in = (scores <= q) | labels_to_add(goal, logits) | true
    return data


def head_target_direction(
    head: FittedHead,
    train_features: Tensor,
    train_labels: Tensor,
    target_features: Tensor,
    target_labels: Tensor,
    score: str = "hps",
    goal: Goal | None = None,
    alpha: float = 0.1,
    loss: Literal["l2", "l3"] = "l3",
    rho: float = 0.05,
    order: Literal[1, 2] = 1,
    damping: float = 0.0,
    seed: int = 0,
) -> tuple[Tensor, dict[str, float]]:
    """The direction the poisons' head gradient is aligned with, in *linear* order
    (``cat(W.reshape(-1), b)``, i.e. ``flat_grad`` order of the head ``nn.Linear``).

    ``train_features/labels`` are the attacker's head's training data (the scores in the
    role of the calibration scores); ``order=2`` returns ``(H + damping I)^-1 grad l3`` with
    the exact Hessian (facts: ``cg_residual`` = the solve's relative residual,
    ``hessian_seconds``). Facts also hold ``l2_surrogate`` (Eq. 7 at theta*).
    """
    goal = goal or Goal()
    alpha = check_alpha(alpha)
    if order not in (1, 2):
        raise ConfigError(f"order must be 1 or 2, got {order!r}")
    data = full_cp_loss_data(head, train_features, train_labels, target_features,
                             target_labels, score, goal, alpha, seed)
    scorer = logit_scorer(build_score(score))
    lin = head.linear()

    def loss_fn(m: nn.Module) -> Tensor:
        return relaxed_loss(m, scorer, goal, data, alpha)

    with torch.no_grad():
        facts: dict[str, float] = {"l2_surrogate": float(loss_fn(lin))}
    g, _ = worst_case_gradient(lin, loss_fn, rho if loss == "l3" else 0.0)
    g = g.detach()
    if order == 2:
        start = time.perf_counter()
        xa = add_bias_column(train_features.to(head.theta.device))
        perm = linear_order(head.num_classes, head.feature_dim, head.theta.device)
        h = head_hessian(xa, head.theta, head.lam)[perm][:, perm]
        h.diagonal().add_(damping)
        s = torch.cholesky_solve(g[:, None], torch.linalg.cholesky(h))[:, 0]
        facts["cg_residual"] = float((h @ s - g).norm() / g.norm().clamp_min(1e-300))
        facts["hessian_seconds"] = time.perf_counter() - start
        g = s
    return g, facts


def craft_transfer_poisons(
    extractor: nn.Module,
    head: FittedHead,
    bases: Tensor,
    base_labels: Tensor,
    base_ids: Tensor,
    direction: Tensor,
    eps: float,
    crafting: CraftingConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    facts: dict[str, float] | None = None,
) -> PoisonSet:
    """Craft delta on float ``bases`` ``[P, C, H, W]`` in [0, 1] (clean labels) by gradient
    alignment (SPEC 5.1) through the frozen extractor; returns a black-box (injected)
    :class:`PoisonSet` whose meta holds the alignment loss and ``facts``."""
    model = TransferModel(extractor, head.linear())
    result = align_poisons(model, bases.float(), base_labels.long(), direction.to(F64), eps,
                           crafting or CraftingConfig(), derive_seed(seed, "align"),
                           progress=progress)
    meta = {"attack": "ours-transfer", "alignment_loss": result.loss,
            "restart_losses": result.losses, **(facts or {})}
    return PoisonSet(base_ids, result.delta.cpu(), True, meta)


def poison_features(
    extractor: nn.Module, pool_images: Tensor, poisons: PoisonSet,
    device: torch.device | str = "cpu", batch_size: int = 256,
) -> Tensor:
    """Features of the poisoned images ``clip(pool[ids] / 255 + delta, 0, 1)`` (float32, on
    CPU), computed on ``device`` in batches of ``batch_size``."""
    base = pool_images[poisons.ids]
    base = base.float().div(255) if base.dtype == torch.uint8 else base.float()
    return extract_features(extractor, (base + poisons.delta.float()).clamp(0, 1),
                            device=device, batch_size=batch_size)


@dataclass
class VictimReport:
    """Benign vs poisoned full-CP results over ``victims`` fresh victims.

    Per victim lists: mean target set sizes, evaluation coverage, target coverage and
    prediction consistency (argmax of the poisoned vs benign head on the targets); the
    means over victims, and the reduction ratio of the mean target set size (SPEC 3.3).
    """

    benign_size: list[float]
    poisoned_size: list[float]
    benign_coverage: list[float]
    poisoned_coverage: list[float]
    benign_target_coverage: list[float]
    poisoned_target_coverage: list[float]
    consistency: list[float]
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def _mean(v: list[float]) -> float:
        return sum(v) / len(v)

    @property
    def mean_benign_size(self) -> float:
        return self._mean(self.benign_size)

    @property
    def mean_poisoned_size(self) -> float:
        return self._mean(self.poisoned_size)

    @property
    def reduction(self) -> float:
        return reduction_ratio(self.mean_benign_size, self.mean_poisoned_size)

    def summary(self) -> dict[str, float]:
        return {
            "benign_size": self.mean_benign_size,
            "poisoned_size": self.mean_poisoned_size,
            "reduction_ratio": self.reduction,
            "benign_coverage": self._mean(self.benign_coverage),
            "poisoned_coverage": self._mean(self.poisoned_coverage),
            "benign_target_coverage": self._mean(self.benign_target_coverage),
            "poisoned_target_coverage": self._mean(self.poisoned_target_coverage),
            "consistency": self._mean(self.consistency),
            "seconds": self.seconds,
        }


def evaluate_full_cp_victims(
    extractor: nn.Module,
    pool_images: Tensor,
    pool_labels: Tensor,
    victim_ids: Tensor,
    victim_features: Tensor,
    poisons: PoisonSet,
    target_features: Tensor,
    target_labels: Tensor,
    eval_features: Tensor,
    eval_labels: Tensor,
    num_classes: int,
    score: str = "hps",
    alpha: float = 0.1,
    victims: int = 2,
    victim_size: int | None = None,
    lam: float = 1.0,
    target_method: Method = "exact",
    eval_method: Method = "influence",
    seed: int = 0,
) -> VictimReport:
    """Benign vs poisoned full-CP sets of the targets and coverage on the evaluation set.

    Args:
        extractor: the frozen feature extractor (for the poisons' features).
        pool_images: the train pool the poison ids index (uint8 or float).
        pool_labels: the labels of that pool.
        victim_ids: pool ids of the victims' clean data; ``victim_features`` their clean
            features (computed once per extractor, shared by every victim).
        poisons: ids + delta (clean labels ``pool_labels[ids]``), injected into every victim.
        target_features: clean features of the targets.
        target_labels: their labels.
        eval_features: clean features of the evaluation set.
        eval_labels: its labels.
        victims: number of fresh victims; victim ``j`` trains on a seeded random subset of
            ``victim_size`` of the victim data (all of it when ``None``), drawn with
            ``derive_seed(seed, "victim", j)``, plus the poisons; its benign twin on the same
            subset without them. Every point of the victim's training data is a full-CP
            training point (``subset_size=None``).
        target_method: full-CP method for the targets.
        eval_method: full-CP method for the evaluation set.

    Randomized scores use uniforms drawn from ``derive_seed(seed, "victim-u", j)``, shared by
    the benign and the poisoned twin.
    """
    alpha = check_alpha(alpha)
    if isinstance(victims, bool) or not isinstance(victims, int) or victims < 1:
        raise ConfigError(f"victims must be a positive integer, got {victims!r}")
    n_clean = int(victim_ids.numel())
    if victim_features.shape[0] != n_clean:
        raise CpoisonError(f"{victim_features.shape[0]} victim features for {n_clean} ids")
    start = time.perf_counter()
    p_feats = poison_features(extractor, pool_images, poisons).to(victim_features.dtype)
    p_labels = pool_labels[poisons.ids].long()
    cols: dict[str, list[float]] = {k: [] for k in (
        "bs", "ps", "bc", "pc", "btc", "ptc", "cons")}
    for j in range(victims):
        size = n_clean if victim_size is None else victim_size
        pick = select_subset(n_clean, size, derive_seed(seed, "victim", j))
        clean_x, clean_y = victim_features[pick], pool_labels[victim_ids[pick]].long()
        gen_seed = derive_seed(seed, "victim-u", j)
        preds = []
        for poisoned in (False, True):
            x = torch.cat([clean_x, p_feats]) if poisoned else clean_x
            y = torch.cat([clean_y, p_labels]) if poisoned else clean_y
            gen = make_generator(gen_seed)
            train_u = torch.rand(n_clean + len(poisons), generator=gen, dtype=F64)
            target_u = torch.rand(target_labels.numel(), generator=gen, dtype=F64)
            eval_u = torch.rand(eval_labels.numel(), generator=gen, dtype=F64)
            u = torch.cat([train_u[:n_clean][pick], train_u[n_clean:]]) if poisoned \
                else train_u[:n_clean][pick]
            fitted = fit_head(x, y, num_classes, lam)
            preds.append(fitted.logits(target_features).argmax(1))
            res = {}
            for name, feats, uu, method in (
                ("t", target_features, target_u, target_method),
                ("e", eval_features, eval_u, eval_method),
            ):
                res[name] = full_cp_sets(x, y, feats, num_classes, score, alpha, method, lam,
                                         subset_size=None, train_u=u, test_u=uu,
                                         init=fitted.theta).sets
            tag = "p" if poisoned else "b"
            cols[tag + "s"].append(mean_size(res["t"]))
            cols[tag + "c"].append(coverage(res["e"], eval_labels))
            cols[tag + "tc"].append(coverage(res["t"], target_labels))
        cols["cons"].append(float((preds[0] == preds[1]).double().mean()))
    return VictimReport(cols["bs"], cols["ps"], cols["bc"], cols["pc"], cols["btc"],
                        cols["ptc"], cols["cons"], time.perf_counter() - start)


@dataclass
class TransferAttackData:
    """What the attacker knows in the transfer setting, for :func:`craft_implicit`: the frozen
    extractor, the features and labels of its head's training data (D^tr), their pool ids
    (white-box replacement), the head's penalty ``lam`` and the number of classes."""

    extractor: nn.Module
    train_features: Tensor
    train_labels: Tensor
    train_ids: Tensor
    lam: float
    num_classes: int


def craft_implicit(
    data: TransferAttackData,
    bases: Tensor,
    base_labels: Tensor,
    base_ids: Tensor,
    cal_features: Tensor,
    cal_labels: Tensor,
    target_features: Tensor,
    target_labels: Tensor,
    inject: bool,
    score: str = "hps",
    goal: Goal | None = None,
    alpha: float = 0.1,
    eps: float = 16 / 255,
    loss: Literal["l2", "l3"] = "l3",
    rho: float = 0.05,
    steps: int = 20,
    lr: float = 0.1,
    seed: int = 0,
) -> PoisonSet:
    """Poisons by the exact implicit gradient of the attack loss at the *refitted* convex head
    (the bilevel problem of Eq. 3 solved by implicit differentiation; Eq. 16-17 iterated).

    Every step: (1) refit the head ``theta(delta)`` on D^tr plus the current poisons' features
    (Newton, warm-started; exact since the head is strictly convex); (2) ``g = grad l3`` (or
    l2) at ``theta(delta)`` with the cal features' scores as the calibration scores (Eq. 7, 8);
    (3) ``s = H(theta)^-1 g`` with the exact Hessian of the penalised loss on D^tr + poisons
    (Cholesky; its relative residual is recorded); (4) by the implicit function theorem
    ``d l / d delta = -d (s . G(delta)) / d delta``, ``G`` the poisons' head gradient at
    ``theta``; a signed-Adam step of ``lr * eps`` on delta, projected onto the eps-ball and
    [0, 1]. Deterministic: delta starts at zero. The kept delta is the one with the lowest
    attack loss at its refitted head.
    """
    goal = goal or Goal()
    if steps < 1:
        raise ConfigError(f"implicit steps must be positive, got {steps}")
    ext = data.extractor
    dev = bases.device
    x_tr = data.train_features.to(dev, F64)
    y_tr = data.train_labels.to(dev).long()
    keep = torch.ones(x_tr.shape[0], dtype=torch.bool, device=dev)
    if not inject:  # white-box replacement: the bases leave the clean data
        keep &= ~torch.isin(data.train_ids.to(dev), base_ids.to(dev))
    x_tr, y_tr = x_tr[keep], y_tr[keep]
    y_p = base_labels.to(dev).long()
    k = data.num_classes
    delta = torch.zeros_like(bases, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr * eps)
    theta: Tensor | None = None
    best: tuple[float, Tensor] | None = None
    history: list[float] = []
    residual = 0.0
    start = time.perf_counter()
    for _ in range(steps + 1):
        with torch.no_grad():
            pf = ext.features((bases + delta).clamp(0, 1)).to(F64)
        fitted = fit_head(torch.cat([x_tr, pf]), torch.cat([y_tr, y_p]), k, data.lam,
                          init=theta)
        theta = fitted.theta
        g, facts = head_target_direction(fitted, cal_features, cal_labels, target_features,
                                         target_labels, score, goal, alpha, loss, rho,
                                         order=1, seed=seed)
        value = facts["l2_surrogate"]
        history.append(value)
        if best is None or value < best[0]:
            best = (value, delta.detach().clone())
        if len(history) == steps + 1:
            break
        xa = add_bias_column(torch.cat([x_tr, pf]))
        perm = linear_order(k, theta.shape[1] - 1, dev)
        h = head_hessian(xa, theta, data.lam)[perm][:, perm]
        s = torch.cholesky_solve(g[:, None], torch.linalg.cholesky(h))[:, 0]
        residual = max(residual, float((h @ s - g).norm() / g.norm().clamp_min(1e-300)))
        w = theta[:, :-1].clone().requires_grad_(True)
        b = theta[:, -1].clone().requires_grad_(True)
        feats = ext.features((bases + delta).clamp(0, 1)).to(F64)
        ce = torch.nn.functional.cross_entropy(feats @ w.T + b, y_p, reduction="sum")
        gw, gb = torch.autograd.grad(ce, (w, b), create_graph=True)
        objective = -(s * torch.cat([gw.reshape(-1), gb])).sum()  # = l(theta(delta)) + const
        opt.zero_grad(set_to_none=True)
        objective.backward()
        signed_step(opt, delta, bases, eps)
    assert best is not None
    meta = {"attack": "ours-implicit", "implicit_losses": history,
            "l2_surrogate": history[0], "l2_refit": best[0], "cg_residual": residual,
            "hessian_exact": 1.0, "implicit_seconds": time.perf_counter() - start}
    return PoisonSet(base_ids, best[1].cpu(), inject, meta)
