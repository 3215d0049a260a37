"""The paper's attack on conformal prediction (Li et al. 2024, Sec. 4; SPEC 4-5).

Objective: the relaxed loss l2 (Eq. 7) or its worst case l3 (Eq. 8, SAM perturbation rho),
through a differentiable score (HPS, APS, RAPS, NLL or RSCP's smoothed score). Update:
first order aligns the poisons' gradient with grad l3 (Eq. 11-13); second order aligns it
with (H + lambda I)^-1 grad l3 (Eq. 16-17). Both run the one crafting loop
(:func:`cpoison.attacks.surrogates.craft_aligned`) with its ensembles, retraining and
selection on the attacker's side (SPEC 5.4); the loss variants of SPEC 5.4 are the fields
``calibration``, ``hinge``, ``margin``, ``temperature`` and ``true_label``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field, model_serializer

from cpoison.attacks.alignment import CraftingConfig
from cpoison.attacks.base import Attack, AttackConfigBase
from cpoison.attacks.config_keys import drop_legacy
from cpoison.attacks.context import AttackContext
from cpoison.attacks.goals import goal_kind, goal_objective, labels_to_add
from cpoison.attacks.hessian import (
    conjugate_gradient,
    gauss_newton_vector_product,
    hessian_vector_product,
)
from cpoison.attacks.losses import (
    LossData,
    LossShape,
    Scorer,
    logit_scorer,
    quantile_rank,
    relaxed_loss,
    smoothed_scorer,
)
from cpoison.attacks.poison_set import PoisonSet
from cpoison.attacks.surrogates import craft_aligned
from cpoison.attacks.worst_case import worst_case_gradient
from cpoison.conformal import RSCP, SplitConformal, build_score
from cpoison.seeding import derive_seed, make_generator

log = logging.getLogger(__name__)


class ConformalAttackConfig(AttackConfigBase):
    """Settings of the paper's attack (``name: ours`` in experiment configs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["ours"] = "ours"
    label: str | None = None
    loss: Literal["l2", "l3"] = "l3"
    order: Literal[1, 2] = 1
    score: str = Field("hps", description="score inside the loss: hps, aps, raps, nll or rscp")
    rho: float = Field(0.05, ge=0, description="SAM radius of l3 (Eq. 14)")
    rscp_samples: int = Field(8, ge=1, description="noise draws of RSCP inside the loss")
    curvature: Literal["hessian", "gauss-newton"] = "gauss-newton"
    damping: float = Field(0.1, gt=0, description="lambda in (H + lambda I)^-1")
    cg_iterations: int = Field(10, ge=1)
    hessian_samples: int = Field(512, ge=1, description="D^tr images for the Hessian")
    crafting: CraftingConfig = CraftingConfig()
    calibration: Literal["through", "detached"] = Field(
        "through", description="through: gradients flow through the attacker's calibration "
        "scores (Eq. 7); detached: Q fixed at each surrogate's parameters")
    hinge: Literal["eq7", "boundary", "soft"] = Field(
        "eq7", description="eq7: hinges against every calibration score on the label's side "
        "of Q; boundary: one hinge at Q with a margin; soft: the soft set size")
    margin: float = Field(0.05, ge=0, description="boundary hinge margin m (score units)")
    temperature: float = Field(0.1, gt=0, description="soft set size temperature T")
    true_label: Literal["keep", "pull"] = Field(
        "keep", description="underconfidence: keep y* in the set with the keep hinge, or "
        "pull it in with the labels to add (which raises p(y*), against the goal)")
    implicit_steps: int = Field(
        0, ge=0, description="transfer setting, logistic surrogate head: optimise the poisons "
        "by the exact implicit gradient of the loss at the head refitted on D^tr + poisons, "
        "this many steps (cpoison.transfer.attack.craft_implicit); 0: gradient alignment")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Fields added after the first release are left out while they hold the behaviour
        from before them (:data:`_LEGACY`), so such configs keep their keys and cached
        poisons. The default ``true_label: keep`` differs from that behaviour, so it is
        written out and every config that leaves it at the default gets a new key."""
        return drop_legacy(handler(self), _LEGACY)  # type: ignore[no-any-return]

    def default_label(self) -> str:
        if self.implicit_steps:
            return f"ours-{self.loss}-implicit-{self.score}"
        return f"ours-{self.loss}-o{self.order}-{self.score}"

    def objective_facts(self) -> tuple[str | None, int | None, str | None]:
        """The conformal loss, the update order (implicit: exact Hessian, second order) and
        the score inside the loss."""
        return self.loss, 2 if self.implicit_steps else self.order, self.score

    def loss_shape(self) -> LossShape:
        return LossShape(self.calibration, self.hinge, self.margin, self.temperature,
                         self.true_label)


_LEGACY: dict[str, Any] = {"implicit_steps": 0, "calibration": "through", "hinge": "eq7",
                           "margin": 0.05, "temperature": 0.1, "true_label": "pull"}


def build_scorer(score: str, seed: int, rscp_samples: int) -> Scorer:
    if score.lower() == "rscp":
        return smoothed_scorer(RSCP(), rscp_samples, derive_seed(seed, "rscp-noise") % 2**31)
    return logit_scorer(build_score(score))


def loss_data(ctx: AttackContext, scorer: Scorer, seed: int) -> LossData:
    """Fixed uniforms for randomized scores and, for underconfidence, Y_in = C(X_v) + Y_a
    (the surrogate's sets at theta* with the attacker's threshold, SPEC 4.1), without
    y*_v: the loss's ``true_label`` decides whether y*_v is kept or pulled in."""
    gen = make_generator(derive_seed(seed, "loss-u"), ctx.device)
    cal_u = torch.rand(ctx.cal_x.shape[0], generator=gen, device=ctx.device)
    target_u = torch.rand(ctx.target_x.shape[0], generator=gen, device=ctx.device)
    data = LossData(ctx.cal_x, ctx.cal_y, cal_u, ctx.target_x, ctx.target_y, target_u)
    if goal_kind(ctx.goal).needs_labels_in:
        with torch.no_grad():
            _, cal_scores = scorer(ctx.surrogate, ctx.cal_x, cal_u)
            cal = cal_scores.gather(1, ctx.cal_y[:, None]).squeeze(1).sort().values
            q = cal[quantile_rank(cal.numel(), ctx.alpha) - 1]
            logits, scores = scorer(ctx.surrogate, ctx.target_x, target_u)
        true = torch.zeros_like(scores, dtype=torch.bool)
        true.scatter_(1, ctx.target_y[:, None], True)
        data.y_in = ((scores <= q) | labels_to_add(ctx.goal, logits)) & ~true
    return data


