"""Target and poison base selection (SPEC 2, 4): targets by surrogate set size, the random
base draw, the nearest-to-target option and bases from the labels to add."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from experiment_helpers import one_thread, tiny_config

from cpoison.attacks.goals import labels_to_add
from cpoison.conformal import SplitConformal, set_sizes
from cpoison.errors import ConfigError
from cpoison.experiments.presets import get_preset
from cpoison.experiments.protocol import (
    choose_bases,
    setup_repeat,
    target_eligibility,
    train_surrogate,
)
from cpoison.experiments.workspace import Workspace


def _workspace(tmp_path) -> Workspace:
    return Workspace.open(get_preset("digits", "cpu"), seed=0, store=tmp_path,
                          progress=False)


def _setup(ws: Workspace, config) -> object:
    return setup_repeat(ws, config, 0, train_surrogate(ws, config, 0))


def test_nearest_bases_are_the_targets_neighbours(tmp_path) -> None:
    ws = _workspace(tmp_path)
    config = tiny_config(poison_selection="nearest")
    with one_thread():
        setup = _setup(ws, config)
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


def test_labels_to_add_bases_come_from_each_targets_added_labels(tmp_path) -> None:
    """Underconfidence (SPEC 4.1): with poison_class=labels-to-add every base belongs to a
    class in Y_a (the surrogate's ranks 2..m) of the target it was picked for, never to the
    target class; the random draw takes the union of those classes."""
    ws = _workspace(tmp_path)
    goal = {"kind": "underconfidence", "add_top": 3}
    config = tiny_config(goal=goal, poison_class="labels-to-add", poison_selection="nearest")
    with one_thread():
        setup = _setup(ws, config)
    ctx, ds = setup.context, ws.dataset
    ids = ctx.base_ids
    assert ids.numel() == round(config.budget * ws.split.victim_train.numel())
    assert ids.unique().numel() == ids.numel()
    base_labels = ds.train_labels[ids]
    assert not bool((base_labels == setup.target_class).any())
    added = labels_to_add(config.goal, ws.logits(ctx.surrogate, ds.test_images[
        setup.views.targets]))
    added[:, setup.target_class] = False
    assert bool(added.any(0)[base_labels].all())
    # Each target's nearest image among its own Y_a classes is a base (round robin, rank 1).
    with torch.no_grad():
        feats = F.normalize(ctx.surrogate.features(ds.test_images[setup.views.targets]
                                                   .float().div(255)), dim=1)
        pool = ws.split.attacker_train
        pool_feats = F.normalize(ctx.surrogate.features(ds.train_images[pool].float()
                                                        .div(255)), dim=1)
    similarity = (feats @ pool_feats.T).masked_fill(~added[:, ds.train_labels[pool]],
                                                      float("-inf"))
    assert bool(torch.isin(pool[similarity.argmax(1)], ids).all())
    random_config = tiny_config(goal=goal, poison_class="labels-to-add")
    random_ids = choose_bases(ws, random_config, setup.target_class, setup.seed,
                              ctx.surrogate, setup.views.targets)
    assert bool(added.any(0)[ds.train_labels[random_ids]].all())
    assert not torch.equal(random_ids, ids)


def test_targets_by_surrogate_set_size(tmp_path) -> None:
    """targets.set_size (paper Fig. 4) admits only images whose surrogate prediction set,
    calibrated on the attacker's calibration fold, has exactly that many labels."""
    ws = _workspace(tmp_path)
    ds = ws.dataset
    with one_thread():
        base = _setup(ws, tiny_config())
    surrogate, seed = base.context.surrogate, base.seed
    cal = ws.split.attacker_cal
    sizes = {}
    for size in (1, 2):
        config = tiny_config(targets={"target_class": 3, "n_targets": 5, "set_size": size,
                                      "correct_only": False})
        eligible = target_eligibility(ws, config, surrogate, seed)
        predictor = SplitConformal("hps", config.alpha).calibrate(
            ws.logits(surrogate, ds.train_images[cal]), ds.train_labels[cal])
        expected = set_sizes(predictor.predict(ws.logits(surrogate, ds.test_images))) == size
        assert torch.equal(eligible, expected)
        sizes[size] = int((eligible & (ds.test_labels == 3)).sum())
        if sizes[size]:
            with one_thread():
                setup = _setup(ws, config)
            assert bool(eligible[setup.views.targets].all())
            assert setup.views.targets.numel() == min(5, sizes[size])
    assert sizes[1] > 0  # the draw above ran at least once
    empty = tiny_config(targets={"target_class": 3, "set_size": 10, "correct_only": False})
    with pytest.raises(ConfigError, match="no test image of class 3 is eligible"), one_thread():
        _setup(ws, empty)


def test_nearest_pixel_bases_are_the_targets_pixel_neighbours(tmp_path) -> None:
    """poison_selection=nearest-pixels: each target's nearest eligible image by cosine
    similarity of the raw pixels is a base, and the bases sit closer to the targets in pixel
    space than the feature-nearest ones."""
    ws = _workspace(tmp_path)
    ds = ws.dataset
    with one_thread():
        setup = _setup(ws, tiny_config(poison_selection="nearest-pixels"))
        by_features = _setup(ws, tiny_config(poison_selection="nearest"))
    ids = setup.context.base_ids
    assert ids.numel() == by_features.context.base_ids.numel() == ids.unique().numel()

    def pixels(images: torch.Tensor) -> torch.Tensor:
        return F.normalize(images.reshape(images.shape[0], -1).float(), dim=1)

    targets = pixels(ds.test_images[setup.views.targets])
    pool = ws.split.attacker_train[ds.train_labels[ws.split.attacker_train]
                                   == setup.target_class]
    first = pool[(targets @ pixels(ds.train_images[pool]).T).argmax(dim=1)]
    assert bool(torch.isin(first, ids).all())

    def closeness(pick: torch.Tensor) -> float:
        return float((targets @ pixels(ds.train_images[pick]).T).max(dim=0).values.mean())

    assert closeness(ids) > closeness(by_features.context.base_ids)
