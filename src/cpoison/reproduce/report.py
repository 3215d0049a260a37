"""The reproduction report (issue 12, SPEC 9): one document, written twice from the same
blocks, as ``OUT/report.html`` (self-contained: every figure embedded as a base64 PNG) and
``OUT/report.md`` (its figures as PNG files beside it).

It opens with the paper's claims of Sec. 5 and their verdicts at this scale, then draws each
experiment the paper's way (:mod:`cpoison.reproduce.figures`) with a table of our numbers
and, wherever the paper prints one, the published value beside ours
(:mod:`cpoison.reproduce.paper_values`). An experiment without a finished run says "not
run"; no number is ever filled in that a run did not produce.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpoison.io import atomic_write, atomic_write_text
from cpoison.reproduce import figures
from cpoison.reproduce import paper_values as pv
from cpoison.reproduce.claims import HELD, NO_ROOM, NOT_HELD, decide
from cpoison.reproduce.experiments import EXPERIMENTS, SCALES, parts
from cpoison.reproduce.results import (
    RunResult,
    by_budget,
    fmt,
    is_ours,
    load_run,
    method,
    methods,
    one,
    pick,
    point,
    scores,
)


@dataclass
class Figure:
    name: str  # file stem of the PNG beside report.md
    png: bytes
    caption: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Para:
    text: str
    kind: str = "p"  # p, code, note


Block = Figure | Table | Para


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


# -- per experiment ------------------------------------------------------------------------

def _paper_cell(score: str, budget: float, row: dict[str, Any], metric: str) -> str:
    if metric != "reduction_ratio" or abs(budget - 0.02) > 1e-9:
        return ""
    if is_ours(row) and score in pv.FIG1_CIFAR10_2PCT:
        p = pv.FIG1_CIFAR10_2PCT[score]
        return (f"{p['reduction_ratio'].text()} (benign {p['benign_set_size'].text()})")
    if method(row) in ("RandUn", "RandGa") and score in pv.FIG1_CIFAR10_2PCT:
        return f"< {pv.BASELINES_BELOW.value:.2f}"
    return ""


def e1_blocks(run: RunResult, tag: str) -> list[Block]:
    metric = figures.ratio_metric(run)
    rows = []
    for score in scores(run.rows):
        for b in by_budget(run.rows):
            for r in pick(run.rows, score=score, budget=b):
                rows.append([score.upper(), f"{100 * b:g} %", method(r),
                             fmt(r, "benign_set_size"), fmt(r, "victim_set_size"),
                             fmt(r, metric), _paper_cell(score, b, r, metric) or "-"])
    return [
        Figure(f"fig1-{tag}", figures.fig1(run),
               f"Fig. 1 ({run.dataset}, {run.goal}): {metric.replace('_', ' ')} of the "
               f"targets against the poison budget; {run.where()}."),
        Table(["score", "budget", "attack", "benign size", "victim size",
               metric.replace("_", " "), "paper (CIFAR-10)"], rows,
              "Paper values: Sec. 5.1 (CIFAR-10, ResNet-18); sizes and ratios of the "
              "targets, mean ± s.e."),
    ]


def e2_blocks(run: RunResult, tag: str) -> list[Block]:
    rows = []
    for score in scores(run.rows):
        for b in by_budget(run.rows):
            for r in pick(run.rows, score=score, budget=b):
                rows.append([score.upper(), f"{100 * b:g} %", method(r),
                             fmt(r, "consistency", 3), fmt(r, "coverage_benign", 3),
                             fmt(r, "coverage_victim", 3), fmt(r, "accuracy_victim", 3)])
    return [
        Figure(f"fig2-{tag}", figures.fig2(run, scores(run.rows)[0]),
               f"Fig. 2 ({run.dataset}): prediction consistency and empirical coverage, "
               f"benign vs victim; {run.where()}."),
        Table(["score", "budget", "attack", "consistency", "coverage benign",
               "coverage victim", "accuracy victim"], rows,
              "Evaluation set (SPEC 6); the paper gives these only as a figure."),
    ]


def e3_blocks(run: RunResult, tag: str) -> list[Block]:
    names = scores(run.rows)
    defenses = list(dict.fromkeys((r.get("defense") or "none") for r in run.rows))
    headers = ["defense"]
    for s in names:
        headers += [f"{s.upper()} ours", f"{s.upper()} paper"]
    headers += ["accuracy victim", "poisons removed"]
    rows = []
    for d in defenses:
        line = [d]
        for s in names:
            r = one(run.rows, score=s, defense=d)
            ours = ("unsupported" if r is not None and r.get("unsupported")
                    else fmt(r, "reduction_ratio"))
            paper = pv.TABLE1.get(d, {}).get(s)
            line += [ours, paper.text() if paper else "-"]
        first = one(run.rows, score=names[0], defense=d)
        line += [fmt(first, "accuracy_victim", 3), fmt(first, "poisons_removed_share", 2)]
        rows.append(line)
    budget = 100 * float(run.config.get("budget", 0))
    return [Table(headers, rows,
                  f"Table 1: set size reduction ratio at {budget:g} % under each defense; "
                  f"{run.where()}. Paper: CIFAR-10 at 2 %, Table 1.")]


def e4_blocks(run: RunResult, tag: str) -> list[Block]:
    score = scores(run.rows)[0]
    rows = []
    for b in by_budget(run.rows):
        for r in pick(run.rows, score=score, budget=b):
            key = pv.table2_method(r.get("loss"), r.get("order"))
            paper = pv.TABLE2.get(key or "", {})
            red, mins = paper.get("reduction_ratio", "-"), paper.get("minutes", "-")
            secs = r.get("craft_seconds")
            took = "-" if secs is None else (f"{secs:.1f} s" if secs < 60 else
                                             f"{secs / 60:.1f} min")
            rows.append([f"{100 * b:g} %", method(r), fmt(r, "reduction_ratio"),
                         red.text() if isinstance(red, pv.Published) else str(red),
                         took,
                         mins.text() if isinstance(mins, pv.Published) else str(mins)])
    return [Table(["budget", "method", "reduction ours", "reduction paper",
                   "crafting time ours", "running time paper (min)"], rows,
                  f"Table 2 ({score.upper()}): our crafting time per poison set (wall "
                  f"time, mean over repeats) vs the paper's running time; {run.where()}. "
                  "Paper: CIFAR-10, budgets 0.5-2 % (ranges over budgets, SPEC 9).")]


def e5_blocks(run: RunResult, tag: str) -> list[Block]:
    score = scores(run.rows)[0]
    rows = []
    for b in by_budget(run.rows):
        l2 = one(run.rows, method="ours (l2)", budget=b, score=score)
        l3 = one(run.rows, method="ours (l3)", budget=b, score=score)
        rand = one(run.rows, method="RandUn", budget=b, score=score)
        diff = "-"
        if l2 is not None and l3 is not None:
            a, c = (l3.get("reduction_ratio") or {}).get("mean"), (
                l2.get("reduction_ratio") or {}).get("mean")
            if a is not None and c is not None:
                diff = f"{a - c:+.3f}"
        paper = pv.L3_OVER_L2.get(round(b, 6))
        rows.append([f"{100 * b:g} %", fmt(rand, "reduction_ratio"),
                     fmt(l2, "reduction_ratio"), fmt(l3, "reduction_ratio"), diff,
                     f"+{paper.value:.2f}" if paper else "-"])
    return [
        Figure(f"fig3-{tag}", figures.fig3(run, score),
               f"Fig. 3: reduction ratio of RandUn, l2 and l3 by budget; {run.where()}."),
        Table(["budget", "RandUn", "ours l2", "ours l3", "l3 - l2 ours", "l3 - l2 paper"],
              rows, "Paper: Sec. 5.3 (CIFAR-10, black box)."),
    ]


def _against_table(run: RunResult, key: str, label: str,
                   show: Callable[[Any], str]) -> Table:
    rows = []
    for r in run.rows:
        rows.append([show(point(r, key)), str(r["score"]).upper(), method(r),
                     fmt(r, "benign_set_size"), fmt(r, "victim_set_size"),
                     fmt(r, "reduction_ratio")])
    return Table([label, "score", "attack", "benign size", "victim size", "reduction ratio"],
                 rows, "The paper gives these only as a figure.")


def e6_blocks(run: RunResult, tag: str) -> list[Block]:
    return [Figure(f"fig4-{tag}", figures.fig4(run),
                   f"Fig. 4: against the targets' benign set size; {run.where()}."),
            _against_table(run, "targets.set_size", "benign set size", str)]


def e7_blocks(run: RunResult, tag: str) -> list[Block]:
    def show(v: Any) -> str:
        from cpoison.reproduce.results import as_number

        x = as_number(v)
        return f"{255 * x:g}/255" if x is not None else str(v)

    return [Figure(f"fig5-{tag}", figures.fig5(run),
                   f"Fig. 5: against the perturbation bound; {run.where()}."),
            _against_table(run, "eps", "eps", show)]


DRAW: dict[str, Callable[[RunResult, str], list[Block]]] = {
    "E1": e1_blocks, "E2": e2_blocks, "E3": e3_blocks, "E4": e4_blocks, "E5": e5_blocks,
    "E6": e6_blocks, "E7": e7_blocks,
}


# -- the document -----------------------------------------------------------------------------

def load_runs(out: Path, scale: str) -> dict[str, list[RunResult]]:
    """Every finished run under ``out`` by experiment (E2: E1's overconfidence runs)."""
    runs: dict[str, list[RunResult]] = {}
    for exp in EXPERIMENTS:
        found = [r for p in parts(exp, scale) if (r := load_run(p, out)) is not None]
        runs[exp] = found
    runs["E2"] = [r for r in runs["E1"] if r.goal == "overconfidence"]
    return runs


def build(out: Path, scale: str, manifest: dict[str, Any] | None = None) -> list[Section]:
    """The report's sections from the runs under ``out``."""
    manifest = manifest or {}
    runs = load_runs(out, scale)
    failures = manifest.get("failures", {})
    intro = Section("Reproduction of Li et al., ICML 2024", "top")
    intro.blocks.append(Para(
        f"Scale: {scale} ({SCALE_WORDS[scale]}). Each experiment of SPEC 9 is a normal "
        "cpoison run folder under this one (resume it with the same command, or rebuild its "
        "own report with `cpoison report FOLDER`). Numbers are mean ± standard error across "
        "repeats (across victims when there is a single repeat), for the crafted targets. "
        f"Published values: {pv.SOURCE}; they are CIFAR-10 / ResNet-18 figures, printed "
        "beside ours for orientation (at CPU scale the dataset and the models differ)."))
    if manifest.get("command"):
        intro.blocks.append(Para(manifest["command"], "code"))
    claims = Section("Claims of the paper's Sec. 5", "claims")
    rows = []
    for claim, verdict in decide(runs):
        rows.append([claim.id, claim.where, claim.text, verdict.status, verdict.numbers,
                     claim.paper, claim.rule])
    held = sum(1 for r in rows if r[3] == HELD)
    not_held = sum(1 for r in rows if r[3] == NOT_HELD)
    no_room = sum(1 for r in rows if r[3] == NO_ROOM)
    claims.blocks.append(Para(
        f"{held} held, {not_held} not held, {no_room} undecided (no room: the run's targets "
        f"have singleton benign sets, so nothing can be reduced), "
        f"{len(rows) - held - not_held - no_room} not run at this scale. A verdict compares "
        "means; read the ± beside them before trusting a difference smaller than its "
        "standard error."))
    claims.blocks.append(Table(["claim", "paper", "the paper says", "verdict", "our numbers",
                                "paper's numbers", "decided by"], rows))
    sections = [intro, claims]
    for exp, info in EXPERIMENTS.items():
        sec = Section(f"{exp}: {info.title} (paper {info.paper})", exp.lower())
        if not runs[exp]:
            configs = ", ".join(p.config_name for p in parts(info.source or exp, scale))
            why = "; ".join(f"{k}: {v}" for k, v in failures.items() if k.startswith(
                info.source or exp))
            sec.blocks.append(Para(
                f"Not run at this scale: no finished run under {out.name}/"
                f"{info.source or exp}/ (configs: {configs or 'none yet at this scale'})."
                + (f" Failed: {why}" if why else ""), "note"))
        for run in runs[exp]:
            tag = f"{exp.lower()}-{run.part.name or 'main'}"
            if len(runs[exp]) > 1 or run.part.name:
                sec.blocks.append(Para(f"{run.part.label}: {run.where()}; run folder "
                                       f"{run.folder.relative_to(out)}/"))
            sec.blocks.extend(DRAW[exp](run, tag))
        sections.append(sec)
    env = _environment(runs)
    if env:
        sections.append(Section("Software and hardware", "environment", [Para(env)]))
    return sections


SCALE_WORDS = {
    "paper": "the paper's presets: CIFAR-10 / CIFAR-100 / Tiny-ImageNet, ResNet-18, 8 victims "
             "x 10 repeats",
    "cpu": "Fashion-MNIST, preset cpu-full (2x512 MLP victims), a few victims and repeats",
    "test": "scikit-learn digits, one victim, a few crafting steps: a smoke test whose "
            "numbers mean nothing",
}
assert set(SCALE_WORDS) == set(SCALES)


def _environment(runs: dict[str, list[RunResult]]) -> str:
    seen = []
    for exp, found in runs.items():
        for run in found:
            env = run.summary.get("environment") or {}
            if env:
                seen.append(
                    f"{run.part.label}: cpoison {env.get('cpoison')}, torch {env.get('torch')}"
                    f", {env.get('platform')}, {env.get('threads')} threads"
                    + (f", {env['cuda']}" if env.get("cuda") else "")
                    + f"; last invocation {run.summary.get('wall_seconds', 0):.0f} s wall, "
                    f"{run.summary.get('trained_models', '-')} models trained")
            if exp == "E2":
                break
    return "\n".join(dict.fromkeys(seen))


# -- renderers -----------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(sections: list[Section]) -> str:
    lines: list[str] = []
    for i, sec in enumerate(sections):
        lines += [f"{'#' if i == 0 else '##'} {sec.title}", ""]
        for block in sec.blocks:
            if isinstance(block, Figure):
                lines += [f"![{block.caption}]({block.name}.png)", "", f"*{block.caption}*", ""]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |"
                          for row in block.rows]
                lines += ["", f"*{block.caption}*", ""] if block.caption else [""]
            elif block.kind == "code":
                lines += ["```", block.text, "```", ""]
            elif block.kind == "note":
                lines += [f"> {block.text}", ""]
            else:
                lines += [block.text, ""]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1150px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em;width:100%}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
