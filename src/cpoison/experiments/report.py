"""Markdown report and PNG plots of a summary (SPEC 6): target set sizes benign vs
poisoned per attack and score; evaluation coverage and prediction consistency; and, for a
grid over a numeric key (budget, eps, ...), the reduction (or expansion) ratio against it
per score and attack (the shape of the paper's Fig. 1, 3 and 5)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cpoison.attacks.goals import goal_kind  # noqa: E402
from cpoison.experiments.defense_comparison import compare_to_none  # noqa: E402
from cpoison.io import atomic_write, atomic_write_text  # noqa: E402


def _fmt(cell: Any, digits: int = 3) -> str:
    if not isinstance(cell, dict) or cell.get("mean") is None:
        return "-"
    se = f" ± {cell['se']:.{digits}f}" if cell.get("se") is not None else ""
    return f"{cell['mean']:.{digits}f}{se}"


COLUMNS = (
    ("attack", "attack"), ("score", "score"), ("benign_set_size", "benign size"),
    ("victim_set_size", "victim size"), ("reduction_ratio", "reduction"),
    ("normalized_reduction", "norm. red."), ("expansion_ratio", "expansion"),
    ("consistency", "consistency"), ("coverage_benign", "cov. benign"),
    ("coverage_victim", "cov. victim"), ("target_coverage_victim", "target cov. victim"),
    ("others_reduction_ratio", "class red."),
)


def _point_value(row: dict[str, Any], key: str) -> Any:
    value = (row.get("point") or {}).get(key)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _n(row: dict[str, Any]) -> str:
    return f"{row.get('n_victims', '?')} ({row.get('n_repeats', '?')} rep.)"


# Columns a table gains when a defense is in play (SPEC 7: clean accuracy, the shares of
# poisons and of clean points removed, RPS's certified training radius of benign targets).
DEFENSE_COLUMNS = (
    ("accuracy_victim", "acc. victim"), ("poisons_removed_share", "poisons removed"),
    ("clean_removed_share", "clean removed"),
)
CERTIFICATE_COLUMNS = (("certified_train_radius_benign", "cert. radius"),)


def shows_defense(rows: list[dict[str, Any]], grid_keys: list[str] | tuple[str, ...]) -> bool:
    """A table shows the defense when the grid varies it or some row has one."""
    return (any(k == "defense" or k.startswith("defense.") for k in grid_keys)
            or any((r.get("defense") or "none") != "none" for r in rows))


def _score(row: dict[str, Any]) -> str:
    return f"{row['score']} (unsupported)" if row.get("unsupported") else str(row["score"])


def table(rows: list[dict[str, Any]], grid_keys: list[str] | tuple[str, ...] = ()) -> str:
    """The summary as a Markdown table, grouped by the grid keys (first columns); ``n`` is
    the number of victim pairs (and of repeats) behind each row. With a defense (SPEC 7) a
    ``defense`` column (its label, in place of a ``defense`` grid key), the victims' clean
    accuracy and the shares of poisons and of clean points removed follow the grid keys'
    columns, and RPS's certified radius when a row has one."""
    defense = shows_defense(rows, grid_keys)
    keys = [k for k in grid_keys if not (defense and k == "defense")]
    columns = list(COLUMNS)
    if defense:
        columns += DEFENSE_COLUMNS
        columns += [c for c in CERTIFICATE_COLUMNS if any(r.get(c[0]) for r in rows)]
    titles = [*keys, *(["defense"] if defense else []), *(title for _, title in columns), "n"]
    head = "| " + " | ".join(titles) + " |"
    sep = "|" + "---|" * len(titles)
    lines = [head, sep]
    for row in rows:
        cells = [_point_value(row, k) for k in keys]
        if defense:
            cells.append(str(row.get("defense") or "none"))
        cells += [str(row[k]) if k == "attack" else _score(row) if k == "score"
                  else _fmt(row.get(k)) for k, _ in columns]
        cells.append(_n(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(rows: list[dict[str, Any]], metric: str, max_cost: float = 1.0) -> str:
    """:func:`~cpoison.experiments.defense_comparison.compare_to_none` as a Markdown table
    ('' when no defended row has a ``none`` twin)."""
    records = compare_to_none(rows, metric, max_cost)
    if not records:
        return ""
    grid = any(r["point"] for r in records)
    lines = [
        f"| {'grid | ' if grid else ''}defense | attack | score | {metric} without | with | "
        f"share left | clean acc. change (pts) | halves at <= {max_cost:g} pt | n |",
        "|" + "---|" * (10 if grid else 9),
    ]
    for r in records:
        left = "-" if r["left"] is None else f"{r['left']:.2f}"
        change = "-" if r["accuracy_change"] is None else f"{r['accuracy_change']:+.2f}"
        where = ", ".join(f"{k}={v}" for k, v in r["point"]) + " | " if grid else ""
        lines.append(
            f"| {where}{r['defense']} | {r['attack']} | {r['score']} | "
            f"{_fmt(r['effect_none'])} | {_fmt(r['effect'])} | {left} | {change} | "
            f"{'yes' if r['halves'] else 'no'} | {r['n_victims']} |")
    return "\n".join(lines)


def _save(fig: plt.Figure, path: Path) -> None:
    """The figure as PNG at ``path`` (shown in the report) and as PDF and SVG beside it
    (vector copies for a paper)."""
    undated = {"png": None, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
    # no date inside and fixed SVG ids: the same run, the same bytes
    with plt.rc_context({"svg.hashsalt": "cpoison"}):
        for fmt, metadata in undated.items():
            target = path.with_suffix(f".{fmt}")
            atomic_write(target, lambda p, f=fmt, m=metadata: fig.savefig(
                p, dpi=120, bbox_inches="tight", format=f, metadata=m))
    plt.close(fig)


def _bars(ax: plt.Axes, rows: list[dict[str, Any]], pairs: list[tuple[str, str]],
          ylabel: str) -> None:
    labels = [" ".join([*(f"{v}" for v in (r.get("point") or {}).values()),
                        f"{r['attack']} / {r['score']}"]) for r in rows]
    width = 0.8 / len(pairs)
    for i, (key, name) in enumerate(pairs):
        means = [(r.get(key) or {}).get("mean") or 0.0 for r in rows]
        errs = [(r.get(key) or {}).get("se") or 0.0 for r in rows]
        xs = [x + (i - (len(pairs) - 1) / 2) * width for x in range(len(rows))]
        ax.bar(xs, means, width, yerr=errs, label=name, capsize=3)
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right",
                  rotation_mode="anchor")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def plot_set_sizes(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4))
    _bars(ax, rows, [("benign_set_size", "benign"), ("victim_set_size", "poisoned")],
          "mean target set size")
    ax.set_title("Target prediction-set size, benign vs poisoned victims")
    _save(fig, path)
    return path


def plot_stealth(rows: list[dict[str, Any]], path: Path, alpha: float) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(rows)), 4))
    _bars(axes[0], rows, [("coverage_benign", "benign"), ("coverage_victim", "poisoned")],
          "coverage on evaluation set")
    axes[0].axhline(1 - alpha, color="k", ls="--", lw=1)
    lo = min(((r.get("coverage_victim") or {}).get("mean") or 1) for r in rows)
    axes[0].set_ylim(min(lo, 1 - alpha) - 0.05, 1.0)
    _bars(axes[1], rows, [("consistency", "consistency"),
                          ("target_coverage_victim", "target coverage (poisoned)")], "share")
    axes[1].set_ylim(0, 1.05)
    fig.suptitle("Stealth: coverage and prediction consistency")
    _save(fig, path)
    return path


