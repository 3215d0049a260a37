"""Poison base selection by gradient norm (SPEC 2: "largest gradient norm"): the images whose
training gradient at the surrogate is largest move a model most per unit of perturbation,
so they are the most useful bases (Souri et al. 2022, Sleeper Agent, select poisons so).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int = 64) -> torch.Tensor:
    """||grad_theta CE(f(x_i), y_i)||_2 for every image (float [N], on CPU), with the model
    in eval mode (BatchNorm frozen). ``images`` uint8 or float in [0, 1]."""
    model = model.eval()
    device = next(model.parameters()).device
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x[None],))
        return F.cross_entropy(out, y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    norms = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
        y = labels[start:start + batch_size].to(device)
        grads = per_sample(params, x, y)
        squared = sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values())
        norms.append(squared.sqrt().cpu())
    return torch.cat(norms) if norms else torch.zeros(0)


def largest_gradient_norm(model: nn.Module, pool: torch.Tensor, images: torch.Tensor,
                          labels: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` pool ids (sorted) whose images have the largest gradient norm at ``model``;
    ``images`` / ``labels`` are the whole train pool that ``pool`` indexes."""
    norms = gradient_norms(model, images[pool], labels[pool])
    return pool[norms.argsort(descending=True, stable=True)[:n]].sort().values
