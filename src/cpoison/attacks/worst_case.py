"""The worst-case loss l3 (paper Eq. 8, 14, 15; SPEC 4.3).

l3(theta) = max_{||zeta||_2 <= rho} l2(theta + zeta). With the first-order (SAM) solution
zeta = rho * g2 / ||g2||_2 (Eq. 14 with p = 2), its gradient is approximated by the l2
gradient at theta* + zeta (Eq. 15).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from cpoison.attacks.params import loss_gradient, shifted, trainable


def worst_case_gradient(
    model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], rho: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (grad l3, grad l2) at the model's parameters; ``rho = 0`` gives l2 twice."""
    g2 = loss_gradient(model, loss_fn)
    norm = g2.norm()
    if rho <= 0 or norm == 0:
        return g2, g2
    zeta = rho * g2 / norm
    with shifted(trainable(model), zeta):
        g3 = loss_gradient(model, loss_fn)
    return g3, g2
