"""The crafting loop's strength options (surrogate ensembles, retraining while crafting,
selection on the attacker's side) and the loss variants, each checked by its effect on
models with fixed seeds (digits MLPs trained in well under a second)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from attack_helpers import ALPHA, ce_gradient, make_context, train_digits_mlp

from cpoison.attacks import ConformalAttack, ConformalAttackConfig, CraftingConfig, Goal
from cpoison.attacks.alignment import align_to_ensemble
from cpoison.attacks.params import trainable
from cpoison.attacks.poison_set import PoisonSet
from cpoison.conformal import SplitConformal
from cpoison.errors import ConfigError

CRAFT = CraftingConfig(iterations=40, restarts=1, augment=False)


@pytest.fixture(scope="module")
def digits_models():
    """Eight surrogates of one architecture trained from different seeds on the same D^tr."""
    return [train_digits_mlp(seed=s) for s in range(8)]


class FakePool:
    """A SurrogatePool over pre-trained digits models; fine-tuning and fresh models train
    full-batch with Adam on D^tr plus the poisons (bases are D^tr images, replaced)."""

    def __init__(self, models, d):
        self.models, self.d = models, d
        self.finetuned = 0
        self.fresh_seeds: list[int] = []

    def ensemble(self, k, variant, archs):
        return self.models[:k]

    def _data(self, poisons):
        x, y = self.d.x[self.d.train_ids].clone(), self.d.y[self.d.train_ids]
        pos = {int(i): n for n, i in enumerate(self.d.train_ids)}
        rows = torch.tensor([pos[int(i)] for i in poisons.ids])
        x[rows] = (x[rows] + poisons.delta).clamp(0, 1)
        return x, y

    def _fit(self, model, poisons, steps, seed):
        x, y = self._data(poisons)
        torch.manual_seed(seed % 2**31)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return model.eval()

    def finetune(self, model, poisons, epochs, seed):
        self.finetuned += 1
        return self._fit(copy.deepcopy(model), poisons, 20 * epochs, seed)

    def retrain(self, index, poisons, seed):
        self.finetuned += 1
        from cpoison.models import build_model

        return self._fit(build_model("mlp", 1, 10, 8, seed=seed % 7, hidden=32), poisons, 150,
                         seed)

    def fresh(self, poisons, seed):
        self.fresh_seeds.append(seed)
        from cpoison.models import build_model

        return self._fit(build_model("mlp", 1, 10, 8, seed=1, hidden=32), poisons, 150, seed)


def _transfer_cosine(ctx, delta, held_out) -> float:
    """Mean over held-out surrogates h of cos(G_h(delta) - G_h(0), g_h): how well the change
    the perturbations make to the poisons' training gradient points along the attack's
    direction at models the crafting never saw."""
    attack = ConformalAttack(ConformalAttackConfig(loss="l2"))
    out = []
    for m in held_out:
        g, _ = attack.target_direction(ctx, m)
        change = (ce_gradient(m, (ctx.bases + delta).clamp(0, 1), ctx.base_labels)
                  - ce_gradient(m, ctx.bases, ctx.base_labels))
        out.append(float(F.cosine_similarity(change, g, dim=0)))
    return sum(out) / len(out)


def test_ensemble_direction_transfers_better_to_held_out_surrogates(digits_models) -> None:
    """Aligned with 4 surrogates, the poisons transfer better to 4 held-out ones than aligned
    with 1 (measured: 0.745 vs 0.701 mean cosine; on the surrogates crafted on, 0.98 both)."""
    d = digits_models[0]
    models = [m.model for m in digits_models]
    ctx = make_context(d, n_bases=100)
    cosines = {}
    for k in (1, 4):
        crafting = CRAFT.model_copy(update={"ensemble": k, "iterations": 100})
        ctx.surrogates = FakePool(models[:4], d)
        poisons = ConformalAttack(ConformalAttackConfig(loss="l2", crafting=crafting)).craft(ctx)
        cosines[k] = _transfer_cosine(ctx, poisons.delta, models[4:])
    assert cosines[4] > cosines[1] + 0.02, cosines


@pytest.mark.parametrize("mode", ["finetune", "scratch"])
def test_retraining_changes_the_adversarial_gradient(digits_models, mode) -> None:
    d = digits_models[0]
    ctx = make_context(d, n_bases=40)
    pool = FakePool([d.model], d)
    ctx.surrogates = pool
    cfg = ConformalAttackConfig(loss="l2", crafting=CRAFT.model_copy(
        update={"retrain_every": 10, "retrain_epochs": 1, "retrain": mode}))
    poisons = ConformalAttack(cfg).craft(ctx)
    assert pool.finetuned == 3  # at iterations 10, 20 and 30 of 40
    attack = ConformalAttack(ConformalAttackConfig(loss="l2"))
    g_star, _ = attack.target_direction(ctx)
    tuned = pool.finetune(d.model, poisons, 1, 0)
    g_tuned, _ = attack.target_direction(ctx, tuned)
    assert float(F.cosine_similarity(g_star, g_tuned, dim=0)) < 0.99


def test_validation_selection_keeps_the_candidate_with_the_best_attacker_objective(
        digits_models) -> None:
    d = digits_models[0]
    ctx = make_context(d, n_bases=40)
    pool = FakePool([d.model], d)
    ctx.surrogates = pool
    cfg = ConformalAttackConfig(loss="l2", crafting=CRAFT.model_copy(
        update={"restarts": 3, "select": "validation"}))
    attack = ConformalAttack(cfg)
    poisons = attack.craft(ctx)
    scores = poisons.meta["selection_scores"]
    assert len(scores) == 3 and len(set(pool.fresh_seeds)) == 1  # paired: one seed for all
    # re-measure every restart's candidate on the attacker's side: the kept one is the best
    candidates = []
    for r in range(3):
        one = cfg.crafting.model_copy(update={"restarts": 1, "select": "loss"})
        seeded = align_to_ensemble([d.model], lambda m: attack.target_direction(ctx, m)[0],
                                   ctx.bases, ctx.base_labels, ctx.eps,
                                   one.model_copy(update={"restarts": r + 1}), 0)
        candidates.append(seeded)
    kept = min(range(3), key=lambda i: scores[i])
    objective = attack.goal_on(ctx, pool.fresh(poisons, pool.fresh_seeds[0]))
    assert objective == pytest.approx(scores[kept])
    assert scores[kept] <= min(scores)


def test_select_callback_decides_over_the_alignment_loss(digits_models) -> None:
    """The loop keeps the candidate ``select`` scores lowest, not the lowest loss."""
    d = digits_models[0]
    ctx = make_context(d, n_bases=20)
    g, _ = ConformalAttack(ConformalAttackConfig(loss="l2")).target_direction(ctx)
    seen: list[torch.Tensor] = []

    def select(cands):
        seen.extend(cands)
        return [0.5, 0.1, 0.9]

    result = align_to_ensemble([d.model], lambda m: g, ctx.bases, ctx.base_labels, ctx.eps,
                               CRAFT.model_copy(update={"restarts": 3}), 0, select=select)
    assert torch.equal(result.delta, seen[1]) and result.selection == [0.5, 0.1, 0.9]


def test_pool_options_without_a_pool_are_one_clear_error(digits_models) -> None:
    ctx = make_context(digits_models[0])
    cfg = ConformalAttackConfig(crafting=CRAFT.model_copy(update={"ensemble": 2}))
    with pytest.raises(ConfigError, match="ensemble"):
        ConformalAttack(cfg).craft(ctx)


def _p_true_after_step(ctx, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(p(y*) on the targets, y* in the HPS sets) after a step of the surrogate along -g."""
    model = copy.deepcopy(ctx.surrogate)
    g, _ = ConformalAttack(cfg).target_direction(ctx, model)
    with torch.no_grad():
        offset = 0
        for p in trainable(model):
            n = p.numel()
            p -= 0.05 * (g[offset:offset + n] / g.norm()).reshape(p.shape)
            offset += n
        cal_logits, logits = model(ctx.cal_x), model(ctx.target_x)
    sets = SplitConformal("hps", ALPHA).calibrate(cal_logits, ctx.cal_y).predict(logits)
    p_true = torch.softmax(logits, 1).gather(1, ctx.target_y[:, None]).squeeze(1)
    return p_true, sets.gather(1, ctx.target_y[:, None]).squeeze(1)