SET_SCORES = ("hps", "aps", "raps")


class ConformalAttack(Attack):
    """First- or second-order gradient alignment toward the l2 / l3 objective."""

    def __init__(self, config: ConformalAttackConfig) -> None:
        self.config = config
        self.name = config.name

    def target_direction(
        self, ctx: AttackContext, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The direction g the poisons' gradient is aligned with at ``model`` (default: the
        repeat's surrogate), and facts to record."""
        cfg = self.config
        model = (model if model is not None else ctx.surrogate).eval()
        scorer = build_scorer(cfg.score, ctx.seed, cfg.rscp_samples)
        data = loss_data(ctx, scorer, ctx.seed)
        shape = cfg.loss_shape()

        def loss_fn(m: torch.nn.Module) -> torch.Tensor:
            return relaxed_loss(m, scorer, ctx.goal, data, ctx.alpha, shape)

        with torch.no_grad():
            l2_value = float(loss_fn(model))
        rho = cfg.rho if cfg.loss == "l3" else 0.0
        g, _ = worst_case_gradient(model, loss_fn, rho)
        facts: dict[str, float] = {"l2_surrogate": l2_value}
        if cfg.order == 2 and ctx.exact_hessian is not None:
            # transfer setting: the head's exact Hessian (small), damped, solved by Cholesky
            start = time.perf_counter()
            h = ctx.exact_hessian().to(g.device, torch.float64)
            h.diagonal().add_(cfg.damping)
            g64 = g.detach().to(torch.float64)
            s = torch.cholesky_solve(g64[:, None], torch.linalg.cholesky(h))[:, 0]
            residual = float((h @ s - g64).norm() / g64.norm().clamp_min(1e-300))
            facts.update(cg_residual=residual, cg_iterations=0.0, hessian_exact=1.0,
                         hessian_seconds=time.perf_counter() - start)
            log.info("second order (exact head Hessian, Cholesky): residual %.3g", residual)
            g = s.to(g.dtype)
        elif cfg.order == 2:
            start = time.perf_counter()
            gen = make_generator(derive_seed(ctx.seed, "hessian"))
            pick = torch.randperm(ctx.train_x.shape[0], generator=gen)[: cfg.hessian_samples]
            x = ctx.train_x[pick].to(ctx.device)
            x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
            y = ctx.train_y[pick].to(ctx.device)
            product = (gauss_newton_vector_product if cfg.curvature == "gauss-newton"
                       else hessian_vector_product)
            matvec = product(model, x, y, cfg.damping)
            result = conjugate_gradient(matvec, g.detach(), cfg.cg_iterations)
            facts.update(cg_residual=result.residual, cg_iterations=float(result.iterations),
                         hessian_seconds=time.perf_counter() - start)
            log.info("second order: CG residual %.3g after %d iterations", result.residual,
                     result.iterations)
            g = result.solution
        return g.detach(), facts

    def goal_on(self, ctx: AttackContext, model: torch.nn.Module) -> float:
        """The goal's discrete objective (lower is better) on the targets' sets of
        ``model``, calibrated on the attacker's calibration fold with the attack's own
        score (HPS for NLL and RSCP, whose sets are HPS's or need noise draws)."""
        score = self.config.score.lower()
        score = score if score in SET_SCORES else "hps"
        gen = make_generator(derive_seed(ctx.seed, "validation-sets"))
        model = model.eval()
        with torch.no_grad():
            cal_logits, target_logits = model(ctx.cal_x), model(ctx.target_x)
        predictor = SplitConformal(score, ctx.alpha).calibrate(cal_logits, ctx.cal_y,
                                                                generator=gen)
        return goal_objective(ctx.goal, predictor.predict(target_logits, generator=gen),
                              ctx.target_y)

    def craft(self, ctx: AttackContext) -> PoisonSet:
        if self.config.implicit_steps:
            return self.craft_implicit(ctx)
        facts: dict[str, float] = {}

        def direction_of(model: torch.nn.Module) -> torch.Tensor:
            g, model_facts = self.target_direction(ctx, model)
            if not facts:  # the first call is at the repeat's surrogate
                facts.update(model_facts)
            return g

        result = craft_aligned(ctx, self.config.crafting, direction_of, ctx.seed,
                               lambda m: self.goal_on(ctx, m))
        meta = {"attack": self.name, "alignment_loss": result.loss,
                "restart_losses": result.losses, **facts}
        if result.selection:
            meta["selection_scores"] = result.selection
        return PoisonSet(ctx.base_ids, result.delta.cpu(), ctx.inject, meta)

    def craft_implicit(self, ctx: AttackContext) -> PoisonSet:
        """The transfer setting's implicit-gradient attack (exact for the convex head)."""
        from cpoison.errors import ConfigError
        from cpoison.transfer.attack import craft_implicit

        cfg = self.config
        if ctx.transfer is None:
            raise ConfigError("attack option implicit_steps needs the transfer setting with a "
                              "logistic surrogate head (transfer.surrogate_head.kind: logistic)")
        if cfg.score.lower() in ("rscp", "nll"):
            raise ConfigError(f"implicit_steps supports the scores hps, aps and raps inside the "
                              f"loss, got {cfg.score!r}")
        ext = ctx.transfer.extractor
        with torch.no_grad():
            cal_f = ext.features(ctx.cal_x).double()
            target_f = ext.features(ctx.target_x).double()
        poisons = craft_implicit(
            ctx.transfer, ctx.bases, ctx.base_labels, ctx.base_ids, cal_f, ctx.cal_y,
            target_f, ctx.target_y, ctx.inject, cfg.score, ctx.goal, ctx.alpha, ctx.eps,
            cfg.loss, cfg.rho if cfg.loss == "l3" else 0.0, cfg.implicit_steps,
            cfg.crafting.lr, derive_seed(ctx.seed, "implicit"))
        poisons.meta["attack"] = self.name
        return poisons
