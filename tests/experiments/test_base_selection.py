"""Poison base selection (SPEC 2): the random draw and the nearest-to-target option."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from experiment_helpers import one_thread, tiny_config

from cpoison.experiments.presets import get_preset
from cpoison.experiments.protocol import choose_bases, setup_repeat
from cpoison.experiments.workspace import Workspace


def _workspace(tmp_path) -> Workspace:
    return Workspace.open(get_preset("digits", "cpu"), seed=0, cache_dir=tmp_path,
                          progress=False)


def test_nearest_bases_are_the_targets_neighbours(tmp_path) -> None:
    ws = _workspace(tmp_path)
    config = tiny_config(poison_selection="nearest")
    with one_thread():
        setup = setup_repeat(ws, config, 0)
    ctx, ds = setup.context, ws.dataset
    ids = ctx.base_ids
    n = round(config.budget * ws.split.victim_train.numel())
    assert ids.numel() == n == ids.unique().numel()
    assert bool(torch.isin(ids, ws.split.attacker_train).all())
    assert bool((ds.train_labels[ids] == setup.target_class).all())
    # The chosen bases sit closer to the targets (surrogate features) than a random draw.
    random_ids = choose_bases(ws, tiny_config(), setup.target_class, setup.seed)
    with torch.no_grad():
        def feats(images: torch.Tensor) -> torch.Tensor:
            return F.normalize(ctx.surrogate.features(images.float().div(255)), dim=1)

        targets = feats(ds.test_images[setup.views.targets])

        def closeness(pick: torch.Tensor) -> float:
            return float((targets @ feats(ds.train_images[pick]).T).max(dim=0).values.mean())

        assert closeness(ids) > closeness(random_ids)
    # Each target's single nearest eligible image is among the bases (round robin, rank 1).
    pool = ws.split.attacker_train[ds.train_labels[ws.split.attacker_train]
                                   == setup.target_class]
    with torch.no_grad():
        first = (targets @ feats(ds.train_images[pool]).T).argmax(dim=1)
    firsts = pool[first].unique()
    assert firsts.numel() <= n  # 10 targets, more bases than that
    assert bool(torch.isin(firsts, ids).all())
