"""The convex head of the transfer setting (SPEC 2, SPEC 3.5): L2-penalised multinomial
logistic regression on frozen features, fitted to convergence deterministically.

Objective (the "penalised loss" of this package), on ``m`` feature rows ``f_i`` with labels
``y_i`` and parameters ``theta = [W | b]`` (``[K, D + 1]``, the bias as last column)::

    J(theta) = sum_i CE(W f_i + b, y_i) + (lam / 2) ||theta||^2

The data term is a *sum* (scikit-learn's convention, ``lam = 1 / C``), so adding one point to
the data adds one term and the penalty keeps its absolute strength; the bias is penalised too,
which makes ``J`` strictly convex (its Hessian is at least ``lam I``) and removes the
softmax's shift invariance, so the minimiser is unique. ``lam`` must be positive.

Fitting: Newton's method with the exact Hessian (:func:`head_hessian`, a ``P x P`` matrix,
``P = K (D + 1)``), a Cholesky solve and Armijo backtracking, in float64, from zeros or from a
warm start. It stops when the *per-point* gradient norm ``||grad J|| / m`` is below ``tol``
(default ``1e-9``) and raises :class:`HeadConvergenceError` (naming that norm) when it is
not reached within ``max_iter`` iterations. The same data and start always give the same
bits on one device (no randomness is involved).

Two parameter orders are used: *augmented* (``theta.reshape(-1)``, row ``k`` holds ``W_k`` then
``b_k``; the internal order of this package) and *linear* (``cat(W.reshape(-1), b)``, the order
of ``nn.Linear``'s parameters and so of :func:`cpoison.attacks.params.flat_grad`).
:func:`linear_order` converts vectors and Hessians between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cpoison.errors import ConfigError, CpoisonError
from cpoison.seeding import make_generator

__all__ = [
    "FittedHead",
    "HeadConvergenceError",
    "add_bias_column",
    "fit_head",
    "fit_mlp_head",
    "head_from_linear",
    "head_gradient",
    "head_hessian",
    "head_loss",
    "linear_order",
    "to_linear",
]

F64 = torch.float64


class HeadConvergenceError(CpoisonError):
    """The head's optimiser did not reach its gradient-norm tolerance."""


@dataclass
class FittedHead:
    """A fitted convex head: ``theta`` ``[K, D + 1]`` (float64, bias last), the penalty
    ``lam`` it was fitted with, the final per-point gradient norm and Newton iterations."""

    theta: Tensor
    lam: float
    grad_norm: float
    iterations: int

    @property
    def num_classes(self) -> int:
        return int(self.theta.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.theta.shape[1]) - 1

    def logits(self, features: Tensor) -> Tensor:
        """Logits ``[N, K]`` (float64) of feature rows ``[N, D]``."""
        return add_bias_column(features) @ self.theta.T

    def linear(self) -> nn.Linear:
        """The head as a float64 ``nn.Linear(D, K)`` (a copy)."""
        return to_linear(self.theta)


