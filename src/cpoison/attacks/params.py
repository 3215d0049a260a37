"""Flat parameter-space helpers shared by the target gradient, SAM and the Hessian."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def flat_grad(
    loss: torch.Tensor, params: list[nn.Parameter], create_graph: bool = False,
    retain_graph: bool | None = None,
) -> torch.Tensor:
    """d loss / d params as one flat vector (zeros for unused parameters)."""
    grads = torch.autograd.grad(loss, params, create_graph=create_graph,
                                retain_graph=retain_graph, allow_unused=True)
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)
    ])


@contextmanager
def shifted(params: list[nn.Parameter], step: torch.Tensor) -> Iterator[None]:
    """Temporarily add the flat vector ``step`` to ``params`` (restored on exit)."""
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.add_(step[offset : offset + n].view_as(p))
            offset += n
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def loss_gradient(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
    """Flat gradient of ``loss_fn(model)`` w.r.t. the trainable parameters."""
    return flat_grad(loss_fn(model), trainable(model))
