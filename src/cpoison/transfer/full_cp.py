"""Full (transductive) conformal prediction for the convex head on frozen features (SPEC 3.5).

For a test point ``x`` and each candidate label ``y``: ``theta_y`` is the head
(:mod:`cpoison.transfer.head`) fitted on the training data ``D = {(X_i, Y_i)}_{i <= n}`` plus
``(x, y)``; with any SPEC 3.1 score ``S`` (HPS, APS with given ``u``, RAPS),
``S_i = S(X_i, Y_i; theta_y)`` for ``i <= n`` and ``S_{n+1} = S(x, y; theta_y)``;

    p(y) = |{i <= n + 1 : S_i >= S_{n+1}}| / (n + 1),      C(x) = {y : p(y) > alpha}.

Under exchangeability of the ``n + 1`` points, ``P(Y_{n+1} in C(X_{n+1})) >= 1 - alpha``
(Vovk et al. 2005), because the fit is a symmetric function of the ``n + 1`` points.

Three ways to get ``theta_y`` (``method``):

* ``"exact"``: refit warm-started from the head ``theta*`` fitted on ``D``, until the
  per-point gradient norm ``||grad J_{D + (x, y)}(theta)|| / (n + 1)`` is below ``tol``
  (default ``1e-9``). The refits of all candidates (test points x labels) run as one batch
  of *chord* (fixed-Hessian Newton) iterations
  ``theta <- theta - H*^-1 grad J_{D + (x, y)}(theta)`` with ``H*`` the exact Hessian of
  ``J_D`` at ``theta*``, factorised once by Cholesky; the iteration contracts at a rate of
  order ``1 / n`` (one point changes ``H`` by ``O(1 / n)`` relatively), so a few iterations
  reach the tolerance. A candidate still above it after ``max_chord_iter`` iterations is
  refit by Newton's method with its own exact Hessian (:func:`~cpoison.transfer.head.fit_head`
  warm-started from where it stands; it raises if even that fails). The first chord
  iteration *is* the influence approximation below.
* ``"influence"``: ``theta_y ~ theta* - H^-1 grad l((x, y); theta*) / (n + 1)`` with
  ``H = nabla^2 J_D(theta*) / (n + 1)``, the exact Hessian of the penalised loss per point of
  the augmented set (the new point's own curvature, ``O(1 / n)`` of ``H``, is left out so that
  one Cholesky factorisation serves every candidate). Equivalently one Newton step from
  ``theta*`` with the training Hessian. All gradients are solved at once.
  The ``K`` candidates of one test point share their solves: the gradient is
  ``(p - e_y) kron x``, so ``H^-1 grad = M_x (p - e_y)`` with ``M_x = H^-1 (I_K kron x)``
  (``K`` columns, read off the explicit inverse of ``H``, computed once).
* ``"naive"``: refit from scratch (zeros) by Newton's method for every candidate: the brute
  force reference for the tests and the benchmark.

*Screening* (``screen=True``, default; the sets are exactly those without it). The p-value
counts the training points whose score under ``theta_y`` reaches the test point's. A
candidate's head moves training point ``i``'s *centred* logit ``z_ic - mean_l z_il`` by
``a_ic^T d`` with ``a_ic = (e_c - 1/K) kron x_i`` and ``d = theta_y - theta*``, at most
``sqrt(a_ic^T H*^-1 a_ic) ||d||_H*`` (Cauchy-Schwarz in the inner product of the training
Hessian ``H*``: the point's leverage, computed once, times the candidate's step length, one
number per candidate). Every score sees the logits only through the softmax, which the
centring leaves unchanged; without it the leverage would count the shift shared by all K
logits (along ``1_K kron w``, where ``H*`` has only the penalty's curvature ``lam``),
which no score sees. That bounds the score:

* HPS's ``1 - p_y`` and NLL's ``-log p_y`` decrease with the label's log-odds, which move
  by at most twice the logit bound (a tight interval for confidently fitted points);
* APS and RAPS move by at most twice the logit bound as long as no label's probability
  comes within that distance of ``p_y``'s (their ranks cannot change, so neither can
  RAPS's penalty).

A training point whose score interval lies entirely on one side of the test point's score
is counted (or not) without being rescored. That bounds the count, hence ``p(y)``; where
both bounds put the label on the same side of ``alpha`` its membership is decided, and only
the other candidates' undecided points are rescored (their p-values are then exact; the
others are returned as an interval, see :class:`FullCPResult`). Other scores are rescored
in full, and so is every later chunk of test points once a chunk had to rescore more than
3/4 of its scores anyway (the bounds are too loose there to save time).

Cost: without screening every method scores the ``n + 1`` points under ``|test| x K``
heads, so the training set of full CP is a seeded subset of ``subset_size`` points (default
2,000; ``None`` for the whole set; a subset larger than the data is an error). Candidates
are processed in chunks of test points so memory stays bounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from cpoison.conformal.quantile import check_alpha
from cpoison.conformal.scores import APS, HPS, NLL, RAPS, ConformalScore, build_score, draw_uniform
from cpoison.errors import ConfigError, CpoisonError
from cpoison.seeding import derive_seed, make_generator
from cpoison.transfer.head import (
    F64,
    FittedHead,
    add_bias_column,
    check_lam,
    fit_head,
    head_hessian,
)

__all__ = [
    "DEFAULT_SUBSET_SIZE",
    "FullConformal",
    "FullCPResult",
    "Method",
    "SubsetTooLargeError",
    "full_cp_sets",
    "select_subset",
]

DEFAULT_SUBSET_SIZE = 2000
Method = Literal["exact", "influence", "naive"]
_METHODS = ("exact", "influence", "naive")


class SubsetTooLargeError(ConfigError):
    """The full-CP training subset asks for more points than the training data has."""


def select_subset(n: int, subset_size: int | None, seed: int) -> Tensor:
    """Sorted indices of a seeded random subset of ``subset_size`` of ``n`` points
    (``None``: all of them). Raises :class:`SubsetTooLargeError` when ``subset_size > n``."""
    if subset_size is None:
        return torch.arange(n)
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
        raise ConfigError(
            f"full-CP subset_size must be a positive integer or None, got {subset_size!r}"
        )
    if subset_size > n:
        raise SubsetTooLargeError(
            f"the full-CP training subset has {subset_size} points but the training data has "
            f"only {n}; use subset_size <= {n} or subset_size=None for the whole set"
        )
    gen = make_generator(derive_seed(seed, "full-cp-subset"))
    return torch.randperm(n, generator=gen)[:subset_size].sort().values


@dataclass
class FullCPResult:
    """Full-CP output for ``N`` test points and ``K`` labels.

    ``sets`` bool ``[N, K]``; ``p_values`` float64 ``[N, K]`` and ``p_values_upper``: the
    p-value lies in ``[p_values, p_values_upper]``, exact where the two are equal (always
    without screening; with it, wherever the bounds could not decide the label's membership
    of the set, so the sets are exact everywhere); ``seconds`` wall time of the prediction
    (the fit of ``theta*`` excluded); ``n_train`` the ``n`` used; for ``exact``,
    ``chord_iterations`` (the largest number any chunk needed), ``fallbacks`` (candidates that
    needed Newton refits) and ``max_grad_norm`` (the largest final per-point gradient norm);
    ``extra["rescored_share"]``: the share of (candidate, training point) scores computed
    (1 without screening).
    """

    sets: Tensor
    p_values: Tensor
    p_values_upper: Tensor
    method: str
    seconds: float
    n_train: int
    chord_iterations: int = 0
    fallbacks: int = 0
    max_grad_norm: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


# added to every screening bound: covers the rounding of scores computed in float64
_SLACK = 1e-9
# a chunk of candidates that rescored more than this share of its scores ends screening
# (measured on digits: APS and RAPS rescore 0.93 of their scores, slower than no screening)
_STOP_SCREENING = 0.75


def _screen_kind(score: ConformalScore) -> str | None:
    """How a score's move is bounded from the max-norm move ``L`` of the logits ``z / T``:

    * ``"hps"`` / ``"nll"``: monotone in the label's log-odds ``z_y - logsumexp_{c != y} z_c``,
      which moves by at most ``2 L``; the score lies between its values at the log-odds'
      extremes (``1 - sigmoid`` for HPS, ``softplus(-.)`` for NLL), a tight interval for
      confidently fitted points;
    * ``"aps"`` (APS, RAPS): ``|d S| <= ||d p||_1 <= range(d z) <= 2 L`` while no label's
      probability is within ``2 L`` of ``p_y`` (then no rank, hence no RAPS penalty, changes);
    * ``None``: no known bound (screening off).

    Exact types only: a subclass may score otherwise."""
    kind = type(score)
    if kind is HPS:
        return "hps"
    if kind is NLL:
        return "nll"
    if kind in (APS, RAPS):
        return "aps"
    return None


def _data_gradient(xa: Tensor, onehot_t: Tensor, theta: Tensor) -> Tensor:
    """``sum_i (softmax(theta_b x_i) - e_{y_i}) x_i^T`` for a batch ``theta`` ``[B, K, d1]``."""
    b, k, d1 = theta.shape
    z = (theta.reshape(b * k, d1) @ xa.T).view(b, k, -1)  # [B, K, n]
    r = torch.softmax(z, dim=1).sub_(onehot_t)
    return r @ xa  # [B, K, d1]


def _point_gradient(theta: Tensor, xt: Tensor, yt: Tensor) -> Tensor:
    """``(softmax(theta_b x_b) - e_{y_b}) x_b^T`` ``[B, K, d1]`` of each candidate's own point."""
    zt = torch.einsum("bkd,bd->bk", theta, xt)
    rt = torch.softmax(zt, dim=1)
    rt[torch.arange(yt.numel(), device=yt.device), yt] -= 1.0
    return rt[:, :, None] * xt[:, None, :]


