"""Batched, seeded, differentiable data augmentation (no Python loop over samples).

Standard augmentation per dataset (SPEC 6): random crop with zero padding plus horizontal
flip. The same functions serve victim training and the optional differentiable augmentation
of poisons while crafting (SPEC 5.1): they only index and flip, so gradients flow to inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Crop each image of ``x`` [B, C, H, W] at a random offset after zero-padding."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    gen_device = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    oy, ox = oy.to(x.device), ox.to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # [B, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    flip = torch.rand(x.shape[0], generator=generator, device=gen_device).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment(
    x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """Random crop (``padding`` > 0) then random horizontal flip (``flip``)."""
    x = random_crop(x, padding, generator)
    if flip:
        x = random_flip(x, generator)
    return x