def numeric_grid_keys(rows: list[dict[str, Any]], grid_keys: list[str]) -> list[str]:
    """Grid keys whose values are all numbers (budget, eps, ...): those get a line plot."""
    return [k for k in grid_keys
            if all(isinstance((r.get("point") or {}).get(k), (int, float))
                   and not isinstance((r.get("point") or {}).get(k), bool) for r in rows)]


def plot_against(rows: list[dict[str, Any]], key: str, metric: str, path: Path) -> Path:
    """``metric`` (mean +/- s.e.) against grid key ``key``: one panel per score, one line
    per attack (other grid keys, if any, as separate lines)."""
    scores = list(dict.fromkeys(r["score"] for r in rows))
    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.6), squeeze=False)
    for ax, score in zip(axes[0], scores):
        lines: dict[str, list[tuple[float, float, float]]] = {}
        for r in rows:
            if r["score"] != score or (r.get(metric) or {}).get("mean") is None:
                continue
            rest = ", ".join(f"{k}={v}" for k, v in (r.get("point") or {}).items() if k != key)
            name = r["attack"] + (f" ({rest})" if rest else "")
            lines.setdefault(name, []).append(
                (r["point"][key], r[metric]["mean"], r[metric].get("se") or 0.0))
        for name, pts in lines.items():
            pts.sort()
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=3, label=name)
        ticks = sorted({p[0] for pts in lines.values() for p in pts})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_title(score.upper())
        ax.set_xlabel(key)
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def paired_table(comparisons: list[dict[str, Any]]) -> str:
    """Each attack against the better random baseline on the same victims (Markdown)."""
    if not comparisons:
        return ""
    lines = ["| attack | score | point | baseline | paired difference | one-sided 95 % lower "
             "bound | units | verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        diff = "-" if c["mean"] is None else (
            f"{c['mean']:+.3f}" + (f" ± {c['se']:.3f}" if c["se"] is not None else ""))
        lower = "-" if c["lower"] is None else f"{c['lower']:+.3f}"
        point = ", ".join(f"{k}={v}" for k, v in ast.literal_eval(c["point"]))
        lines.append(f"| {c['attack']} | {c['score']} | {point} | {c['baseline']} | {diff} "
                     f"| {lower} | {c['n']} {c['units']} | {c['verdict']} |")
    return "\n".join(lines)