class FullConformal:
    """Full conformal prediction with the convex head (SPEC 3.5); see the module doc.

    Args:
        score: a :class:`ConformalScore` or its name (``hps``, ``aps``, ``raps``; randomized
            scores take ``u`` per point, given or drawn from a generator).
        alpha: miscoverage level in (0, 1).
        method: ``"exact"`` (default), ``"influence"`` or ``"naive"``.
        lam: the head's L2 penalty (sum-form objective, :mod:`cpoison.transfer.head`).
        tol: per-point gradient-norm tolerance of every fit and refit.
        subset_size: training points used (seeded subset); ``None`` for all.
        seed: seed of the subset.
        max_chord_iter: chord iterations before a candidate falls back to Newton refits.
        chunk_elements: logits entries (``candidates x (n + 1) x K``) processed at once.
        screen: count the training points whose scores provably stay on one side of the
            test point's without rescoring them (module doc; the same sets either way).
    """

    def __init__(
        self,
        score: ConformalScore | str = "hps",
        alpha: float = 0.1,
        method: Method = "exact",
        lam: float = 1.0,
        tol: float = 1e-9,
        subset_size: int | None = DEFAULT_SUBSET_SIZE,
        seed: int = 0,
        max_chord_iter: int = 30,
        chunk_elements: int = 1 << 22,
        screen: bool = True,
    ) -> None:
        self.score = build_score(score) if isinstance(score, str) else score
        if not isinstance(self.score, ConformalScore):
            raise ConfigError(f"score must be a ConformalScore or its name, got {score!r}")
        self.alpha = check_alpha(alpha)
        if method not in _METHODS:
            raise ConfigError(f"full-CP method must be one of {', '.join(_METHODS)}, "
                              f"got {method!r}")
        self.method = method
        self.lam = check_lam(lam)
        self.tol = float(tol)
        self.subset_size = subset_size
        self.seed = seed
        self.max_chord_iter = int(max_chord_iter)
        self.chunk_elements = int(chunk_elements)
        self.screen = bool(screen)
        self.head: FittedHead | None = None
        self._screening: str | None = None
        self._rescored = 0

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        features: Tensor,
        labels: Tensor,
        num_classes: int,
        u: Tensor | None = None,
        generator: torch.Generator | None = None,
        init: Tensor | None = None,
    ) -> FullConformal:
        """Select the training subset, fit ``theta*`` on it and factorise its Hessian.

        ``u`` (``[N_train]``, for randomized scores) is indexed with the same subset; when it
        is ``None`` a randomized score draws it from ``generator`` (required then).
        ``init`` warm-starts the fit of ``theta*``.
        """
        idx = select_subset(int(features.shape[0]), self.subset_size, self.seed)
        idx = idx.to(features.device)
        self.xa = add_bias_column(features[idx])
        self.y = labels.to(features.device)[idx].long()
        self.num_classes = int(num_classes)
        n = self.xa.shape[0]
        if self.score.randomized:
            if u is None:
                u = draw_uniform(int(features.shape[0]), generator, self.xa,
                                 what=f"full CP with randomized {self.score.name.upper()}")
            self.u = u.to(device=features.device, dtype=F64)[idx]
        else:
            self.u = None
        self.head = fit_head(features[idx], self.y, num_classes, self.lam, self.tol,
                             init=init)
        self.onehot_t = torch.nn.functional.one_hot(self.y, num_classes).to(F64).T  # [K, n]
        self.n = n
        self._screening = _screen_kind(self.score) if self.screen else None
        if self.method != "naive" or self._screening is not None:
            self.hess = head_hessian(self.xa, self.head.theta, self.lam)
            self.chol = torch.linalg.cholesky(self.hess)
            k, d1 = self.head.theta.shape
            self.hinv = torch.cholesky_inverse(self.chol).view(k, d1, k, d1)
        if self._screening is not None:
            z = (self.head.theta @ self.xa.T / self.score.temperature).T  # [n, K]
            own = z.gather(1, self.y[:, None])[:, 0]
            others = z.scatter(1, self.y[:, None], float("-inf")).logsumexp(dim=1)
            self.log_odds = own - others
            # sqrt(max_c a_ic^T H^-1 a_ic), a_ic = (e_c - 1/K) kron x_i: the move of the
            # *centred* logit z_ic - mean_l z_il is a_ic^T d <= this * ||d||_H (module doc)
            # = x_i^T B_c x_i, B_c = Hinv_cc - (2/K) sum_l Hinv_cl + (1/K^2) sum_kl Hinv_kl
            # (H^-1 symmetric), so memory stays at K blocks of d1 x d1
            idx = torch.arange(k, device=self.xa.device)
            rows = self.hinv.sum(dim=2)  # [K, d1, d1]: sum_l Hinv[c, :, l, :]
            blocks = self.hinv[idx, :, idx, :] - (2.0 / k) * rows + rows.sum(dim=0) / k**2
            lev = torch.einsum("nd,cde,ne->nc", self.xa, blocks, self.xa)
            self.leverage = lev.amax(dim=1).clamp_min(0).sqrt()
            if self._screening == "aps":  # scores at theta*, and the distance of p_y to
                # the nearest other label's p (no rank change within it)
                self.s_star = self.score.score_labels_no_grad(
                    (self.head.theta @ self.xa.T).T, self.y, u=self.u)
                prob = torch.softmax(z, dim=1)
                gap = (prob - prob.gather(1, self.y[:, None])).abs()
                gap.scatter_(1, self.y[:, None], float("inf"))
                self.rank_gap = gap.amin(dim=1)
        return self

    # -- prediction ------------------------------------------------------------------------

    def predict(
        self,
        features: Tensor,
        u: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> FullCPResult:
        """Full-CP sets and p-values of test feature rows ``[N, D]``.

        ``u`` ``[N]`` (randomized scores; one uniform per test input, shared across its
        candidate labels), else drawn from ``generator``.
        """
        if self.head is None:
            raise CpoisonError("full CP is not fitted: call fit() before predict()")
        start = time.perf_counter()
        xt_all = add_bias_column(features.to(self.xa.device))
        n_test, k = xt_all.shape[0], self.num_classes
        ut_all = None
        if self.score.randomized:
            if u is None:
                u = draw_uniform(n_test, generator, xt_all, what="full CP test points")
            ut_all = u.to(device=self.xa.device, dtype=F64)
        p_values = torch.empty(n_test, k, dtype=F64, device=self.xa.device)
        p_upper = torch.empty_like(p_values)
        self._rescored = 0  # (candidate, training point) scores computed, for the record
        per_chunk = max(1, self.chunk_elements // (k * k * (self.n + 1)))
        iters, fallbacks, max_gn = 0, 0, 0.0
        screening = self._screening is not None
        for s in range(0, n_test, per_chunk):
            xt = xt_all[s : s + per_chunk].repeat_interleave(k, dim=0)  # [B, d1]
            yt = torch.arange(k, device=xt.device).repeat(min(per_chunk, n_test - s))
            ut = None if ut_all is None else ut_all[s : s + per_chunk].repeat_interleave(k)
            h_norm2 = None
            if self.method == "influence":
                theta, h_norm2 = self._influence(xt, yt)
            elif self.method == "exact":
                theta, it, fb, gn = self._exact(xt, yt)
                iters, fallbacks, max_gn = max(iters, it), fallbacks + fb, max(max_gn, gn)
            else:
                theta, gn = self._naive(xt, yt)
                max_gn = max(max_gn, gn)
            before = self._rescored
            low, high = self._p_values(theta, xt, yt, ut, h_norm2, screening)
            # bounds too loose to pay (most scores rescored anyway): rescore plainly from now
            screening &= (self._rescored - before) <= _STOP_SCREENING * xt.shape[0] * self.n
            p_values[s : s + per_chunk], p_upper[s : s + per_chunk] = low.view(-1, k), high.view(
                -1, k)
        sets = p_values > self.alpha
        extra = {"rescored_share": self._rescored / max(1, n_test * k * self.n)}
        return FullCPResult(sets, p_values, p_upper, self.method, time.perf_counter() - start,
                            self.n, iters, fallbacks, max_gn, extra)

    def _influence(self, xt: Tensor, yt: Tensor) -> tuple[Tensor, Tensor]:
        """``theta* - H^-1 (p - e_y) kron x`` for candidates grouped by test point (``K``
        consecutive rows share ``x``): ``M_x = H^-1 (I_K kron x)`` once per test point; and
        each step's squared ``H``-norm, ``g^T H^-1 g``."""
        theta0 = self.head.theta  # type: ignore[union-attr]
        k = self.num_classes
        x = xt[::k]  # [N, d1]
        m = torch.einsum("kdle,ne->nlkd", self.hinv, x)  # [N, K (column l), K, d1]
        r = torch.softmax(x @ theta0.T, dim=1).repeat_interleave(k, dim=0)  # [B, K]
        r[torch.arange(yt.numel(), device=yt.device), yt] -= 1.0
        step = torch.einsum("nlkd,njl->njkd", m, r.view(-1, k, k)).reshape(-1, k, x.shape[1])
        return theta0 - step, torch.einsum("bk,bd,bkd->b", r, xt, step)

    def _exact(self, xt: Tensor, yt: Tensor) -> tuple[Tensor, int, int, float]:
        theta0 = self.head.theta  # type: ignore[union-attr]
        b = xt.shape[0]
        theta = theta0.expand(b, -1, -1).clone()
        m_all, c_all = self._point_solves(xt)
        active = torch.arange(b, device=xt.device)
        gnorm = torch.zeros(b, dtype=F64, device=xt.device)
        it = 0
        while active.numel():
            th = theta[active]
            grad = _data_gradient(self.xa, self.onehot_t, th)
            grad += _point_gradient(th, xt[active], yt[active]) + self.lam * th
            gn = grad.flatten(1).norm(dim=1) / (self.n + 1)
            gnorm[active] = gn
            todo = gn > self.tol
            if not bool(todo.any()) or it >= self.max_chord_iter:
                break
            it += 1
            active, grad = active[todo], grad[todo]
            step = self._newton_step(grad, theta[active], xt[active], m_all[active],
                                     c_all[active])
            theta[active] -= step
        left = active[gnorm[active] > self.tol] if active.numel() else active
        for j in left.tolist():
            fitted = fit_head(
                torch.cat([self.xa[:, :-1], xt[j : j + 1, :-1]]),
                torch.cat([self.y, yt[j : j + 1]]), self.num_classes, self.lam, self.tol,
                init=theta[j],
            )
            theta[j], gnorm[j] = fitted.theta, fitted.grad_norm
        return theta, it, int(left.numel()), float(gnorm.max()) if b else 0.0

    def _point_solves(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        """``M = H*^-1 U`` ``[B, K, K, d1]`` (column ``l`` of ``U = I_K kron x_b`` solved, in
        ``[K, d1]`` shape) and ``C = U^T M`` ``[B, K, K]`` for each candidate's point."""
        b, d1 = xt.shape
        k = self.num_classes
        u = torch.zeros(b, k, k, d1, dtype=F64, device=xt.device)
        idx = torch.arange(k, device=xt.device)
        u[:, idx, idx, :] = xt[:, None, :]
        m = torch.cholesky_solve(u.reshape(b * k, k * d1).T, self.chol).T.reshape(b, k, k, d1)
        c = torch.einsum("blkd,bd->bkl", m, xt)  # C[k, l] = x^T M[l, block k]
        return m, c

    def _newton_step(
        self, grad: Tensor, theta: Tensor, xt: Tensor, m: Tensor, c: Tensor
    ) -> Tensor:
        """``(H* + A_b kron x_b x_b^T)^-1 grad_b``: the training Hessian at ``theta*`` plus the
        candidate point's own exact curvature at its current ``theta_b``, by Woodbury
        (``A_b = diag(p) - p p^T``, ``p = softmax(theta_b x_b)``; ``K x K`` per candidate)."""
        b, k, d1 = grad.shape
        w = torch.cholesky_solve(grad.reshape(b, -1).T, self.chol).T.reshape(b, k, d1)
        p = torch.softmax(torch.einsum("bkd,bd->bk", theta, xt), dim=1)
        a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        eye = torch.eye(k, dtype=F64, device=xt.device).expand(b, k, k)
        proj = torch.einsum("bkd,bd->bk", w, xt)  # U^T H*^-1 grad
        coef = a @ torch.linalg.solve(eye + c @ a, proj[:, :, None])  # [B, K, 1]
        return w - torch.einsum("blkd,bl->bkd", m, coef[:, :, 0])

    def _naive(self, xt: Tensor, yt: Tensor) -> tuple[Tensor, float]:
        out, worst = [], 0.0
        for j in range(xt.shape[0]):
            fitted = fit_head(
                torch.cat([self.xa[:, :-1], xt[j : j + 1, :-1]]),
                torch.cat([self.y, yt[j : j + 1]]), self.num_classes, self.lam, self.tol,
            )
            out.append(fitted.theta)
            worst = max(worst, fitted.grad_norm)
        return torch.stack(out), worst

    def _p_values(self, theta: Tensor, xt: Tensor, yt: Tensor, ut: Tensor | None,
                  h_norm2: Tensor | None, screening: bool) -> tuple[Tensor, Tensor]:
        """Bounds ``(low, high)`` on ``p(y)`` of every candidate ``b`` (its head
        ``theta[b]``, its point ``(xt, yt)``), equal wherever the set membership needs the
        exact value (module doc), or exact values without ``screening``. ``h_norm2``: the
        steps' squared ``H*``-norms, if known."""
        z_test = torch.einsum("bkd,bd->bk", theta, xt)
        s_test = self.score.score_labels_no_grad(z_test, yt, u=ut)
        if not screening:
            low = high = self._count_all(theta, s_test)
        else:
            low, high = self._count_screened(theta, s_test, h_norm2)
        n1 = self.n + 1  # + 1 below: the test point itself
        return (low + 1).to(F64) / n1, (high + 1).to(F64) / n1

    def _count_all(self, theta: Tensor, s_test: Tensor) -> Tensor:
        """Training points with ``S_i(theta_b) >= s_test[b]``, every point rescored."""
        b, k, d1 = theta.shape
        n = self.n
        self._rescored += b * n
        z_train = (theta.reshape(b * k, d1) @ self.xa.T).view(b, k, n).transpose(1, 2)
        labels = self.y.repeat(b)
        u_train = None if self.u is None else self.u.repeat(b)
        s_train = self.score.score_labels_no_grad(
            z_train.reshape(b * n, k), labels, u=u_train
        ).view(b, n)
        return (s_train >= s_test[:, None]).sum(dim=1)

    def _in_set(self, count: Tensor) -> Tensor:
        """Membership of a candidate whose count is ``count``, computed as ``predict`` does."""
        return (count + 1).to(F64) / (self.n + 1) > self.alpha

    def _odds_at(self, t: Tensor) -> Tensor:
        """The log-odds at which HPS's (``sigmoid(-l)``) or NLL's (``softplus(-l)``) score
        equals ``t``: the score is ``>= t`` exactly for log-odds ``<=`` it (``+inf`` for
        ``t <= 0``, ``-inf`` where no log-odds reach ``t``)."""
        inf = torch.full_like(t, float("inf"))
        if self._screening == "hps":
            inner = t.clamp(1e-300, 1.0)
            out = torch.where(t >= 1, -inf, torch.log1p(-inner) - torch.log(inner))
        else:
            out = -torch.log(torch.expm1(t.clamp_min(1e-300)))
        return torch.where(t <= 0, inf, out)

    def _count_screened(self, theta: Tensor, s_test: Tensor,
                        h_norm2: Tensor | None) -> tuple[Tensor, Tensor]:
        """Bounds on :meth:`_count_all` from the score intervals (module doc); a candidate
        whose membership the bounds leave open gets its exact count, rescoring only the
        undecided points (all of them when more than an eighth are)."""
        head = self.head.theta  # type: ignore[union-attr]
        if h_norm2 is None:
            flat = (theta - head).flatten(1)
            h_norm2 = ((flat @ self.hess) * flat).sum(dim=1)
        # how far a log-odds or an APS score can move: 2 x (logit move <= leverage x step)
        step = 2 * h_norm2.clamp_min(0).sqrt()[:, None] / self.score.temperature  # [B, 1]
        lev = self.leverage[None, :]
        if self._screening == "aps":
            sure = torch.addcmul(self.s_star[None, :], step, lev, value=-1) - _SLACK >= (
                s_test[:, None])
            maybe = torch.addcmul(self.s_star[None, :], step, lev) + _SLACK >= s_test[:, None]
            # a label within reach of p_y could swap ranks with y: undecided
            rank_open = self.rank_gap[None, :] - _SLACK <= step * lev
            sure &= ~rank_open
            maybe |= rank_open
        else:  # HPS, NLL: S >= t exactly when the log-odds are <= a threshold of t
            sure = torch.addcmul(self.log_odds[None, :], step, lev) <= (
                self._odds_at(s_test + _SLACK)[:, None])
            maybe = torch.addcmul(self.log_odds[None, :], step, lev, value=-1) <= (
                self._odds_at(s_test - _SLACK)[:, None])
        low, high = sure.sum(dim=1), maybe.sum(dim=1)
        n_open = high - low
        todo = self._in_set(low) != self._in_set(high)
        full = todo & (n_open > self.n // 8)
        if bool(full.any()):
            low[full] = high[full] = self._count_all(theta[full], s_test[full])
        sparse = todo & ~full
        rows = torch.nonzero(sparse).flatten()
        sub, point = torch.nonzero(maybe[rows] & ~sure[rows], as_tuple=True)
        cand = rows[sub]
        self._rescored += cand.numel()
        k, d1 = head.shape
        per = max(1, self.chunk_elements // (k * d1))
        for s in range(0, cand.numel(), per):
            c, i = cand[s : s + per], point[s : s + per]
            z = torch.einsum("mkd,md->mk", theta[c], self.xa[i])
            u = None if self.u is None else self.u[i]
            hit = self.score.score_labels_no_grad(z, self.y[i], u=u) >= s_test[c]
            low.index_add_(0, c, hit.to(low.dtype))  # sure ones + rescored ones that count
        high[sparse] = low[sparse]
        return low, high


def full_cp_sets(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    score: ConformalScore | str = "hps",
    alpha: float = 0.1,
    method: Method = "exact",
    lam: float = 1.0,
    tol: float = 1e-9,
    subset_size: int | None = DEFAULT_SUBSET_SIZE,
    seed: int = 0,
    train_u: Tensor | None = None,
    test_u: Tensor | None = None,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
) -> FullCPResult:
    """One call: :meth:`FullConformal.fit` on the training features, then
    :meth:`FullConformal.predict` on the test features (see :class:`FullConformal`); the
    one full-CP step of every victim (the engine's and :func:`evaluate_full_cp_victims`'s).
    ``init``: warm start of the head (its parameters ``theta``)."""
    cp = FullConformal(score, alpha, method, lam, tol, subset_size, seed)
    cp.fit(train_features, train_labels, num_classes, u=train_u, generator=generator,
           init=init)
    return cp.predict(test_features, u=test_u, generator=generator)
