"""Theorem 4.1 of the paper, measured on the convex head.

Setting (paper Sec. 4, Eq. 11 and 17): the head's penalised training loss ``J``
(:mod:`cpoison.transfer.head`, strictly convex) has its minimiser ``theta*``. ``p`` training
points ``D_p`` are replaced in place by perturbed copies ``D~_p`` (``||delta_i||_2 = eps``, in
the head's input space, the features, where the theorem's assumptions hold: ``J`` convex,
``grad l`` Lipschitz in ``X``). With ``G = sum_p grad l(Z~_p; theta*) - grad l(Z_p; theta*)``:

* first-order closed form (Eq. 11): ``theta_1 = theta* - tau G``, ``tau = 1 / L_1`` with
  ``L_1 = lambda_max(nabla^2 J(theta*))`` (the theorem's condition ``tau <= 1 / L_1``, taken
  at equality, the largest step it allows);
* second-order closed form (Eq. 17): ``theta_2 = theta* - H^-1 G``, ``H = nabla^2 J(theta*)``
  (the quadratic model of the poisoned loss minimised);
* the actual refit ``theta_u = argmin J~`` (``J~``: ``J`` on the poisoned data), by Newton's
  method warm-started at ``theta*`` to the stated tolerance.

The theorem bounds ``J~(theta_k) - J~(theta_u)`` (>= 0 since ``theta_u`` minimises ``J~``) by
terms that vanish with ``eps`` and ``|D_p|``; :func:`theorem41_gap` measures it. Poison ids
come from one seeded permutation (the first ``p``), directions from one seeded draw, so
rows with different ``eps`` or ``p`` are nested and comparable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from cpoison.errors import ConfigError
from cpoison.seeding import derive_seed, make_generator
from cpoison.transfer.head import (
    F64,
    add_bias_column,
    fit_head,
    head_gradient,
    head_hessian,
    head_loss,
)

__all__ = ["GapRow", "theorem41_gap", "theorem41_table"]


@dataclass
class GapRow:
    """One measurement: ``gap_first`` / ``gap_second`` = ``J~(theta_k) - J~(theta_u)``;
    ``err_first`` / ``err_second`` = ``||theta_k - theta_u||``; ``shift`` =
    ``||theta_u - theta*||`` (the theorem's ``B_theta``); ``tau`` the first-order step."""

    eps: float
    n_poisons: int
    gap_first: float
    gap_second: float
    err_first: float
    err_second: float
    shift: float
    tau: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def theorem41_gap(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    eps: float,
    n_poisons: int,
    lam: float = 1.0,
    seed: int = 0,
    tol: float = 1e-12,
    head_theta: Tensor | None = None,
) -> GapRow:
    """Measure Theorem 4.1's gaps for ``n_poisons`` points perturbed by ``eps`` (module doc).

    ``head_theta`` (the fitted ``theta*`` on these features) skips the initial fit.
    """
    n = int(features.shape[0])
    if isinstance(n_poisons, bool) or not isinstance(n_poisons, int) or not 1 <= n_poisons <= n:
        raise ConfigError(f"n_poisons must be an integer in [1, {n}], got {n_poisons!r}")
    if not eps >= 0:
        raise ConfigError(f"eps must be >= 0, got {eps!r}")
    x = features.to(F64)
    y = labels.long().to(x.device)
    theta = head_theta if head_theta is not None else fit_head(x, y, num_classes, lam, tol).theta
    gen = make_generator(derive_seed(seed, "theorem41"))
    ids = torch.randperm(n, generator=gen)[:n_poisons].to(x.device)
    directions = torch.randn(n, x.shape[1], generator=gen, dtype=F64)[:n_poisons].to(x.device)
    delta = eps * directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-300)
    poisoned = x.clone()
    poisoned[ids] += delta
    xa, pa = add_bias_column(x), add_bias_column(poisoned)
    g_clean = head_gradient(xa[ids], y[ids], theta, 0.0)
    g_poison = head_gradient(pa[ids], y[ids], theta, 0.0)
    big_g = (g_poison - g_clean).reshape(-1)
    h = head_hessian(xa, theta, lam)
    tau = 1.0 / float(torch.linalg.eigvalsh(h)[-1])
    theta_1 = theta - tau * big_g.view_as(theta)
    theta_2 = theta - torch.linalg.solve(h, big_g).view_as(theta)
    theta_u = fit_head(poisoned, y, num_classes, lam, tol, init=theta).theta
    loss_u = float(head_loss(pa, y, theta_u, lam))
    return GapRow(
        eps=float(eps),
        n_poisons=n_poisons,
        gap_first=float(head_loss(pa, y, theta_1, lam)) - loss_u,
        gap_second=float(head_loss(pa, y, theta_2, lam)) - loss_u,
        err_first=float((theta_1 - theta_u).norm()),
        err_second=float((theta_2 - theta_u).norm()),
        shift=float((theta_u - theta).norm()),
        tau=tau,
    )


def theorem41_table(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    eps_values: list[float],
    poison_counts: list[int],
    lam: float = 1.0,
    seed: int = 0,
) -> list[GapRow]:
    """:func:`theorem41_gap` over the grid ``eps_values x poison_counts`` (one fit of
    ``theta*`` shared by every row)."""
    theta = fit_head(features, labels, num_classes, lam, 1e-12).theta
    return [theorem41_gap(features, labels, num_classes, e, p, lam, seed, head_theta=theta)
            for e in eps_values for p in poison_counts]
