"""The paper's figures drawn from a reproduction's runs (matplotlib, PNG bytes): Fig. 1
ratio against budget per score and attack, Fig. 2 stealth, Fig. 3 l2 vs l3 by budget,
Fig. 4 against the benign set size, Fig. 5 against the perturbation bound (SPEC 9). The
paper's published values (:mod:`cpoison.reproduce.paper_values`) are drawn beside ours as
open stars, labelled with the setting they hold for."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cpoison.reproduce import paper_values as pv  # noqa: E402
from cpoison.reproduce.results import (  # noqa: E402
    RunResult,
    as_number,
    by_budget,
    methods,
    one,
    pick,
    point,
    scores,
    value,
)

COLORS = {"RandUn": "tab:gray", "RandGa": "tab:brown", "ours (l3)": "tab:red",
          "ours (l2)": "tab:blue", "ours (l3, 2nd order)": "tab:purple",
          "MetaPoison": "tab:green"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _err(se: float | None) -> float:
    return se if se is not None else 0.0


def ratio_metric(run: RunResult) -> str:
    return "expansion_ratio" if run.goal == "underconfidence" else "reduction_ratio"


def fig1(run: RunResult) -> bytes:
    """Paper Fig. 1: reduction (overconfidence) or expansion (underconfidence) ratio of the
    targets against the poison budget, one panel per score, one line per attack; the
    largest reduction the benign sets allow (1 - 1/benign size) dashed, the paper's CIFAR-10
    values at 2 % as open stars."""
    rows, metric = run.rows, ratio_metric(run)
    names = scores(rows)
    fig, axes = plt.subplots(1, len(names), figsize=(4.0 * len(names), 3.4), squeeze=False)
    budgets = by_budget(rows)
    span = 100 * (max(budgets) - min(budgets)) if len(budgets) > 1 else 1.0
    lines = methods(rows)
    for ax, score in zip(axes[0], names, strict=True):
        for i, name in enumerate(lines):
            dodge = (i - (len(lines) - 1) / 2) * 0.015 * span  # overlapping lines stay visible
            pts = []
            for r in pick(rows, method=name, score=score):
                m, se = value(r, metric)
                if m is not None:
                    pts.append((100 * float(r["budget"]) + dodge, m, _err(se)))
            pts.sort()
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                            yerr=[p[2] for p in pts], marker="o", capsize=3, label=name,
                            color=COLORS.get(name))
        if metric == "reduction_ratio":
            best = []
            for b in by_budget(rows):
                size = value(one(rows, score=score, budget=b), "benign_set_size")[0]
                if size:
                    best.append((100 * b, 1 - 1 / max(size, 1.0)))
            if best:
                ax.plot([p[0] for p in best], [p[1] for p in best], ls="--", color="k",
                        lw=0.8, label="largest possible")
            paper = pv.FIG1_CIFAR10_2PCT.get(score)
            if paper:
                ax.plot([2.0], [paper["reduction_ratio"].value], marker="*", ms=13,
                        mfc="none", color="tab:red", ls="none", label="paper, CIFAR-10")
        ax.set_title(f"{score.upper()}")
        ax.set_xlabel("poison budget (% of victim training set)")
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{run.dataset}, {run.goal}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def fig2(run: RunResult, score: str = "hps") -> bytes:
    """Paper Fig. 2: stealth of the overconfidence attack (HPS as the paper): prediction
    consistency of each attack's victims with their benign twins, and empirical coverage on
    the evaluation set, benign vs victim, by budget."""
    rows = pick(run.rows, score=score) or run.rows
    budgets = by_budget(rows)
    names = methods(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs, ms, es = [], [], []
        for k, b in enumerate(budgets):
            m, se = value(one(rows, method=name, budget=b), "consistency")
            if m is not None:
                xs.append(k + (i - (len(names) - 1) / 2) * width)
                ms.append(m)
                es.append(_err(se))
        axes[0].bar(xs, ms, width, yerr=es, capsize=2, label=name, color=COLORS.get(name))
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("prediction consistency")
    axes[0].legend(fontsize=7, loc="lower right")
    ours = [n for n in names if n.startswith("ours")][:1] or names[:1]
    width = 0.38
    for i, (metric, label) in enumerate((("coverage_benign", "benign"),
                                         ("coverage_victim", f"victim ({ours[0]})"))):
        ms, es = [], []
        for b in budgets:
            m, se = value(one(rows, method=ours[0], budget=b), metric)
            ms.append(m or 0.0)
            es.append(_err(se))
        axes[1].bar([k + (i - 0.5) * width for k in range(len(budgets))], ms, width,
                    yerr=es, capsize=2, label=label)
    alpha = float(run.config.get("alpha", 0.1))
    axes[1].axhline(1 - alpha, color="k", ls="--", lw=1, label=f"1 - alpha = {1 - alpha:g}")
    axes[1].set_ylim(max(0.0, 1 - alpha - 0.15), 1.0)
    axes[1].set_ylabel(f"empirical coverage ({score.upper()})")
    axes[1].legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xticks(range(len(budgets)), [f"{100 * b:g} %" for b in budgets])
        ax.set_xlabel("poison budget")
    fig.suptitle(f"Stealth, {run.dataset} ({score.upper()})", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def fig3(run: RunResult, score: str = "hps") -> bytes:
    """Paper Fig. 3: reduction ratio of RandUn, ours with l2 and ours with l3 by budget."""
    rows = pick(run.rows, score=score) or run.rows
    budgets = by_budget(rows)
    names = [n for n in ("RandUn", "ours (l2)", "ours (l3)") if n in methods(rows)]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ms, es = [], []
        for b in budgets:
            m, se = value(one(rows, method=name, budget=b), "reduction_ratio")
            ms.append(m or 0.0)
            es.append(_err(se))
        ax.bar([k + (i - (len(names) - 1) / 2) * width for k in range(len(budgets))], ms,
               width, yerr=es, capsize=3, label=name, color=COLORS.get(name))
    ax.set_xticks(range(len(budgets)), [f"{100 * b:g} %" for b in budgets])
    ax.set_xlabel("poison budget")
    ax.set_ylabel(f"reduction ratio ({score.upper()})")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    ax.set_title(f"l2 vs l3, {run.dataset}, black box", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _against(run: RunResult, key: str, xlabel: str, title: str, scale: float = 1.0,
             integer_x: bool = False) -> bytes:
    rows = run.rows
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for score in scores(rows):
        for name in methods(rows):
            pts = []
            for r in pick(rows, method=name, score=score):
                x = as_number(point(r, key))
                m, se = value(r, "reduction_ratio")
                b, _ = value(r, "benign_set_size")
                v, _ = value(r, "victim_set_size")
                if x is not None and m is not None:
                    pts.append((x * scale, m, _err(se), b, v))
            pts.sort()
            if not pts:
                continue
            label = f"{name}, {score.upper()}"
            axes[0].errorbar([p[0] for p in pts], [p[1] for p in pts],
                             yerr=[p[2] for p in pts], marker="o", capsize=3, label=label)
            axes[1].plot([p[0] for p in pts], [p[3] for p in pts], marker="s", ls="--",
                         label=f"benign, {score.upper()}")
            axes[1].plot([p[0] for p in pts], [p[4] for p in pts], marker="o",
                         label=f"victim ({name}), {score.upper()}")
    axes[0].set_ylabel("reduction ratio")
    axes[0].axhline(0, color="k", lw=0.5)
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_ylabel("mean target set size")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def fig4(run: RunResult) -> bytes:
    """Paper Fig. 4: reduction ratio (and benign vs victim set size) against the targets'
    benign set size (``targets.set_size``)."""
    return _against(run, "targets.set_size", "benign set size of the targets (surrogate)",
                    f"Against benign set size, {run.dataset}, {_budget(run)}", integer_x=True)


def fig5(run: RunResult) -> bytes:
    """Paper Fig. 5: reduction ratio against the perturbation bound eps (in 1/255)."""
    return _against(run, "eps", "perturbation bound eps (x 1/255)",
                    f"Against perturbation bound, {run.dataset}, {_budget(run)}", scale=255.0)


def _budget(run: RunResult) -> str:
    return f"budget {100 * float(run.config.get('budget', 0)):g} %"
