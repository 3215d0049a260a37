"""Theorem 4.1 measured on the convex head: the gaps shrink with eps and with |D_p|."""

from __future__ import annotations

import torch

from cpoison.transfer.theorem import theorem41_table

F64 = torch.float64


def test_closed_form_gaps_shrink_with_eps_and_the_number_of_poisons():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=gen, dtype=F64)
    x = torch.randn(300, 6, generator=gen, dtype=F64)
    y = torch.multinomial((x @ w.T).softmax(1), 1, generator=gen).squeeze(1)
    eps, counts = [0.05, 0.2, 0.8], [2, 8, 32]
    rows = {(r.eps, r.n_poisons): r for r in theorem41_table(x, y, 4, eps, counts, lam=1.0)}
    for r in rows.values():
        assert r.gap_first >= -1e-9 and r.gap_second >= -1e-9  # theta_u minimises J~
        assert r.err_second < r.err_first  # the quadratic model is the better one
    for attr in ("gap_first", "gap_second"):
        for p in counts:
            vals = [getattr(rows[(e, p)], attr) for e in eps]
            assert vals == sorted(vals), (attr, p, vals)
        for e in eps:
            vals = [getattr(rows[(e, p)], attr) for p in counts]
            assert vals == sorted(vals), (attr, e, vals)
    # second order: the gap is of higher order in eps (a 16x smaller eps, >= 100x smaller gap)
    assert rows[(0.05, 8)].gap_second * 100 < rows[(0.8, 8)].gap_second
