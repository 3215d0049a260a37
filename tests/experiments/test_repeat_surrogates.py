"""The from-scratch setting's attacker models (RepeatSurrogates) and base selection by
gradient norm, on a tiny synthetic pool (one-epoch MLPs, seconds)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cpoison.attacks.base_selection import gradient_norms, largest_gradient_norm
from cpoison.attacks.poison_set import PoisonSet
from cpoison.data import ImageDataset
from cpoison.engine.artifacts import ArtifactStore
from cpoison.experiments.presets import get_preset
from cpoison.experiments.surrogates import RepeatSurrogates
from cpoison.experiments.workspace import Workspace
from cpoison.training import Recipe


def _workspace(store) -> Workspace:
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 255, (240, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(240) % 3
    ds = ImageDataset("tiny", train, labels, train[:30].clone(), labels[:30].clone(),
                      ("a", "b", "c"))
    preset = get_preset("digits", "cpu").model_copy(update={
        "dataset": "tiny", "model_kwargs": {"hidden": 16},
        "recipe": Recipe(epochs=2, crop_padding=0, flip=False)})
    return Workspace.for_dataset(ds, preset, ArtifactStore(store), torch.device("cpu"),
                                 progress=False)


def test_ensemble_members_are_stored_and_shared(tmp_path) -> None:
    ws = _workspace(tmp_path)
    surrogate = ws.train(ws.trainset(ws.split.attacker_train), 1, desc="surrogate")
    pool = RepeatSurrogates(ws, surrogate, seed=7)
    models = pool.ensemble(3, "seeds", ())
    assert models[0] is surrogate and len(models) == 3
    flat = [torch.cat([p.flatten() for p in m.parameters()]) for m in models]
    assert not torch.equal(flat[1], flat[2])  # other seeds, other weights
    trained = len(ws.trained)
    again = RepeatSurrogates(ws, surrogate, seed=7).ensemble(3, "seeds", ())
    assert len(ws.trained) == trained  # loaded from the store, not trained again
    assert torch.equal(torch.cat([p.flatten() for p in again[2].parameters()]), flat[2])
    boot = pool.ensemble(2, "bootstrap", ())[1]
    assert not torch.equal(torch.cat([p.flatten() for p in boot.parameters()]), flat[1])


def test_finetune_and_fresh_models_see_the_poisons_in_the_attackers_data(tmp_path) -> None:
    ws = _workspace(tmp_path)
    surrogate = ws.train(ws.trainset(ws.split.attacker_train), 1, desc="surrogate")
    pool = RepeatSurrogates(ws, surrogate, seed=7)
    ids = ws.split.attacker_train[:12]
    poisons = PoisonSet(ids, torch.full((12, 1, 8, 8), 0.06), inject=True)
    data = pool.attacker_data(poisons)
    assert len(data) == ws.split.attacker_train.numel()  # D^tr bases replaced, not added
    x, _ = data.load(torch.arange(12))
    clean = ws.dataset.train_images[ids].float() / 255
    assert torch.allclose(x, (clean + 0.06).clamp(0, 1))
    tuned = pool.finetune(surrogate, poisons, 1, seed=3)
    assert tuned is not surrogate
    assert not torch.equal(next(tuned.parameters()), next(surrogate.parameters()))
    fresh = pool.fresh(poisons, seed=3)
    assert pool.fresh(poisons, seed=3) is not fresh and len(ws.trained) == 2  # stored


def test_gradient_norm_selection_takes_the_largest_per_sample_gradients(tmp_path) -> None:
    ws = _workspace(tmp_path)
    model = ws.train(ws.trainset(ws.split.attacker_train), 1, desc="surrogate")
    pool = ws.split.attacker_train[:40]
    images, labels = ws.dataset.train_images, ws.dataset.train_labels
    norms = gradient_norms(model, images[pool], labels[pool])
    for i in (0, 17):  # against a plain per-image backward pass
        model.zero_grad()
        F.cross_entropy(model(images[pool[i:i + 1]].float() / 255), labels[pool[i:i + 1]]
                        ).backward()
        direct = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
        assert float(norms[i]) == float(direct) or abs(float(norms[i] - direct)) < 1e-5
    chosen = largest_gradient_norm(model, pool, images, labels, 5)
    assert set(chosen.tolist()) == set(pool[norms.argsort(descending=True)[:5]].tolist())


def test_retrain_from_scratch_trains_fresh_weights_on_the_poisoned_fold(tmp_path) -> None:
    ws = _workspace(tmp_path)
    surrogate = ws.train(ws.trainset(ws.split.attacker_train), 1, desc="surrogate")
    pool = RepeatSurrogates(ws, surrogate, seed=7)
    poisons = PoisonSet(ws.split.attacker_train[:12], torch.full((12, 1, 8, 8), 0.06))
    a, b = pool.retrain(0, poisons, seed=3), pool.retrain(0, poisons, seed=3)
    assert torch.equal(next(a.parameters()), next(b.parameters()))  # seeded
    assert not torch.equal(next(a.parameters()), next(surrogate.parameters()))
