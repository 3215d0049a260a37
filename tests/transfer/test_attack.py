"""The attack in the transfer setting and on full CP (SPEC 3.5, 4.2, 5.1, 5.2), on digits
with a small MLP extractor pretrained on a disjoint public part (fixed seeds)."""

from __future__ import annotations

import pytest
import torch
from transfer_helpers import K, digits_transfer

from cpoison.attacks import CraftingConfig, Goal, PoisonSet
from cpoison.attacks.losses import logit_scorer, relaxed_loss
from cpoison.attacks.params import flat_grad, trainable
from cpoison.conformal import build_score
from cpoison.transfer.attack import (
    craft_transfer_poisons,
    evaluate_full_cp_victims,
    full_cp_loss_data,
    head_target_direction,
    poison_features,
)
from cpoison.transfer.head import add_bias_column, fit_head, head_hessian, linear_order

ALPHA, EPS, LAM = 0.05, 16 / 255, 1.0


@pytest.fixture(scope="module")
def setup():
    d = digits_transfer()
    ax, ay = d.features[d.attacker_ids], d.labels[d.attacker_ids]
    head = fit_head(ax, ay, K, LAM)
    return d, ax, ay, head


def targets_and_bases(d, head, cls: int):
    tf, tl = d.test_features, d.test_labels
    correct = head.logits(tf).argmax(1) == tl
    tid = torch.nonzero(correct & (tl == cls)).flatten()[:10]
    rest = torch.ones(tl.numel(), dtype=torch.bool)
    rest[tid] = False
    bids = d.attacker_ids[d.labels[d.attacker_ids] == cls][:25]
    return tid, rest, bids


def craft(d, head, ax, ay, tid, bids, order):
    g, facts = head_target_direction(head, ax, ay, d.test_features[tid], d.test_labels[tid],
                                     score="nll", alpha=ALPHA, order=order)
    cfg = CraftingConfig(iterations=100, restarts=1, augment=False)
    return craft_transfer_poisons(d.extractor, head, d.images[bids].float() / 255,
                                  d.labels[bids], bids, g, EPS, cfg, seed=0, facts=facts)


def randun(d, bids, seed=5):
    base = d.images[bids].float() / 255
    gen = torch.Generator().manual_seed(seed)
    delta = (torch.rand(base.shape, generator=gen) * 2 - 1) * EPS
    return PoisonSet(bids, (base + delta).clamp(0, 1) - base, True)


def test_direction_is_eq7_gradient_with_training_scores_and_second_order_solves(setup):
    d, ax, ay, head = setup
    tid, _, _ = targets_and_bases(d, head, 3)
    tf, tl = d.test_features[tid], d.test_labels[tid]
    g1, facts = head_target_direction(head, ax, ay, tf, tl, score="hps", alpha=ALPHA,
                                      loss="l2", order=1)
    lin = head.linear()
    data = full_cp_loss_data(head, ax, ay, tf, tl, "hps", Goal(), ALPHA, 0)
    loss = relaxed_loss(lin, logit_scorer(build_score("hps")), Goal(), data, ALPHA)
    torch.testing.assert_close(g1, flat_grad(loss, trainable(lin)))
    assert facts["l2_surrogate"] == pytest.approx(float(loss.detach()))
    g2, facts2 = head_target_direction(head, ax, ay, tf, tl, score="hps", alpha=ALPHA,
                                       loss="l2", order=2, damping=0.1)
    perm = linear_order(K, head.feature_dim)
    h = head_hessian(add_bias_column(ax), head.theta, LAM)[perm][:, perm]
    torch.testing.assert_close(h @ g2 + 0.1 * g2, g1, rtol=1e-8, atol=1e-10)
    assert facts2["cg_residual"] < 1e-10