def write_report(out: Path, summary: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``report.md`` with the table and the plots into ``out``."""
    rows = summary["rows"]
    grid_keys = list(summary.get("grid_keys") or [])
    sizes = plot_set_sizes(rows, out / "set_sizes.png")
    stealth = plot_stealth(rows, out / "stealth.png", config["alpha"])
    metric = goal_kind(config["goal"]["kind"]).effect_metric
    metric = metric if metric != "goal_effect" else "reduction_ratio"
    trends = [plot_against(rows, k, metric, out / f"{metric}_vs_{k.replace('.', '_')}.png")
              for k in numeric_grid_keys(rows, grid_keys)] if rows else []
    env = summary["environment"]
    se_over = sorted({r["se_over"] for r in rows}) or ["victims"]
    grid = ("; grid " + ", ".join(f"{k} in {v}" for k, v in config.get("grid", {}).items())
            if config.get("grid") else "")
    trend_md = "\n\n".join(f"![{metric} against {p.stem.split('_vs_')[-1]}]({p.name})"
                             for p in trends)
    against_none = comparison_table(rows, metric)
    against_none_md = ("## Each defense against none\n\nShare left: the attack's "
                       f"{metric} under the defense over that without it; clean accuracy "
                       "change: the benign victims' (the defense's own cost).\n\n"
                       + against_none + "\n") if against_none else ""
    paired = paired_table(summary.get("paired") or [])
    paired_md = (f"## Against the better baseline, victim by victim\n\nThe difference of "
                 f"{metric} between each attack and the better random baseline on the same "
                 "victims, averaged per repeat; mean ± s.e. across repeats (across victims "
                 "with one repeat) and the one-sided 95 % lower bound (Student's t). Verdict "
                 "*held*: the bound is above zero.\n\n" + paired + "\n") if paired else ""
    crafted = ", ".join(f"{r['attack']} {r['craft_seconds']:.1f}" for r in rows
                        if r["score"] == rows[0]["score"] and r.get("craft_seconds") is not None)
    text = f"""# {config['name']}

Dataset `{config['dataset']}` (preset `{config['preset']}`), {config['setting']},
goal **{config['goal']['kind']}**, budget {config['budget']:.2%}, eps {config['eps']:.4f},
alpha {config['alpha']}, up to {config['n_victims']} victims x {config['n_repeats']} repeats{grid};
target classes {sorted({c for r in rows for c in r['target_classes']})}.
Figures are mean ± standard error over {" / ".join(se_over)} (per repeat, the mean over its
victims; across victims when there is a single repeat); column `n` gives the victim pairs
(and repeats) behind each row. Sizes and ratios are for the targets; "class red." is the
reduction ratio on the other test images of the target class (does the effect generalise
beyond the crafted targets?); coverage is on the evaluation set.

{table(rows, grid_keys)}

{paired_md}
{against_none_md}
Crafting time (s): {crafted or "-"}.
Wall time of the last run {summary.get('wall_seconds', 0):.0f} s; models it trained:
{summary.get('trained_models', '-')}; executor: {summary.get('executor', '-')}.

{trend_md}

![target set sizes]({sizes.name})

![stealth]({stealth.name})

Produced by cpoison {env['cpoison']} with torch {env['torch']} on {env['platform']}
({env['threads']} threads{', ' + env['cuda'] if env.get('cuda') else ''}).
"""
    return atomic_write_text(out / "report.md", text)