def check_lam(lam: float) -> float:
    """``lam`` as a float, or :class:`ConfigError` unless it is a positive finite number."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) \
            or lam <= 0:
        raise ConfigError(
            f"head penalty lam must be a positive finite number (it makes the head strictly "
            f"convex), got {lam!r}"
        )
    return float(lam)


def add_bias_column(features: Tensor) -> Tensor:
    """``[f, 1]``: float64 features ``[N, D]`` with a column of ones appended (``[N, D + 1]``)."""
    f = features.to(F64)
    return torch.cat([f, torch.ones(f.shape[0], 1, dtype=F64, device=f.device)], dim=1)


def _check_data(features: Tensor, labels: Tensor, num_classes: int) -> None:
    if features.dim() != 2:
        raise CpoisonError(f"features must have shape [N, D], got {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise CpoisonError(
            f"labels must have shape [{features.shape[0]}] to match the features, "
            f"got {tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise CpoisonError("the head needs at least one training point, got none")
    if not bool(torch.isfinite(features).all()):
        raise CpoisonError("features contain NaN or inf; check the feature extractor")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise CpoisonError(
            f"labels must lie in [0, {num_classes - 1}], got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )


def head_loss(xa: Tensor, labels: Tensor, theta: Tensor, lam: float) -> Tensor:
    """``J(theta)`` on bias-augmented features ``xa`` ``[m, D + 1]`` (see the module doc)."""
    return F.cross_entropy(xa @ theta.T, labels, reduction="sum") + 0.5 * lam * (theta**2).sum()


def head_gradient(xa: Tensor, labels: Tensor, theta: Tensor, lam: float) -> Tensor:
    """``grad J(theta)`` ``[K, D + 1]``: ``(softmax(xa theta^T) - onehot(y))^T xa + lam theta``."""
    r = torch.softmax(xa @ theta.T, dim=1)
    r[torch.arange(labels.numel(), device=xa.device), labels] -= 1.0
    return r.T @ xa + lam * theta


def head_hessian(xa: Tensor, theta: Tensor, lam: float, chunk: int = 4096) -> Tensor:
    """The exact Hessian of ``J`` at ``theta``, ``[P, P]`` in augmented order.

    ``H = sum_i (diag(p_i) - p_i p_i^T) kron (x_i x_i^T) + lam I`` with ``x_i`` the
    bias-augmented features and ``p_i = softmax(theta x_i)``. Computed as the block diagonal
    ``blockdiag_k(X^T diag(p_k) X)`` minus ``V^T V``, ``V_i = p_i kron x_i``, in row chunks.
    It does not depend on the labels.
    """
    k, d1 = theta.shape
    p_dim = k * d1
    h = torch.zeros(p_dim, p_dim, dtype=F64, device=xa.device)
    for s in range(0, xa.shape[0], chunk):
        x = xa[s : s + chunk]
        p = torch.softmax(x @ theta.T, dim=1)  # [m, K]
        v = (p[:, :, None] * x[:, None, :]).reshape(x.shape[0], p_dim)
        h -= v.T @ v
        for c in range(k):
            h[c * d1 : (c + 1) * d1, c * d1 : (c + 1) * d1] += (x * p[:, c : c + 1]).T @ x
    h.diagonal().add_(lam)
    return h


def linear_order(num_classes: int, feature_dim: int, device: torch.device | str = "cpu") -> Tensor:
    """Index ``perm`` with ``v_linear = v_aug[perm]`` and ``H_linear = H_aug[perm][:, perm]``.

    Linear order is ``cat(W.reshape(-1), b)`` (``nn.Linear``'s parameters); augmented order is
    ``theta.reshape(-1)`` with ``theta = [W | b]``.
    """
    d1 = feature_dim + 1
    rows = torch.arange(num_classes, device=device)[:, None] * d1
    weights = (rows + torch.arange(feature_dim, device=device)[None, :]).reshape(-1)
    return torch.cat([weights, rows.reshape(-1) + feature_dim])


def to_linear(theta: Tensor) -> nn.Linear:
    """``theta`` ``[K, D + 1]`` as a float64 ``nn.Linear(D, K)`` on its device."""
    k, d1 = theta.shape
    lin = nn.Linear(d1 - 1, k, dtype=theta.dtype, device=theta.device)
    with torch.no_grad():
        lin.weight.copy_(theta[:, :-1])
        lin.bias.copy_(theta[:, -1])
    return lin


def head_from_linear(linear: nn.Linear) -> Tensor:
    """``[W | b]`` ``[K, D + 1]`` (float64, detached) of an ``nn.Linear``."""
    bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
    return torch.cat([linear.weight.detach(), bias.detach()[:, None]], dim=1).to(F64)


def fit_head(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    lam: float = 1.0,
    tol: float = 1e-9,
    max_iter: int = 100,
    init: Tensor | None = None,
) -> FittedHead:
    """Minimise ``J`` (module doc) by Newton's method with the exact Hessian.

    Args:
        features: ``[m, D]`` feature rows (any float dtype; computed in float64).
        labels: ``[m]`` integer labels in ``[0, num_classes)``.
        num_classes: ``K``.
        lam: the L2 penalty (> 0; sum-form objective, so it is ``1 / C`` of scikit-learn).
        tol: stop when ``||grad J|| / m <= tol``.
        max_iter: Newton iterations before :class:`HeadConvergenceError` is raised.
        init: warm start ``[K, D + 1]`` (e.g. a head fitted on nearly the same data); zeros
            when ``None``.

    Each step solves ``H s = -grad`` by Cholesky and backtracks (Armijo, factor 1/2) until
    ``J`` decreases sufficiently; for a strictly convex ``J`` this converges globally and
    quadratically near the optimum.
    """
    lam = check_lam(lam)
    _check_data(features, labels, num_classes)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ConfigError(f"tol must be a positive number, got {tol!r}")
    xa = add_bias_column(features)
    y = labels.to(xa.device).long()
    m, d1 = xa.shape
    if init is None:
        theta = torch.zeros(num_classes, d1, dtype=F64, device=xa.device)
    else:
        if tuple(init.shape) != (num_classes, d1):
            raise CpoisonError(
                f"warm start must have shape [{num_classes}, {d1}], got {tuple(init.shape)}"
            )
        theta = init.detach().to(dtype=F64, device=xa.device).clone()
    loss = head_loss(xa, y, theta, lam)
    grad = head_gradient(xa, y, theta, lam)
    gnorm = float(grad.norm()) / m
    it = 0
    while gnorm > tol and it < max_iter:
        it += 1
        h = head_hessian(xa, theta, lam)
        chol, info = torch.linalg.cholesky_ex(h)
        g = grad.reshape(-1, 1)
        step = -torch.cholesky_solve(g, chol) if int(info) == 0 else -g / lam
        step = step.reshape(theta.shape)
        slope = float((grad * step).sum())
        t, new_grad = 1.0, None
        for _ in range(60):
            cand = theta + t * step
            new_loss = head_loss(xa, y, cand, lam)
            if float(new_loss) <= float(loss) + 1e-4 * t * slope:
                break
            if abs(float(new_loss) - float(loss)) <= 1e-13 * max(1.0, abs(float(loss))):
                # the decrease is below the loss's rounding: accept a step that lowers the
                # gradient norm instead (Newton's local quadratic convergence)
                new_grad = head_gradient(xa, y, cand, lam)
                if float(new_grad.norm()) < gnorm * m:
                    break
                new_grad = None
            t *= 0.5
        else:  # no progress representable: stop (the tolerance check below decides)
            break
        theta, loss = cand, new_loss
        grad = new_grad if new_grad is not None else head_gradient(xa, y, theta, lam)
        gnorm = float(grad.norm()) / m
    if gnorm > tol:
        raise HeadConvergenceError(
            f"the head did not converge: per-point gradient norm {gnorm:.3e} > tolerance "
            f"{tol:.1e} after {it} Newton iterations (raise max_iter or lam, or check the "
            f"features for extreme values)"
        )
    return FittedHead(theta, lam, gnorm, it)


def fit_mlp_head(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    hidden: int = 64,
    lam: float = 1.0,
    seed: int = 0,
    tol: float = 1e-6,
    max_iter: int = 500,
) -> nn.Sequential:
    """The optional small MLP head ``Linear(D, hidden) -> Tanh -> Linear(hidden, K)`` (float64;
    tanh, not ReLU, so that the objective is smooth and L-BFGS reaches a gradient tolerance).

    Minimises ``sum_i CE + lam / 2 ||params||^2`` full-batch by L-BFGS (strong Wolfe) from a
    seeded initialisation, so it is deterministic; it is *not* convex, so full CP
    (:mod:`cpoison.transfer.full_cp`) and the exact-Hessian second-order update apply to the
    linear head only. Raises :class:`HeadConvergenceError` when the per-point gradient norm
    stays above ``tol`` after 20 rounds of ``max_iter`` L-BFGS iterations.
    """
    lam = check_lam(lam)
    _check_data(features, labels, num_classes)
    x = features.detach().to(F64)
    y = labels.to(x.device).long()
    gen = make_generator(seed)
    d = x.shape[1]
    net = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, num_classes)).to(F64)
    with torch.no_grad():
        for p in net.parameters():
            bound = 1.0 / math.sqrt(p.shape[-1] if p.dim() > 1 else d)
            p.copy_((torch.rand(p.shape, generator=gen, dtype=F64) * 2 - 1) * bound)
    net = net.to(x.device)
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=max_iter, tolerance_grad=tol / 10,
                            tolerance_change=1e-16, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y, reduction="sum")
        loss = loss + 0.5 * lam * sum((p**2).sum() for p in net.parameters())
        loss.backward()
        return loss

    gnorm = float("inf")
    for _ in range(20):  # L-BFGS may stop on a flat stretch; restart its memory and go on
        opt.step(closure)
        closure()
        gnorm = float(torch.cat([p.grad.reshape(-1) for p in net.parameters()]).norm())
        gnorm /= x.shape[0]
        if gnorm <= tol:
            break
    if not gnorm <= tol:
        raise HeadConvergenceError(
            f"the MLP head did not converge: per-point gradient norm {gnorm:.3e} > tolerance "
            f"{tol:.1e} after 20 rounds of {max_iter} L-BFGS iterations"
        )
    return net.eval()
