"""``audit.md`` (SPEC 12): a plain-language summary first, then the tables and plots.

The summary answers four questions a practitioner asks, from the run's summary rows (mean ±
standard error over victims, or over repeats when there are several):

1. *How far do the chosen targets' sets move?* Per budget and score, the attack's effect on
   the targets (set size benign -> poisoned and its relative change for over- and
   underconfidence; the goal's own figure for the other goals, SPEC 4.1), beside the
   random-noise baseline's, which tells the attack from mere noise.
2. *Do coverage and accuracy betray it?* Coverage on the evaluation set (the test set minus
   the targets) and clean accuracy, benign vs poisoned. A change counts as visible when it
   exceeds both 1 percentage point and twice its standard error.
3. *Which defense helps?* Compared per defense when the run has a ``defense`` grid; else
   "no defense evaluated".
4. *How sure are the numbers?* How many victims (and repeats) stand behind each figure, and
   in how many cases the attack beats the baseline by the paired test below.

The summary opens with the attack minus the better random-noise baseline on the same
victims (:mod:`cpoison.experiments.paired`: per victim pair, averaged per repeat, with a
one-sided 95 % Student t lower bound across repeats, or across victims with one repeat):
how much of the effect is the attack's and not the noise's, and whether that is beyond
chance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cpoison.attacks.goals import Goal, goal_kind
from cpoison.io import atomic_write_text

VISIBLE = 0.01  # a change in coverage or accuracy of at least 1 point ...
SIGNIFICANT = 2.0  # ... and of at least 2 standard errors counts as visible

def effect_metric(kind: str) -> str:
    """The row figure that measures a goal's effect (larger: more of what it wanted)."""
    return goal_kind(kind).effect_metric


def _m(row: dict[str, Any], key: str) -> float | None:
    cell = row.get(key)
    return cell.get("mean") if isinstance(cell, dict) else None


def _se(row: dict[str, Any], key: str) -> float:
    cell = row.get(key)
    se = cell.get("se") if isinstance(cell, dict) else None
    return float(se) if se is not None else math.nan


def _pm(row: dict[str, Any], key: str, pct: bool = False, digits: int = 2) -> str:
    mean = _m(row, key)
    if mean is None or math.isnan(mean):
        return "n/a"
    se = _se(row, key)
    scale, unit = (100.0, " %") if pct else (1.0, "")
    text = f"{mean * scale:.{0 if pct else digits}f}"
    if not math.isnan(se):
        text += f" ± {se * scale:.{0 if pct else digits}f}"
    return text + unit


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.0f} %"


def _where(row: dict[str, Any], config: dict[str, Any]) -> str:
    """``budget 2 %`` plus any other grid value of the row (``defense epic``)."""
    budget = float(row.get("budget") or config["budget"])
    rest = [f"{k} {v}" for k, v in (row.get("point") or {}).items() if k != "budget"]
    return ", ".join([f"budget {100 * budget:g} %", *rest])


def _class_name(classes: list[str], c: int) -> str:
    return f"`{classes[c]}` (class {c})" if 0 <= c < len(classes) else f"class {c}"


def _predictor_words(predictor: str | None) -> str:
    """Who made the victims' sets, in words."""
    if not predictor or predictor == "cpoison":
        return "cpoison's own predictor"
    if predictor in ("torchcp", "mapie"):
        return {"torchcp": "TorchCP's", "mapie": "MAPIE's"}[predictor] + " split predictor"
    if predictor.startswith("@python:"):
        return "your predictor, given from Python"
    return f"your predictor `{predictor}`"


