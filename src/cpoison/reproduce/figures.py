"""The paper's figures drawn from a reproduction's runs (matplotlib): Fig. 1 ratio against
budget per score and attack, Fig. 2 stealth, Fig. 3 l2 vs l3 by budget, Fig. 4 against the
benign set size, Fig. 5 against the perturbation bound (SPEC 9). Each is rendered as PNG
(shown in the report) and as PDF and SVG (vector copies for a paper's appendix).

Where the paper prints values (Fig. 1a at 2 %, the l3 - l2 margins of Fig. 3), they are drawn
in a panel of their own, titled with the setting they hold for (CIFAR-10, ResNet-18), never
on the axes of our dataset."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cpoison.reproduce import paper_values as pv  # noqa: E402
from cpoison.reproduce.results import (  # noqa: E402
    RunResult,
    as_number,
    by_budget,
    dataset_name,
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


#: readable at the width of a page: axis labels and ticks no smaller than 9 pt
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 8.5, "figure.titlesize": 11}
PAPER_TITLE = "paper (CIFAR-10, ResNet-18)"
FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class Rendered:
    """A figure as PNG, PDF and SVG bytes (undated: the same figure, the same bytes) and
    the titles of its panels."""

    png: bytes
    pdf: bytes
    svg: bytes
    panels: tuple[str, ...]

    def data(self, fmt: str) -> bytes:
        return {"png": self.png, "pdf": self.pdf, "svg": self.svg}[fmt]


def _render(fig: Any) -> Rendered:
    """The figure in every format (no date inside), then closed."""
    undated = {"png": None, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
    out = {}
    with plt.rc_context({"svg.hashsalt": "cpoison"}):  # fixed SVG ids: the same bytes
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=undated[fmt])
            out[fmt] = buf.getvalue()
    panels = tuple(ax.get_title() for ax in fig.axes if ax.get_title())
    plt.close(fig)
    return Rendered(out["png"], out["pdf"], out["svg"], panels)


def styled(draw: Callable[..., Any]) -> Callable[..., Rendered]:
    """Draw and render under :data:`STYLE` (readable font sizes), whatever the caller's
    matplotlib settings."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Rendered:
        with plt.rc_context(STYLE):
            return _render(draw(*args, **kwargs))

    return wrapper


def _err(se: float | None) -> float:
    return se if se is not None else 0.0


def ratio_metric(run: RunResult) -> str:
    return "expansion_ratio" if run.goal == "underconfidence" else "reduction_ratio"


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def _legend_below(fig: Any, axes: list[Any]) -> None:
    """One legend for every panel, below them (it never covers a curve)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[k] for k in labels], labels, loc="lower center",
                   ncol=min(len(labels), 4), bbox_to_anchor=(0.5, -0.02), frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.05 * ((len(labels) - 1) // 4), 1, 1))


def _fig1_paper_panel(ax: Any, names: list[str]) -> None:
    """The paper's Fig. 1a values at 2 % (CIFAR-10): ours and the largest possible reduction
    per score, the baselines' bound as a line."""
    shown = [s for s in names if s in pv.FIG1_CIFAR10_2PCT] or list(pv.FIG1_CIFAR10_2PCT)
    xs = range(len(shown))
    ours = [pv.FIG1_CIFAR10_2PCT[s]["reduction_ratio"].value for s in shown]
    best = [1 - 1 / float(pv.FIG1_CIFAR10_2PCT[s]["benign_set_size"].value) for s in shown]
    ax.bar([x - 0.2 for x in xs], ours, 0.4, color=COLORS["ours (l3)"], label="ours (paper)")
    ax.bar([x + 0.2 for x in xs], best, 0.4, color="none", edgecolor="k", hatch="//",
           label="largest possible (paper)")
    ax.axhline(float(pv.BASELINES_BELOW.value), color=COLORS["RandGa"], ls=":",  # type: ignore[arg-type]
               label="baselines below (paper)")
    ax.set_xticks(list(xs), [s.upper() for s in shown])
    ax.set_ylim(0, 0.75)
    ax.set_xlabel("score, budget 2 %")
    ax.set_title(PAPER_TITLE)
    ax.grid(alpha=0.3, axis="y")