def test_underconfidence_keeps_the_true_label_in_the_set(digits_models) -> None:
    """Through HPS, pulling y*_v in with the labels to add (Eq. 7 as written) raises p(y*), so
    the sets cannot widen; with ``true_label: keep`` y*_v takes the keep hinge: a step
    along -g lowers p(y*) (the sets can widen) and y* stays in as many sets as before."""
    ctx = make_context(digits_models[0], goal=Goal(kind="underconfidence", add_top=3))
    with torch.no_grad():
        logits0, cal0 = ctx.surrogate(ctx.target_x), ctx.surrogate(ctx.cal_x)
    p0 = torch.softmax(logits0, 1).gather(1, ctx.target_y[:, None]).squeeze(1)
    in0 = SplitConformal("hps", ALPHA).calibrate(cal0, ctx.cal_y).predict(logits0).gather(
        1, ctx.target_y[:, None]).squeeze(1)
    keep, in_keep = _p_true_after_step(ctx, ConformalAttackConfig(loss="l2"))
    pull, _ = _p_true_after_step(ctx, ConformalAttackConfig(loss="l2", true_label="pull"))
    assert float(keep.mean()) < float(p0.mean()) - 0.01
    assert float(pull.mean()) > float(p0.mean()) + 0.01
    assert int(in_keep.sum()) >= int(in0.sum())


@pytest.mark.parametrize("shape", [dict(calibration="detached"), dict(hinge="boundary"),
                                   dict(hinge="soft")])
def test_loss_variants_lower_the_targets_set_size_loss(digits_models, shape) -> None:
    """Every variant's gradient is a descent direction of the HPS l2 on the targets."""
    from attack_helpers import hps_l2

    from cpoison.attacks.params import shifted

    ctx = make_context(digits_models[0])
    g, _ = ConformalAttack(ConformalAttackConfig(loss="l2", **shape)).target_direction(ctx)
    loss = hps_l2(ctx)
    with torch.no_grad():
        before = float(loss(ctx.surrogate))
    with shifted(trainable(ctx.surrogate), -1e-3 * g / g.norm()), torch.no_grad():
        after = float(loss(ctx.surrogate))
    assert after < before


def test_new_fields_at_their_legacy_values_keep_the_config_dump() -> None:
    """Configs that do not use the new options dump (and so key) as before them."""
    old = ConformalAttackConfig(true_label="pull").model_dump(mode="json")
    assert "ensemble" not in old["crafting"] and "hinge" not in old and "true_label" not in old
    new = ConformalAttackConfig(crafting=CraftingConfig(ensemble=2)).model_dump(mode="json")
    assert new["crafting"]["ensemble"] == 2 and new["true_label"] == "keep"
    assert PoisonSet  # the module's public names stay importable
