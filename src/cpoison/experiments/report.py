"""Markdown report and PNG plots of a summary (SPEC 6): target set sizes benign vs
poisoned per attack and score; evaluation coverage and prediction consistency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def table(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    lines = [head, sep]
    for row in rows:
        cells = [str(row[k]) if k in ("attack", "score") else _fmt(row.get(k))
                 for k, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def _bars(ax: plt.Axes, rows: list[dict[str, Any]], pairs: list[tuple[str, str]],
          ylabel: str) -> None:
    labels = [f"{r['attack']} / {r['score']}" for r in rows]
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


def write_report(out: Path, summary: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``report.md`` with the table and both plots into ``out``."""
    rows = summary["rows"]
    sizes = plot_set_sizes(rows, out / "set_sizes.png")
    stealth = plot_stealth(rows, out / "stealth.png", config["alpha"])
    env = summary["environment"]
    se_over = rows[0]["se_over"] if rows else "victims"
    text = f"""# {config['name']}

Dataset `{config['dataset']}` (preset `{config['preset']}`), {config['setting']},
goal **{config['goal']['kind']}**, budget {config['budget']:.2%}, eps {config['eps']:.4f},
alpha {config['alpha']}, {config['n_victims']} victims x {config['n_repeats']} repeats;
target classes {sorted({c for r in rows for c in r['target_classes']})}.
Figures are mean ± standard error over {se_over}. Sizes and ratios are for the targets;
"class red." is the reduction ratio on the other test images of the target class (does the
effect generalise beyond the crafted targets?); coverage is on the evaluation set.

{table(rows)}

Crafting time (s): {", ".join(f"{r['attack']} {r['craft_seconds']:.1f}"
                              for r in rows if r['score'] == rows[0]['score']
                              and r.get('craft_seconds') is not None)}.
Wall time {summary.get('wall_seconds', 0):.0f} s (victim training
{summary.get('train_seconds', 0):.0f} s in this run).

![target set sizes]({sizes.name})

![stealth]({stealth.name})

Produced by cpoison {env['cpoison']} with torch {env['torch']} on {env['platform']}
({env['threads']} threads{', ' + env['cuda'] if env.get('cuda') else ''}).
"""
    return atomic_write_text(out / "report.md", text)