@styled
def fig1(run: RunResult) -> Any:
    """Paper Fig. 1: reduction (overconfidence) or expansion (underconfidence) ratio of the
    targets against the poison budget, one panel per score, one line per attack; the
    largest reduction the benign sets allow (1 - 1/benign size) dashed; for
    overconfidence a last panel with the paper's CIFAR-10 values at 2 %."""
    rows, metric = run.rows, ratio_metric(run)
    names = scores(rows)
    paper = metric == "reduction_ratio"
    n = len(names) + (1 if paper else 0)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    budgets = by_budget(rows)
    span = 100 * (max(budgets) - min(budgets)) if len(budgets) > 1 else 1.0
    lines = methods(rows)
    for ax, score in zip(axes[0], names, strict=False):
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
        if paper:
            best = []
            for b in budgets:
                size = value(one(rows, score=score, budget=b), "benign_set_size")[0]
                if size:
                    best.append((100 * b, 1 - 1 / max(size, 1.0)))
            if best:
                ax.plot([p[0] for p in best], [p[1] for p in best], ls="--", color="k",
                        lw=0.8, label="largest possible")
        ax.set_title(f"{dataset_name(run.dataset)}, {score.upper()}")
        ax.set_xlabel("poison budget (%)")
        ax.set_xticks([100 * b for b in budgets], [f"{100 * b:g}" for b in budgets])
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(_label(metric))
    if paper:
        _fig1_paper_panel(axes[0][-1], names)
    fig.suptitle(f"{dataset_name(run.dataset)}, {run.goal}")
    _legend_below(fig, list(axes[0]))
    return fig


@styled
def fig2(run: RunResult, score: str = "hps") -> Any:
    """Paper Fig. 2: stealth of the overconfidence attack (HPS as the paper): prediction
    consistency of each attack's victims with their benign twins, and empirical coverage on
    the evaluation set, benign vs victim, by budget."""
    rows = pick(run.rows, score=score) or run.rows
    budgets = by_budget(rows)
    names = methods(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
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
    axes[0].set_title("consistency with the benign twin")
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
    axes[1].set_title("coverage on the evaluation set")
    for ax in axes:
        ax.set_xticks(range(len(budgets)), [f"{100 * b:g} %" for b in budgets])
        ax.set_xlabel("poison budget")
    fig.suptitle(f"Stealth, {dataset_name(run.dataset)} ({score.upper()})")
    _legend_below(fig, list(axes))
    return fig


@styled
def fig3(run: RunResult, score: str = "hps") -> Any:
    """Paper Fig. 3: reduction ratio of RandUn, ours with l2 and ours with l3 by budget;
    beside it, the paper's l3 - l2 margins (CIFAR-10) in a panel of their own."""
    rows = pick(run.rows, score=score) or run.rows
    budgets = by_budget(rows)
    names = [n for n in ("RandUn", "ours (l2)", "ours (l3)") if n in methods(rows)]
    fig, (ax, paper) = plt.subplots(1, 2, figsize=(9.0, 3.6),
                                    gridspec_kw={"width_ratios": [2, 1]})
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
    ax.set_title(f"{dataset_name(run.dataset)}, black box")
    margins = sorted(pv.L3_OVER_L2.items())
    paper.bar(range(len(margins)), [float(p.value) for _, p in margins],  # type: ignore[arg-type]
              0.5, color=COLORS["ours (l3)"], label="l3 - l2 (paper)")
    paper.set_xticks(range(len(margins)), [f"{100 * b:g} %" for b, _ in margins])
    paper.set_xlabel("poison budget")
    paper.set_ylabel("reduction ratio, l3 - l2")
    paper.set_title(PAPER_TITLE)
    paper.axhline(0, color="k", lw=0.5)
    _legend_below(fig, [ax, paper])
    return fig


def _against(run: RunResult, key: str, xlabel: str, title: str, scale: float = 1.0,
             integer_x: bool = False) -> Any:
    rows = run.rows
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
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
    axes[0].set_title("reduction ratio of the targets")
    axes[0].axhline(0, color="k", lw=0.5)
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_ylabel("mean target set size")
    axes[1].set_title("target set size, benign vs victim")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _legend_below(fig, list(axes))
    return fig


@styled
def fig4(run: RunResult) -> Any:
    """Paper Fig. 4: reduction ratio (and benign vs victim set size) against the targets'
    benign set size (``targets.set_size``)."""
    return _against(run, "targets.set_size", "benign set size of the targets (surrogate)",
                    f"Against benign set size, {dataset_name(run.dataset)}, {_budget(run)}",
                    integer_x=True)


@styled
def fig5(run: RunResult) -> Any:
    """Paper Fig. 5: reduction ratio against the perturbation bound eps (in 1/255)."""
    return _against(run, "eps", "perturbation bound eps (x 1/255)",
                    f"Against perturbation bound, {dataset_name(run.dataset)}, "
                    f"{_budget(run)}", scale=255.0)


def _budget(run: RunResult) -> str:
    return f"budget {100 * float(run.config.get('budget', 0)):g} %"
