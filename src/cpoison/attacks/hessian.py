"""Inverse-Hessian-vector products for the second-order update (paper Eq. 16-17, SPEC 5.2).

s = (H + lambda I)^-1 g by conjugate gradients, H the Hessian of the training loss at theta*
(mini-batch estimate) applied through Hessian-vector products (double back-propagation), or
the Gauss-Newton matrix J^T H_out J (positive semi-definite) through a Jacobian-vector /
vector-Jacobian pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpoison.attacks.params import flat_grad, trainable

MatVec = Callable[[torch.Tensor], torch.Tensor]


def hessian_vector_product(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, damping: float = 0.0
) -> MatVec:
    """v -> (H + damping I) v with H the Hessian of mean CE on (x, y) at the current params."""
    params = trainable(model)
    grad = flat_grad(F.cross_entropy(model(x), y), params, create_graph=True)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        hv = flat_grad(grad @ v, params, retain_graph=True)
        return hv + damping * v

    return matvec


def gauss_newton_vector_product(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, damping: float = 0.0
) -> MatVec:
    """v -> (G + damping I) v, G = J^T H_out J the Gauss-Newton matrix of mean CE (PSD)."""
    params = trainable(model)
    logits = model(x)
    probs = logits.softmax(1).detach()
    n = x.shape[0]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        # J v by the double-vjp trick: u -> J^T u is linear, so d/du <J^T u, v> = J v.
        u = torch.zeros_like(logits, requires_grad=True)
        jtu = flat_grad((logits * u).sum(), params, create_graph=True, retain_graph=True)
        jv = torch.autograd.grad(jtu @ v, u)[0]
        hjv = probs * jv - probs * (probs * jv).sum(1, keepdim=True)  # softmax CE curvature
        return flat_grad((logits * hjv.detach()).sum() / n, params, retain_graph=True) + damping * v

    return matvec


@dataclass
class CGResult:
    solution: torch.Tensor
    residual: float  # ||A s - b|| / ||b||
    iterations: int


def conjugate_gradient(
    matvec: MatVec, b: torch.Tensor, max_iter: int = 50, tol: float = 1e-4
) -> CGResult:
    """Solve A s = b for symmetric A by conjugate gradients; the relative residual is
    returned (with an indefinite Hessian CG may stop early on negative curvature)."""
    s = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = r @ r
    b_norm = b.norm().clamp_min(1e-30)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        ap = matvec(p)
        curvature = p @ ap
        if curvature <= 0:
            break
        step = rs / curvature
        s = s + step * p
        r = r - step * ap
        rs_new = r @ r
        if rs_new.sqrt() / b_norm < tol:
            rs = rs_new
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    if not bool(s.any()):  # negative curvature on the first step: fall back to b itself
        s = b.clone()
    residual = float((matvec(s) - b).norm() / b_norm)
    return CGResult(s.detach(), residual, it)