def _paired_index(summary: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(attack, point, score, defense) -> the run's paired comparison with the better
    baseline (``summary["paired"]``)."""
    return {(p["attack"], p["point"], p["score"], p.get("defense") or "none"): p
            for p in summary.get("paired") or []}


def _paired_of(index: dict[tuple[str, str, str, str], dict[str, Any]],
               row: dict[str, Any]) -> dict[str, Any] | None:
    point = repr(sorted((row.get("point") or {}).items()))
    return index.get((row["attack"], point, row["score"], row.get("defense") or "none"))


def _paired_phrase(p: dict[str, Any], pct: bool) -> str:
    """``+12.0 % ± 2.0 % over randga (95 % lower bound +8.3 %, beyond noise)``."""
    scale, unit, digits = (100.0, " %", 1) if pct else (1.0, "", 3)

    def num(v: float) -> str:
        return f"{v * scale:+.{digits}f}{unit}"

    text = num(p["mean"])
    if p.get("se") is not None:
        text += f" ± {p['se'] * scale:.{digits}f}{unit}"
    text += f" over {p['baseline']}"
    if p.get("lower") is None:
        return text + " (one victim pair: no interval)"
    word = {"held": "beyond noise", "not held": "below noise"}.get(
        p["verdict"], "not told from noise")
    return text + f" (95 % lower bound {num(p['lower'])}, {word})"


def _goal_phrase(row: dict[str, Any], kind: str, goal: dict[str, Any],
                 classes: list[str]) -> str:
    """What the attack did to the targets, in words (mean ± s.e.)."""
    name = _class_name(classes, int(goal.get("label") or 0))
    return goal_kind(kind).effect_phrase(Goal(**goal), name,
                                         lambda key, pct=False: _pm(row, key, pct=pct))


def _betrays(row: dict[str, Any], benign: str, victim: str) -> tuple[float | None, bool]:
    """(poisoned - benign, visible?) for a pair of figures."""
    b, v = _m(row, benign), _m(row, victim)
    if b is None or v is None:
        return None, False
    diff = v - b
    se = math.sqrt(_se(row, benign) ** 2 + _se(row, victim) ** 2)
    return diff, abs(diff) >= VISIBLE and (math.isnan(se) or abs(diff) > SIGNIFICANT * se)


def plain_summary(summary: dict[str, Any], config: dict[str, Any],
                  facts: dict[str, Any]) -> str:
    """The opening of ``audit.md`` (module docstring): Markdown paragraphs and bullets."""
    from cpoison.experiments.config import validate_config

    rows = summary["rows"]
    kind, goal = config["goal"]["kind"], config["goal"]
    metric = effect_metric(kind)
    labels = validate_config(config).labels()
    ours_label, baselines = labels[0], labels[1:]
    classes = list(facts.get("classes") or [])
    alpha = float(config["alpha"])
    n_train = int(facts.get("victim_train") or 0)
    by = {(r["attack"], r["score"], repr(sorted((r.get("point") or {}).items()))): r
          for r in rows}
    paired = _paired_index(summary)
    ours = [r for r in rows if r["attack"] == ours_label]
    if not ours:
        return "No result rows: the run produced no cell.\n"
    target_classes = sorted({c for r in ours for c in r.get("target_classes", [])})
    n_targets = config["targets"]["n_targets"]
    victims = sorted({r["n_victims"] for r in ours})
    repeats = sorted({r["n_repeats"] for r in ours})
    goal_words = goal_kind(kind).aim(Goal(**goal),
                                     _class_name(classes, int(goal.get("label") or 0)))
    lines = [
        "## Summary",
        "",
        (f"An attacker who may perturb a small share of your training examples (each "
         f"standardised feature by at most eps = {float(config['eps']):.4f} standard "
         f"deviations) " if facts.get("kind") == "features" else
         f"An attacker who may perturb a small share of your training images (each pixel by "
         f"at most eps = {float(config['eps']):.4f}, i.e. "
         f"{float(config['eps']) * 255:.0f}/255) ") +
        f"tried to {goal_words}. The attacker does not know your training data "
        f"({config['setting']}): it trains its own copy of your model "
        f"(`{facts.get('surrogate')}`) on {facts.get('attacker_train', '?')} images of its "
        f"own and crafts the poisons on it. Your pipeline: `{facts.get('model')}` trained on "
        f"{n_train} images, split conformal prediction at alpha = {alpha} "
        f"({_predictor_words(facts.get('predictor') or config.get('predictor'))}) "
        f"calibrated on {facts.get('victim_cal', '?')} clean images. Targets: up to "
        f"{n_targets} test images of {', '.join(_class_name(classes, c) for c in target_classes)}.",
        "",
        "**How far the targets' sets move** (attack vs random noise of the same size on "
        "the same images):",
        "",
    ]
    best: tuple[float, dict[str, Any]] | None = None
    for r in ours:
        point = repr(sorted((r.get("point") or {}).items()))
        budget = float(r.get("budget") or config["budget"])
        head = f"{_where(r, config)} ({round(budget * n_train)} poisoned images)"
        text = f"- **{head}, {r['score'].upper()}**: {_goal_phrase(r, kind, goal, classes)}"
        base_texts = []
        for b in baselines:
            br = by.get((b, r["score"], point))
            if br is not None:
                base_texts.append(f"{b}: {_pm(br, metric, pct=True)}")
        if base_texts:
            text += f"; noise baselines: {', '.join(base_texts)}"
        p = _paired_of(paired, r)
        if p is not None and p.get("mean") is not None:
            text += f"; the attack minus noise, pair by pair: {_paired_phrase(p, pct=True)}"
        lines.append(text + ".")
        value = _m(r, metric)
        if value is not None and not math.isnan(value) and (best is None or value > best[0]):
            best = (value, r)
    if goal_kind(kind).needs_room:
        small = [r for r in ours if (_m(r, "benign_set_size") or 2.0) <= 1.05]
        if small and len(small) == len(ours):
            lines += ["", f"The targets' benign sets are already (nearly) single labels at "
                      f"alpha = {alpha}: there is little to shrink. A smaller alpha "
                      "(larger sets) or `--goal underconfidence` tests the other direction."]
    # stealth: accuracy per budget (it does not depend on the score), coverage per score
    lines += ["", "**Do coverage and accuracy betray it?**", ""]
    by_point: dict[str, list[dict[str, Any]]] = {}
    for r in ours:
        by_point.setdefault(repr(sorted((r.get("point") or {}).items())), []).append(r)
    for members in by_point.values():
        first = members[0]
        acc_diff, acc_visible = _betrays(first, "accuracy_benign", "accuracy_victim")
        covs, noticed = [], acc_visible
        for r in members:
            _, cov_visible = _betrays(r, "coverage_benign", "coverage_victim")
            cov_v = _m(r, "coverage_victim")
            noticed |= cov_visible or (cov_v is not None and cov_v < 1 - alpha - VISIBLE)
            covs.append(f"{r['score'].upper()} {_pm(r, 'coverage_victim')} (benign "
                        f"{_pm(r, 'coverage_benign')})")
        verdict = ("a monitor of coverage and accuracy could notice" if noticed
                   else "neither would tell a monitor that something is wrong")
        lines.append(
            f"- {_where(first, config)}: clean accuracy {_pm(first, 'accuracy_victim')} "
            f"(benign {_pm(first, 'accuracy_benign')}, change "
            f"{'n/a' if acc_diff is None else f'{100 * acc_diff:+.1f} points'}); coverage "
            f"on the evaluation set (nominal {1 - alpha:.2f}): {'; '.join(covs)}; {verdict}.")
    lines += ["", "**Which defense helps?**", ""]
    lines.append(_defense_text(rows, ours_label, metric))
    # certainty
    lines += ["", "**How sure are these numbers?**", ""]
    n_text = (f"{' or '.join(str(v) for v in victims)} victim pair(s)"
              + (f" over {' or '.join(str(v) for v in repeats)} repeats"
                 if max(repeats) > 1 else ""))
    sure = [f"Each figure is a mean ± standard error over {n_text} (each pair: a benign and "
            "a poisoned model trained from the same initial weights and data order)."]
    if max(victims) < 5 and max(repeats) < 3:
        sure.append("With so few victims the standard errors are themselves rough; re-run "
                    "the same command with `--victims 5` (or more) for firmer numbers: "
                    "everything computed so far is reused.")
    if baselines:
        cases = [p for p in (_paired_of(paired, r) for r in ours) if p is not None]
        held = sum(p["verdict"] == "held" for p in cases)
        no_interval = sum(p.get("lower") is None for p in cases)
        sure.append(f"The attack beats the better noise baseline (paired difference on the "
                    f"same victims, one-sided 95 % Student t interval above zero) in {held} "
                    f"of {len(cases)} budget x score cases" + (
                        f" ({no_interval} without an interval: one victim pair)"
                        if no_interval else "") + ".")
    if len(target_classes) == 1:
        sure.append(f"Only targets of {_class_name(classes, target_classes[0])} were tried; "
                    "other classes may be more or less exposed (`--target-class`, or "
                    "`--repeats` to draw several).")
    lines.append(" ".join(sure))
    if best is not None:
        value, r = best
        short = (f"**In short:** the strongest effect measured is "
                 f"{_pm(r, metric, pct=True)} ({metric.replace('_', ' ')}, "
                 f"{r['score'].upper()}, {_where(r, config)}) for {n_targets} targets")
        p = _paired_of(paired, r)
        if p is not None and p.get("mean") is not None:
            short += (f"; against random noise of the same size on the same images and "
                      f"victims, the attack's own share is {_paired_phrase(p, pct=True)}")
        lines[2:2] = [short + "; details below.", ""]
    return "\n".join(lines) + "\n"


def _defense_text(rows: list[dict[str, Any]], ours_label: str, metric: str) -> str:
    values = [r for r in rows if r["attack"] == ours_label and "defense" in (r.get("point")
                                                                             or {})]
    if not values:
        return ("No defense evaluated: this audit trained every victim without a defense. "
                "(`--defense none --defense NAME` "
                "compares them.)")
    per: dict[str, list[float]] = {}
    for r in values:
        m = _m(r, metric)
        if m is not None and not math.isnan(m):
            per.setdefault(str(r["point"]["defense"]), []).append(m)
    means = {d: sum(v) / len(v) for d, v in per.items()}
    if not means:
        return "Defenses were evaluated but gave no figure."
    ranked = sorted(means.items(), key=lambda kv: kv[1])
    parts = [f"`{d}` {100 * m:.0f} %" for d, m in ranked]
    return (f"Mean attack effect ({metric.replace('_', ' ')}) under each defense, lowest "
            f"first: {', '.join(parts)}; the first helps most (clean accuracy and coverage "
            "per defense are in the tables below).")


def goal_table(rows: list[dict[str, Any]], kind: str, grid_keys: list[str]) -> str:
    """The goal's own figures (SPEC 4.1) as a Markdown table; empty for over- and
    underconfidence (their figures are in the main table)."""
    from cpoison.experiments.report import _fmt, _point_value

    columns = goal_kind(kind).columns
    if not columns:
        return ""
    head = "| " + " | ".join([*grid_keys, "attack", "score", *(t for _, t in columns)]) + " |"
    lines = [head, "|" + "---|" * (len(grid_keys) + 2 + len(columns))]
    for r in rows:
        cells = [_point_value(r, k) for k in grid_keys] + [r["attack"], r["score"]]
        cells += [_fmt(r.get(k)) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_audit_report(out: Path, summary: dict[str, Any], config: dict[str, Any],
                       facts: dict[str, Any]) -> tuple[Path, str]:
    """Write ``audit.md`` into ``out`` (the engine has written ``report.md`` and its plots
    there already); returns its path and the plain summary."""
    from cpoison.experiments.report import numeric_grid_keys, plot_against, table

    rows = summary["rows"]
    grid_keys = list(summary.get("grid_keys") or [])
    kind = config["goal"]["kind"]
    text = plain_summary(summary, config, facts)
    plots = []
    for key in numeric_grid_keys(rows, grid_keys) if rows else []:
        metric = effect_metric(kind)
        name = f"{metric}_vs_{key.replace('.', '_')}.png"
        if not (out / name).exists() or metric == "goal_effect":
            plot_against(rows, key, metric, out / name)
        plots.append(f"![{metric} against {key}]({name})")
    extra = goal_table(rows, kind, grid_keys)
    shape = facts.get("image_shape") or ["?", "?", "?"]
    described = (f"examples of {shape[0]} standardised features" if len(shape) == 1
                 else f"images of shape\n{shape[1]}x{shape[2]} with {shape[0]} channel(s)")
    body = f"""# Poisoning audit: `{facts.get('model')}` on `{facts.get('dataset')}`

{text}
## Data and setting

{facts.get('n_train_pool')} training-pool and {facts.get('n_test')} test {described},
{len(facts.get('classes') or [])} classes;
victim training set {facts.get('victim_train')} images (a budget is a share of it), victim
calibration set {facts.get('victim_cal')}, attacker training set
{facts.get('attacker_train')}. Preset `{config['preset']}`; goal **{kind}**; alpha
{config['alpha']}; eps {float(config['eps']):.4f}; seed {config['seed']}. Re-running the same
command resumes (only missing cells run); `cpoison report {out}` rebuilds `report.md`.

## Tables

{table(rows, grid_keys)}

{extra}

## Plots

{chr(10).join(plots)}

![target set sizes](set_sizes.png)

![stealth](stealth.png)

The full engine report with timings and the environment is in [report.md](report.md); every
per-victim figure is in `results.sqlite`.
"""
    return atomic_write_text(out / "audit.md", body), text