def test_crafted_poisons_lower_the_refit_attack_loss_more_than_random_noise(setup):
    """Refitting the attacker's head with the poisons injected lowers Eq. 7 on the targets
    more for crafted poisons than for RandUn noise of the same eps (both clean-label)."""
    d, ax, ay, head = setup
    tid, _, bids = targets_and_bases(d, head, 3)
    tf, tl = d.test_features[tid], d.test_labels[tid]
    crafted = craft(d, head, ax, ay, tid, bids, order=2)
    assert crafted.linf <= EPS + 1e-6
    data = full_cp_loss_data(head, ax, ay, tf, tl, "nll", Goal(), ALPHA, 0)
    scorer = logit_scorer(build_score("nll"))

    def refit_loss(poisons):
        px = poison_features(d.extractor, d.images, poisons).double()
        refit = fit_head(torch.cat([ax.double(), px]), torch.cat([ay, d.labels[bids]]), K, LAM,
                         init=head.theta)
        with torch.no_grad():
            return float(relaxed_loss(refit.linear(), scorer, Goal(), data, ALPHA))

    base = refit_loss(PoisonSet(bids, torch.zeros_like(crafted.delta), True))
    ours, noise = refit_loss(crafted), refit_loss(randun(d, bids))
    assert ours < noise
    assert ours < base


@pytest.mark.xfail(strict=True, reason=(
    "measured on digits (10 targets, 25 poisons, 2 victims of 400, alpha 0.05, HPS, second "
    "order): mean target full-CP set 2.25 benign -> 2.00 crafted vs 1.95 RandUn for class 3, "
    "1.15 -> 1.00 vs 1.00 for class 5; over all 10 classes 18.4 -> 14.1 for both. Injecting "
    "target-class images shrinks the sets; the crafted perturbation adds nothing measurable "
    "at eps = 16/255 on 8x8 digits with this extractor"))
def test_crafted_poisons_shrink_full_cp_sets_of_fresh_victims_more_than_randun(setup):
    d, ax, ay, head = setup
    sizes = {"ours": 0.0, "randun": 0.0}
    for cls in (3, 5):
        tid, rest, bids = targets_and_bases(d, head, cls)
        crafted = craft(d, head, ax, ay, tid, bids, order=2)
        for name, poisons in (("ours", crafted), ("randun", randun(d, bids))):
            rep = evaluate_full_cp_victims(
                d.extractor, d.images, d.labels, d.victim_ids, d.features[d.victim_ids],
                poisons, d.test_features[tid], d.test_labels[tid], d.test_features[rest],
                d.test_labels[rest], K, score="hps", alpha=ALPHA, victims=2, victim_size=400,
                lam=LAM, seed=1)
            assert rep.mean_poisoned_size <= rep.mean_benign_size
            assert min(rep.poisoned_coverage) >= 1 - ALPHA - 0.02
            sizes[name] += rep.mean_poisoned_size
    assert sizes["ours"] < sizes["randun"]


def test_implicit_attack_lowers_the_loss_at_the_refitted_head(setup):
    """craft_implicit (the exact implicit gradient at the head refitted on D^tr + poisons)
    lowers the HPS l2 of Eq. 7 at the refitted head below the clean bases' and RandUn's,
    records its Cholesky residual, and stays eps-bounded and in [0, 1]."""
    from cpoison.transfer.attack import TransferAttackData, craft_implicit

    d, ax, ay, head = setup
    tid, _, bids = targets_and_bases(d, head, 3)
    tf, tl = d.test_features[tid].double(), d.test_labels[tid]
    data = TransferAttackData(d.extractor, ax.double(), ay, d.attacker_ids, LAM, K)
    bases = d.images[bids].float() / 255
    poisons = craft_implicit(data, bases, d.labels[bids], bids, ax.double(), ay, tf, tl, True,
                             "hps", Goal(), ALPHA, EPS, "l2", 0.0, steps=6, lr=0.3, seed=0)
    assert poisons.linf <= EPS + 1e-6 and float((bases + poisons.delta).min()) >= 0
    assert poisons.meta["cg_residual"] < 1e-8
    assert len(poisons.meta["implicit_losses"]) == 7

    def refit_loss(p: PoisonSet) -> float:
        px = poison_features(d.extractor, d.images, p).double()
        refit = fit_head(torch.cat([ax.double(), px]), torch.cat([ay, d.labels[bids]]), K, LAM)
        return head_target_direction(refit, ax, ay, tf, tl, "hps", Goal(), ALPHA, "l2")[1][
            "l2_surrogate"]

    clean = refit_loss(PoisonSet(bids, torch.zeros_like(poisons.delta), True))
    ours, noise = refit_loss(poisons), refit_loss(randun(d, bids))
    assert abs(ours - poisons.meta["l2_refit"]) < 1e-6 * max(1.0, abs(ours))
    assert ours < clean and ours < noise
