"""MetaPoison (SPEC 5.3): threat-model bounds, determinism, staggered surrogates, and that the
crafted poisons lower l2 on the targets after a K-step SGD unroll more than the clean bases."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from attack_helpers import EPS, hps_l2, make_context

from cpoison.attacks import MetaPoison, MetaPoisonConfig, build_attack
from cpoison.attacks.metapoison import snapshot_epochs, staggered_surrogates
from cpoison.attacks.registry import attack_label, objective_facts
from cpoison.experiments.config import validate_config
from cpoison.models import build_model

# Fixed ensemble (no retraining), so that l2 before and after crafting compare like with like.
CONFIG = MetaPoisonConfig(craft_steps=40, batch_size=64, n_surrogates=2, retrain_steps=0)


def unroll(model: nn.Module, ctx, x: torch.Tensor, steps: int, lr: float, seed: int,
           batch: int = 64) -> nn.Module:
    """A copy of ``model`` after ``steps`` plain SGD steps on clean training mini-batches plus
    the poisons ``x`` (independent of cpoison's functional unroll)."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        pick = torch.randperm(ctx.train_x.shape[0], generator=gen)[:batch]
        xb = torch.cat([ctx.train_x[pick], x])
        yb = torch.cat([ctx.train_y[pick], ctx.base_labels])
        grads = torch.autograd.grad(F.cross_entropy(model(xb), yb), list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
    return model


@pytest.fixture(scope="module")
def crafted(digits):
    ctx = make_context(digits)
    before = copy.deepcopy(ctx.surrogate.state_dict())
    poisons = MetaPoison(CONFIG).craft(ctx)
    return ctx, poisons, before


def test_poisons_respect_the_threat_model(crafted):
    ctx, poisons, _ = crafted
    assert torch.equal(poisons.ids, ctx.base_ids)
    assert poisons.delta.shape == ctx.bases.shape
    assert poisons.linf <= EPS + 1e-6
    assert poisons.linf > 0.5 * EPS
    poisoned = ctx.bases + poisons.delta
    assert float(poisoned.min()) >= 0.0
    assert float(poisoned.max()) <= 1.0
    assert poisons.meta["attack"] == "metapoison"
    assert poisons.meta["steps"] == CONFIG.craft_steps
    assert len(poisons.meta["l2_history"]) == CONFIG.craft_steps


def test_surrogate_is_left_unchanged(crafted):
    ctx, _, before = crafted
    for name, value in ctx.surrogate.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_unrolled_l2_is_lower_with_the_crafted_poisons(crafted):
    """The objective MetaPoison optimises decreased: l2 after K SGD steps on a clean batch
    plus the poisons is lower than with the clean bases, on fresh clean batches."""
    ctx, poisons, _ = crafted
    assert poisons.meta["l2_final"] < poisons.meta["l2_start"] - 0.5
    l2 = hps_l2(ctx)
    k, lr = CONFIG.unroll_steps, CONFIG.unroll_lr
    for seed in (1, 2, 3):
        on_clean = unroll(ctx.surrogate, ctx, ctx.bases, k, lr, seed)
        on_poisons = unroll(ctx.surrogate, ctx, ctx.bases + poisons.delta, k, lr, seed)
        with torch.no_grad():
            clean, poisoned = float(l2(on_clean)), float(l2(on_poisons))
        assert poisoned < clean - 1.0, (seed, clean, poisoned)


def test_deterministic_for_a_seed(digits):
    cfg = MetaPoisonConfig(craft_steps=4, batch_size=32)
    first = build_attack(cfg).craft(make_context(digits, n_bases=8, seed=5))
    again = MetaPoison(cfg).craft(make_context(digits, n_bases=8, seed=5))
    other = MetaPoison(cfg).craft(make_context(digits, n_bases=8, seed=6))
    assert torch.equal(first.delta, again.delta)
    assert first.meta["l2_history"] == again.meta["l2_history"]
    assert not torch.equal(first.delta, other.delta)


def test_staggered_surrogates_are_snapshots_at_increasing_epochs(digits):
    assert snapshot_epochs(1, 2) == []
    assert snapshot_epochs(2, 2) == [1]
    assert snapshot_epochs(4, 6) == [2, 3, 4]  # a quarter, half, three quarters of the run
    ctx = make_context(digits)
    cfg = MetaPoisonConfig(n_surrogates=3, stagger_epochs=3, batch_size=64)
    models = staggered_surrogates(ctx, cfg, seed=0)
    assert [name for name, _ in models] == ["epoch1", "epoch2", "trained"]
    assert models[-1][1] is ctx.surrogate
    with torch.no_grad():
        acc = [float((m(ctx.train_x).argmax(1) == ctx.train_y).float().mean())
               for _, m in models]
    # Fresh weights trained for 1 and 2 epochs: distinct models, less fitted than the surrogate.
    assert not torch.equal(models[0][1].head.weight, models[1][1].head.weight)
    assert acc[0] < acc[2] and acc[1] < acc[2], acc


def test_staggered_snapshots_keep_training_while_crafting(digits):
    """The retraining of MetaPoison: a staggered snapshot's SGD steps on clean data plus the
    poisons lower its loss on the poisons; with ``retrain_steps=0`` it stays as it was."""
    ctx = make_context(digits, n_bases=8)
    attack = MetaPoison(MetaPoisonConfig(batch_size=32, n_surrogates=2, stagger_epochs=1,
                                         retrain_steps=5, stagger_lr=0.05))
    snapshot = staggered_surrogates(ctx, attack.config, seed=0)[0][1]
    before = copy.deepcopy(snapshot.state_dict())
    poisons = (ctx.bases + 0.5 * EPS).clamp(0, 1)

    def poison_loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(snapshot(poisons), ctx.base_labels))

    idle = MetaPoison(attack.config.model_copy(update={"retrain_steps": 0}))
    idle.retrain(ctx, [snapshot], poisons, torch.Generator().manual_seed(0))
    assert all(torch.equal(v, before[k]) for k, v in snapshot.state_dict().items())
    start = poison_loss()
    attack.retrain(ctx, [snapshot], poisons, torch.Generator().manual_seed(0))
    assert poison_loss() < start
    assert not snapshot.training


def test_batchnorm_statistics_are_frozen_in_the_unroll(digits):
    """A BatchNorm surrogate: the unroll normalises with the running statistics (eval mode)
    and never updates them; the crafted poisons stay within the budget."""
    torch.manual_seed(0)
    model = build_model("convnet", 1, 10, 8, seed=0, width=2).eval()
    ctx = make_context(digits, n_bases=6, n_targets=5)
    ctx.surrogate = model
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    cfg = MetaPoisonConfig(craft_steps=2, batch_size=16, n_surrogates=1)
    poisons = MetaPoison(cfg).craft(ctx)
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    assert not model.training
    assert poisons.linf <= EPS + 1e-6
    assert poisons.linf > 0


def test_selectable_from_an_experiment_config():
    raw = {"dataset": "digits", "preset": "cpu", "attacks": [
        {"name": "metapoison", "craft_steps": 10, "unroll_steps": 3},
        {"name": "metapoison", "label": "mp-aps", "score": "aps"}]}
    config = validate_config(raw)
    first, second = config.attacks
    assert isinstance(first, MetaPoisonConfig)
    assert (first.craft_steps, first.unroll_steps, first.n_surrogates) == (10, 3, 4)
    assert config.labels() == ["metapoison", "mp-aps"]
    assert attack_label(second) == "mp-aps"
    assert isinstance(build_attack(first), MetaPoison)
    assert objective_facts(second) == ("metapoison", None, "aps")
