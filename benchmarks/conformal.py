"""Benchmark: split conformal calibrate + predict, cpoison vs MAPIE 1.x (SPEC 3).

Times ``calibrate`` on ``n`` calibration points plus ``predict`` on ``n x K`` test logits for
HPS, APS and RAPS, against MAPIE's ``SplitConformalClassifier`` (prefit) on the same
probabilities: LAC for HPS, APS for APS, RAPS for RAPS. Notes on the comparison:

- cpoison starts from logits (its timing includes the softmax); MAPIE is handed the
  probabilities, computed before its clock starts.
- MAPIE's RAPS is not the same procedure: it holds out 20 % of the calibration points to tune
  ``lambda`` and ``k_reg`` over a grid, where cpoison uses fixed values (SPEC 3.1). Its
  timing is given for scale only.
- MAPIE's APS/RAPS prediction rule is ``include_last_label=True`` (more conservative than
  ``S <= q``, SPEC 3.4), so set sizes differ; for HPS the sets agree (shown).

Usage: ``python benchmarks/conformal.py [--n 1000000] [--k 10] [--alpha 0.1]``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from cpoison.conformal import APS, HPS, RAPS, SplitConformal, mean_size


class FixedProbaClassifier(ClassifierMixin, BaseEstimator):
    """A prefit classifier for MAPIE whose ``predict_proba`` returns its input."""

    def __init__(self, n_classes: int = 10) -> None:
        self.n_classes = n_classes

    def fit(self, X, y=None):  # noqa: N803 - sklearn naming
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):  # noqa: N803
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):  # noqa: N803
        return np.argmax(np.asarray(X), axis=1)


def _data(n: int, k: int, seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=torch.float64) * 2).to(dtype)
    truth = torch.softmax(0.7 * logits.double() + torch.randn(n, k, generator=g).double(), 1)
    labels = torch.multinomial(truth, 1, generator=g).squeeze(1)
    return logits, labels


def _time_cpoison(score, cal, cal_y, test, alpha: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    cp = SplitConformal(score, alpha).calibrate(cal, cal_y, generator=g)
    sets = cp.predict(test, generator=g)
    return time.perf_counter() - t0, sets


def _time_mapie(name: str, p_cal, y_cal, p_test, alpha: float, seed: int):
    from mapie.classification import SplitConformalClassifier

    k = p_cal.shape[1]
    t0 = time.perf_counter()
    model = SplitConformalClassifier(
        FixedProbaClassifier(k).fit(None),
        confidence_level=1 - alpha,
        conformity_score=name,
        prefit=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.conformalize(p_cal, y_cal)
        _, sets = model.predict_set(p_test)
    return time.perf_counter() - t0, sets[:, :, 0]


def _best(repeats: int, fn, *args):
    """Run ``fn(*args) -> (seconds, result)`` ``repeats`` times; the fastest time, last result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t, result = fn(*args)
        times.append(t)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="calibration and test points")
    parser.add_argument("--k", type=int, default=10, help="number of classes")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs; the best is shown")
    parser.add_argument("--no-mapie", action="store_true", help="time cpoison only")
    args = parser.parse_args(argv)

    dtype = getattr(torch, args.dtype)
    cal, cal_y = _data(args.n, args.k, args.seed, dtype)
    test, _ = _data(args.n, args.k, args.seed + 1, dtype)
    p_cal = torch.softmax(cal.double(), 1).numpy()
    p_test = torch.softmax(test.double(), 1).numpy()
    y_np = cal_y.numpy()

    mapie_version = None
    if not args.no_mapie:
        try:
            import mapie

            mapie_version = mapie.__version__
        except ImportError:
            print("MAPIE is not installed: timing cpoison only")

    print(
        f"n_cal = n_test = {args.n}, K = {args.k}, alpha = {args.alpha}, logits {args.dtype}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), MAPIE {mapie_version}, "
        f"{platform.processor() or platform.machine()}"
    )
    # warm-up on a small slice (first-call overheads of both libraries are not timed)
    m = min(args.n, 2000)
    for score, mapie_name in [(HPS(), "lac"), (APS(), "aps"), (RAPS(), "raps")]:
        _time_cpoison(score, cal[:m], cal_y[:m], test[:m], args.alpha, args.seed)
        if mapie_version is not None:
            _time_mapie(mapie_name, p_cal[:m], y_np[:m], p_test[:m], args.alpha, args.seed)

    rows = []
    for label, score, mapie_name in [
        ("HPS", HPS(), "lac"),
        ("APS", APS(), "aps"),
        ("RAPS", RAPS(), "raps"),
    ]:
        t_ours, sets = _best(
            args.repeats, _time_cpoison, score, cal, cal_y, test, args.alpha, args.seed
        )
        t_mapie, agree, size_mapie = float("nan"), "", float("nan")
        if mapie_version is not None:
            t_mapie, m_sets = _best(
                args.repeats, _time_mapie, mapie_name, p_cal, y_np, p_test, args.alpha, args.seed
            )
            size_mapie = float(m_sets.sum(1).mean())
            if label == "HPS":
                agree = f"{float((m_sets == sets.numpy()).mean()):.6f}"
        rows.append((label, t_ours, t_mapie, mean_size(sets), size_mapie, agree))

    header = (
        f"{'score':<6} {'cpoison s':>10} {'MAPIE s':>10} {'ratio':>7} "
        f"{'size ours':>10} {'size MAPIE':>11} {'set agreement':>14}"
    )
    print(header)
    print("-" * len(header))
    for label, t_ours, t_mapie, s_ours, s_mapie, agree in rows:
        ratio = t_mapie / t_ours if t_ours > 0 else float("nan")
        print(
            f"{label:<6} {t_ours:>10.3f} {t_mapie:>10.3f} {ratio:>6.1f}x "
            f"{s_ours:>10.3f} {s_mapie:>11.3f} {agree:>14}"
        )
    print("ratio = MAPIE seconds / cpoison seconds (higher: cpoison faster)")


if __name__ == "__main__":
    main()
