"""A training set view: a pool of clean images, the indices in use, and optional poisons.

Poisons are held as (pool ids, delta) and added when a batch is loaded (SPEC 10, as in
Witches' Brew); the clean pool is never modified in place.

A :class:`TrainSet` is also a map-style torch ``Dataset`` (``len(ts)``, ``ts[i]`` = one
``(x, y)`` pair with the poisons applied), which is what a user's own training function
receives (``train_fn(model, train_set, generator)``): it can go straight into a
``torch.utils.data.DataLoader``; ``ts.load(positions)`` loads a whole batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from cpoison.errors import CpoisonError


@dataclass
class TrainSet(Dataset):  # type: ignore[type-arg]
    """``images`` uint8 [N, C, H, W] (or float32 feature vectors [N, D]) and ``labels`` [N]
    are the pool; ``indices`` select the training examples; ``poison_ids`` (pool indices)
    get ``poison_delta`` added on load (images are then clipped to [0, 1]; feature vectors
    are not clipped)."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    poison_ids: torch.Tensor | None = None
    poison_delta: torch.Tensor | None = None
    n_clean: int | None = None  # leading indices shared with the clean set (pairing)
    _slot: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.indices = torch.as_tensor(self.indices, dtype=torch.long)
        if self.n_clean is None:
            self.n_clean = int(self.indices.numel())
        if (self.poison_ids is None) != (self.poison_delta is None):
            raise CpoisonError("poison_ids and poison_delta must be given together")
        if self.poison_ids is not None:
            ids = torch.as_tensor(self.poison_ids, dtype=torch.long)
            if self.poison_delta.shape[0] != ids.numel():
                raise CpoisonError(
                    f"{ids.numel()} poison ids but {self.poison_delta.shape[0]} perturbations"
                )
            slot = torch.full((self.images.shape[0],), -1, dtype=torch.long)
            slot[ids] = torch.arange(ids.numel())
            self.poison_ids, self._slot = ids, slot

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Example ``position``: ``(x, y)``, x float32 (an image [C, H, W] in [0, 1] or a
        feature vector [D]) with its poison applied, y an int64 scalar."""
        if not -len(self) <= int(position) < len(self):
            raise IndexError(f"position {position} outside a training set of {len(self)}")
        x, y = self.load(torch.tensor([int(position) % len(self)]))
        return x[0], y[0]

    def with_poisons(self, ids: torch.Tensor, delta: torch.Tensor, inject: bool) -> TrainSet:
        """A new view with poisons; ``inject`` adds their ids to the indices (black-box),
        otherwise they must already be training examples (white-box in-place replacement)."""
        indices = self.indices
        if not inject and not bool(torch.isin(torch.as_tensor(ids), indices).all()):
            raise CpoisonError("in-place (white-box) poisons must be training examples of "
                               "this set; some poison ids are not")
        if inject:
            indices = torch.cat([indices, torch.as_tensor(ids, dtype=torch.long)])
        return TrainSet(self.images, self.labels, indices, ids, delta, n_clean=len(self))

    def epoch_order(self, order_gen: torch.Generator, extra_gen: torch.Generator) -> torch.Tensor:
        """A permutation of positions for one epoch. The clean positions follow the same
        order as in the clean set's own training run (same ``order_gen`` draws), and injected
        poisons are slotted in at random places, so benign and poisoned victims trained with
        one seed see the clean data in the same order (SPEC 6 pairing)."""
        n, n_clean = len(self), int(self.n_clean)
        clean = torch.randperm(n_clean, generator=order_gen)
        if n == n_clean:
            return clean
        extra = n_clean + torch.randperm(n - n_clean, generator=extra_gen)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=extra_gen)[: n - n_clean]] = True
        order = torch.empty(n, dtype=torch.long)
        order[mask] = extra
        order[~mask] = clean
        return order

    def load(
        self, positions: torch.Tensor, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [0, 1] (poisons applied) and labels for ``positions`` into indices
        (float32 feature vectors as stored, poisons added without clipping)."""
        pool_idx = self.indices[positions]
        images = self.images.dtype == torch.uint8
        x = self.images[pool_idx].to(device=device, dtype=torch.float32)
        if images:
            x = x.div_(255.0)
        y = self.labels[pool_idx].to(device)
        if self._slot is not None:
            slot = self._slot[pool_idx]
            mask = slot >= 0
            if bool(mask.any()):
                delta = self.poison_delta[slot[mask]].to(device=device, dtype=x.dtype)
                poisoned = x[mask.to(device)] + delta
                x[mask.to(device)] = poisoned.clamp_(0.0, 1.0) if images else poisoned
        return x, y