td.held{background:#dff3df!important;font-weight:600}
td.not-held{background:#f8dcdc!important;font-weight:600}
td.not-run{background:#eee!important;color:#666}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption,.caption{font-size:.85em;color:#555}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}
.note{background:#fff7e0;border-left:4px solid #e0b000;padding:.5em .8em}
nav a{margin-right:.8em}
"""


def _cell_class(text: str) -> str:
    return {HELD: ' class="held"', NOT_HELD: ' class="not-held"'}.get(
        text, ' class="not-run"' if text.startswith(("not run", "undecided")) else "")


def to_html(sections: list[Section]) -> str:
    esc = html.escape
    body = ["<nav>" + "".join(f'<a href="#{s.anchor}">{esc(s.title.split(":")[0])}</a>'
                              for s in sections[1:]) + "</nav>"]
    for i, sec in enumerate(sections):
        tag = "h1" if i == 0 else "h2"
        body.append(f'<{tag} id="{sec.anchor}">{esc(sec.title)}</{tag}>')
        for block in sec.blocks:
            if isinstance(block, Figure):
                data = base64.b64encode(block.png).decode("ascii")
                body.append(f'<figure><img alt="{esc(block.caption)}" '
                            f'src="data:image/png;base64,{data}"><figcaption>'
                            f"{esc(block.caption)}</figcaption></figure>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
                rows = "".join("<tr>" + "".join(f"<td{_cell_class(c)}>{esc(c)}</td>"
                                                for c in row) + "</tr>" for row in block.rows)
                cap = f'<p class="caption">{esc(block.caption)}</p>' if block.caption else ""
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
                            f"</table>{cap}")
            elif block.kind == "code":
                body.append(f"<pre><code>{esc(block.text)}</code></pre>")
            elif block.kind == "note":
                body.append(f'<p class="note">{esc(block.text)}</p>')
            else:
                body.append(f"<p>{esc(block.text)}</p>".replace("\n", "<br>"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(sections[0].title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write(out: str | Path, scale: str) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (with its PNGs) into ``out`` from the runs
    found there; returns their paths."""
    out = Path(out)
    manifest_path = out / "reproduce.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    sections = build(out, scale, manifest)
    for sec in sections:
        for block in sec.blocks:
            if isinstance(block, Figure):
                atomic_write(out / f"{block.name}.png",
                             lambda path, data=block.png: path.write_bytes(data))
    md = atomic_write_text(out / "report.md", to_markdown(sections))
    page = atomic_write_text(out / "report.html", to_html(sections))
    return page, md


__all__ = ["Figure", "Para", "Section", "Table", "build", "load_runs", "methods", "to_html",
           "to_markdown", "write"]
