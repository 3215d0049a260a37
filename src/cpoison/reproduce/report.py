"""The reproduction report (issues 12 and 20, SPEC 9): one document, written twice from the
same blocks, as ``OUT/report.html`` (self-contained: every figure embedded as a base64 PNG)
and ``OUT/report.md`` (its figures as PNG files beside it, with PDF and SVG copies), every
table also as CSV and LaTeX beside it (``claims.csv``, ``claims.tex``, ``table-e3.csv``, ...),
fit for a paper's appendix.

It opens with the paper's claims of Sec. 5 and their verdicts from paired statistics
(:mod:`cpoison.reproduce.claims`): a short table (verdict, paired difference ± s.e., its
one-sided lower bound, victims x repeats, the targets' selection, consistency) and the long
text in a list below it, so the table reads without scrolling. Then each experiment is
drawn the paper's way (:mod:`cpoison.reproduce.figures`: the paper's values in a panel of
their own) with a table of our numbers and, wherever the paper prints one, the published
value beside ours (:mod:`cpoison.reproduce.paper_values`). An experiment without a finished
run says "not run"; no number is ever filled in that a run did not produce, and no machine
path (an absolute path, a temporary folder) is ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpoison.io import atomic_write, atomic_write_text
from cpoison.reproduce import figures
from cpoison.reproduce import paper_values as pv
from cpoison.reproduce.claims import (
    HELD,
    INDISTINGUISHABLE,
    LEVEL,
    NO_ROOM,
    NOT_HELD,
    NOT_RUN,
    VERDICTS,
    Claim,
    Verdict,
    decide,
)
from cpoison.reproduce.experiments import EXPERIMENTS, SCALES, parts
from cpoison.reproduce.render import (
    Block,
    Figure,
    Para,
    Section,
    Table,
    scrub,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from cpoison.reproduce.results import (
    RunResult,
    as_number,
    by_budget,
    dataset_name,
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
               f"Fig. 1 ({dataset_name(run.dataset)}, {run.goal}): "
               f"{metric.replace('_', ' ')} of the targets against the poison budget; "
               f"{run.where()}."
               + (" Right: the paper's CIFAR-10 values at 2 %." if metric ==
                  "reduction_ratio" else "")),
        Table(["score", "budget", "attack", "benign size", "victim size",
               metric.replace("_", " "), "paper (CIFAR-10)"], rows,
              "Paper values: Sec. 5.1 (CIFAR-10, ResNet-18); sizes and ratios of the "
              "targets, mean ± s.e.", f"table-{tag}"),
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
               f"Fig. 2 ({dataset_name(run.dataset)}): prediction consistency and "
               f"empirical coverage, benign vs victim; {run.where()}."),
        Table(["score", "budget", "attack", "consistency", "coverage benign",
               "coverage victim", "accuracy victim"], rows,
              "On the evaluation set (the test set without the targets); the paper gives "
              "these only as a figure.", f"table-{tag}"),
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
                  f"{run.where()}. Paper: CIFAR-10 at 2 %, Table 1.", f"table-{tag}")]


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
                  "Paper: CIFAR-10, budgets 0.5-2 % (ranges over the budgets).",
                  f"table-{tag}")]


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
               f"Fig. 3: reduction ratio of RandUn, l2 and l3 by budget; {run.where()}. "
               "Right: the paper's l3 - l2 margins (CIFAR-10)."),
        Table(["budget", "RandUn", "ours l2", "ours l3", "l3 - l2 ours", "l3 - l2 paper"],
              rows, "Paper: Sec. 5.3 (CIFAR-10, black box).", f"table-{tag}"),
    ]


def _against_table(run: RunResult, key: str, label: str,
                   show: Callable[[Any], str], tag: str) -> Table:
    rows = []
    for r in run.rows:
        rows.append([show(point(r, key)), str(r["score"]).upper(), method(r),
                     fmt(r, "benign_set_size"), fmt(r, "victim_set_size"),
                     fmt(r, "reduction_ratio")])
    return Table([label, "score", "attack", "benign size", "victim size", "reduction ratio"],
                 rows, "The paper gives these only as a figure.", f"table-{tag}")


def e6_blocks(run: RunResult, tag: str) -> list[Block]:
    return [Figure(f"fig4-{tag}", figures.fig4(run),
                   f"Fig. 4: against the targets' benign set size; {run.where()}."),
            _against_table(run, "targets.set_size", "benign set size", str, tag)]


def e7_blocks(run: RunResult, tag: str) -> list[Block]:
    def show(v: Any) -> str:
        x = as_number(v)
        return f"{255 * x:g}/255" if x is not None else str(v)

    return [Figure(f"fig5-{tag}", figures.fig5(run),
                   f"Fig. 5: against the perturbation bound; {run.where()}."),
            _against_table(run, "eps", "eps", show, tag)]


DRAW: dict[str, Callable[[RunResult, str], list[Block]]] = {
    "E1": e1_blocks, "E2": e2_blocks, "E3": e3_blocks, "E4": e4_blocks, "E5": e5_blocks,
    "E6": e6_blocks, "E7": e7_blocks,
}


# -- the claims -----------------------------------------------------------------------------

TEST_WORDS = (
    "How a claim is decided. Each claim is a statement about differences measured on the "
    "same victims: a poisoned victim against its benign twin (same initial weights and data "
    "order: the reduction or expansion ratio of its targets' sets, or its change of "
    "coverage), ours against a baseline on the same benign victims, or one attack at two "
    "grid points (a larger against a smaller bound, a defense against none) paired by "
    "(score, repeat, victim). The per-victim differences are averaged per repeat, and a "
    f"one-sided {100 * LEVEL:g} % interval is put across repeats with Student's t (n - 1 "
    "degrees of freedom; scipy.stats). Repeats are the independent draws (target class, "
    "targets, surrogate, victims), while the victims of one repeat share its targets and "
    "poisons; with a handful of repeats the t quantile is the honest width, and the mean "
    "of independent repeats is close to normal. With a single repeat the victims are the "
    "units, an interval narrower than one across repeats would be. "
    f"Verdicts: {HELD} (the bound on the claimed side of the threshold), {NOT_HELD} (the "
    "mirrored bound on the other side, or a stated threshold missed), "
    f"{INDISTINGUISHABLE} (neither), {NO_ROOM} (the targets' benign sets are (almost) all "
    "singletons, mean size <= 1.02: there is nothing to shrink), "
    f"{NOT_RUN} (no run at this scale). A claim made over several cells (budgets, scores, "
    "defenses) holds when every cell holds and is not held when one is; the table shows "
    "the deciding cell (the weakest), the list below every cell.")

CLAIM_HEADERS = ["claim", "verdict", "difference ± s.e.", "lower bound", "n", "targets",
                 "consistency"]
CLAIM_CSV_HEADERS = ["claim", "where", "verdict", "deciding cell", "compared", "difference",
                     "se", "lower_bound", "upper_bound", "units", "victims", "repeats",
                     "targets", "consistency", "rule"]


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _claim_row(claim: Claim, verdict: Verdict) -> list[str]:
    cell = verdict.decisive
    if cell is None or verdict.status == NOT_RUN:
        return [claim.id, verdict.status, "-", "-", "-", verdict.selection or "-", "-"]
    consistency = (f"{cell.consistency:.3f}" if claim.effect and cell.consistency is not None
                   else "-")
    if verdict.status == NO_ROOM:
        return [claim.id, verdict.status, "-", "-", cell.n(), verdict.selection or "-",
                consistency]
    return [claim.id, verdict.status, cell.difference(), cell.bound(), cell.n(),
            verdict.selection or "-", consistency]


def _claim_csv(claim: Claim, verdict: Verdict) -> list[str]:
    from cpoison.experiments.paired import upper_bound

    cell = verdict.decisive
    i = cell.interval if cell is not None else {}
    return [claim.id, claim.where, verdict.status, cell.where if cell else "",
            cell.compared if cell else "", _num(i.get("mean")), _num(i.get("se")),
            _num(i.get("lower")), _num(upper_bound(i)) if i else "", str(i.get("units", "")),
            str(i.get("victims", "")), str(i.get("repeats", "")), verdict.selection_long,
            _num(cell.consistency) if cell is not None and claim.effect else "", claim.rule]


def _claim_note(claim: Claim, verdict: Verdict) -> str:
    cell = verdict.decisive
    deciding = (f" Deciding cell: {cell.where}, {cell.compared}." if cell is not None
                and verdict.status != NOT_RUN else "")
    every = (f" Every cell: {verdict.numbers}." if len(verdict.cells) > 1 else
             (f" Numbers: {verdict.numbers}." if verdict.status == NOT_RUN else ""))
    targets = f" Targets: {verdict.selection_long}." if verdict.selection_long else ""
    return (f"{claim.id} ({claim.where}, {claim.experiment}): {claim.text} The paper: "
            f"{claim.paper}. Decided by: {claim.rule}.{deciding}{targets}{every}")


def claims_section(runs: dict[str, list[RunResult]]) -> Section:
    """The claims of Sec. 5: counts, how they are decided, the short table, the notes."""
    decided = decide(runs)
    counts = {v: sum(1 for _, d in decided if d.status == v) for v in VERDICTS}
    sec = Section("Claims of the paper's Sec. 5", "claims")
    sec.blocks.append(Para(", ".join(f"{n} {v}" for v, n in counts.items()) + "."))
    sec.blocks.append(Para(TEST_WORDS))
    rows = [_claim_row(c, v) for c, v in decided]
    sec.blocks.append(Table(
        CLAIM_HEADERS, rows,
        "difference: the deciding cell's paired mean difference ± its standard error "
        f"(across repeats); lower bound: its one-sided {100 * LEVEL:g} % bound (an interval "
        "[lower, upper] for an equivalence claim); n: victim pairs x repeats; targets: the "
        "targets' surrogate set size rule; consistency: prediction consistency of the "
        "attack's victims with their benign twins (claims about the attack's effect). "
        "Each claim in words below.", "claims",
        (CLAIM_CSV_HEADERS, [_claim_csv(c, v) for c, v in decided])))
    sec.blocks.append(Para("\n".join(_claim_note(c, v) for c, v in decided), "list"))
    return sec


# -- the document -----------------------------------------------------------------------------

def load_runs(out: Path, scale: str) -> dict[str, list[RunResult]]:
    """Every finished run under ``out`` by experiment (E2: E1's overconfidence runs)."""
    runs: dict[str, list[RunResult]] = {}
    for exp in EXPERIMENTS:
        found = [r for p in parts(exp, scale) if (r := load_run(p, out)) is not None]
        runs[exp] = found
    return with_e2(runs)


def with_e2(runs: dict[str, list[RunResult]]) -> dict[str, list[RunResult]]:
    """``runs`` with E2 read from E1's overconfidence runs (as the paper does)."""
    runs["E2"] = [r for r in runs.get("E1", []) if r.goal == "overconfidence"]
    return runs


def build(out: Path, scale: str, manifest: dict[str, Any] | None = None,
          runs: dict[str, list[RunResult]] | None = None) -> list[Section]:
    """The report's sections from the runs under ``out`` (or ``runs``, e.g. rebuilt from
    exported cells), without a machine path anywhere."""
    manifest = manifest or {}
    runs = runs if runs is not None else load_runs(out, scale)
    failures = manifest.get("failures", {})
    intro = Section("Reproduction of Li et al., ICML 2024", "top")
    intro.blocks.append(Para(
        f"Scale: {scale} ({SCALE_WORDS[scale]}). Each experiment is a normal cpoison run "
        "folder under this one (resume it with the same command, or rebuild its own report "
        "with `cpoison report FOLDER`). Numbers in the experiment tables are mean ± "
        "standard error across repeats (across victims when there is a single repeat), for "
        "the crafted targets; the claims are decided on paired differences (below). "
        f"Published values: {pv.SOURCE}; they are CIFAR-10 / ResNet-18 figures, shown "
        "beside ours (in tables) or in panels of their own (in figures) for orientation: at "
        "CPU scale the dataset and the models differ. Every table is also written as CSV "
        "and LaTeX beside this report, every figure as PNG, PDF and SVG."))
    if manifest.get("command"):
        intro.blocks.append(Para(manifest["command"], "code"))
    sections = [intro, claims_section(runs)]
    for exp, info in EXPERIMENTS.items():
        sec = Section(f"{exp}: {info.title} (paper {info.paper})", exp.lower())
        if not runs.get(exp):
            configs = ", ".join(p.config_name for p in parts(info.source or exp, scale))
            why = "; ".join(f"{k}: {v}" for k, v in failures.items() if k.startswith(
                info.source or exp))
            sec.blocks.append(Para(
                f"Not run at this scale: no finished run under {out.name}/"
                f"{info.source or exp}/ (configs: {configs or 'none yet at this scale'})."
                + (f" Failed: {why}" if why else ""), "note"))
        for run in runs.get(exp, []):
            tag = f"{exp.lower()}-{run.part.name or 'main'}"
            if len(runs[exp]) > 1 or run.part.name:
                sec.blocks.append(Para(f"{run.part.label}: {run.where()}; run folder "
                                       f"{run.part.folder(Path('.')).as_posix()}/"))
            sec.blocks.extend(DRAW[exp](run, tag))
        sections.append(sec)
    time_table = _machine_time(manifest)
    env = _environment(runs)
    if env or time_table:
        sec = Section("Software, hardware and machine time", "environment")
        if time_table:
            sec.blocks.append(time_table)
        if env:
            sec.blocks.append(Para(env))
        sections.append(sec)
    return scrub(sections)


SCALE_WORDS = {
    "paper": "the paper's presets: CIFAR-10 / CIFAR-100 / Tiny-ImageNet, ResNet-18, 8 victims "
             "x 10 repeats",
    "cpu": "Fashion-MNIST, preset cpu-full (2x512 MLP victims), 4 victims x 5 repeats, "
           "targets with room",
    "test": "scikit-learn digits, one victim, a few crafting steps: a smoke test whose "
            "numbers mean nothing",
}
assert set(SCALE_WORDS) == set(SCALES)


def _machine_time(manifest: dict[str, Any]) -> Table | None:
    """Where the machine time went: each part's last invocation (``reproduce.json``)."""
    parts_ = manifest.get("parts") or {}
    rows = [[label, f"{info.get('seconds', 0) / 60:.1f}",
             str(info.get("trained_models", "-"))]
            for label, info in parts_.items() if isinstance(info, dict)]
    if not rows:
        return None
    return Table(["part", "minutes (last invocation)", "models trained"], rows,
                 "Wall time of each part's last invocation on this machine; a resumed part "
                 "counts only what that invocation computed.", "machine-time")


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


def write(out: str | Path, scale: str,
          runs: dict[str, list[RunResult]] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out`` from the runs found there (or
    ``runs``), with every figure as PNG, PDF and SVG and every table as CSV and LaTeX
    beside them; returns the paths of the two reports."""
    out = Path(out)
    manifest_path = out / "reproduce.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    sections = build(out, scale, manifest, runs)
    for sec in sections:
        for block in sec.blocks:
            if isinstance(block, Figure):
                for fmt in figures.FORMATS:
                    data = block.rendered.data(fmt)
                    atomic_write(out / f"{block.name}.{fmt}",
                                 lambda path, data=data: path.write_bytes(data))
            elif isinstance(block, Table) and block.name:
                atomic_write_text(out / f"{block.name}.csv", to_csv(block))
                atomic_write_text(out / f"{block.name}.tex", to_latex(block))
    md = atomic_write_text(out / "report.md", to_markdown(sections))
    page = atomic_write_text(out / "report.html", to_html(sections))
    return page, md


__all__ = ["Figure", "Para", "Section", "Table", "build", "claims_section", "load_runs",
           "methods", "to_html", "to_markdown", "with_e2", "write"]
