"""The reproduction report (issues 12, 20): ``cpoison reproduce --scale test`` writes normal
run folders that resume, and one report twice: ``report.html`` stands alone (figures
embedded) and renders in headless Chromium (Debian's ``chromium``) with every figure decoded
and every table holding rows; ``report.md`` has the same figures as PNG files beside it,
with PDF and SVG copies, and every table also as CSV and LaTeX; experiments not run say so
and carry no numbers; no machine path appears anywhere; the paper's values are drawn in a
panel of their own; the report is rebuilt from the reproduction's exported cells alone."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from reproduce_helpers import RUN, Reproduction

from cpoison.cli import main
from cpoison.reproduce import figures
from cpoison.reproduce.cells import export_reproduction, report_from_cells
from cpoison.reproduce.claims import CLAIMS, VERDICTS
from cpoison.reproduce.experiments import EXPERIMENTS
from cpoison.reproduce.report import CLAIM_HEADERS, load_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")

# Marks every <img> with whether the browser decoded it, once the page has loaded.
PROBE = ('<script>window.addEventListener("load",()=>{for(const i of document.images)'
         '{i.setAttribute("data-decoded",i.complete&&i.naturalWidth>0?"yes":"no")}'
         'document.body.setAttribute("data-probed","yes")})</script></body>')


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120, check=False)


class Page(HTMLParser):
    """Images (with their attributes), tables (with their body rows) and section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.tables: list[int] = []
        self.ids: list[str] = []
        self.body: dict[str, str | None] = {}
        self._in_tbody = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.images.append(a)
        elif tag == "body":
            self.body = a
        elif tag == "table":
            self.tables.append(0)
        elif tag == "tbody":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody:
            self.tables[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_tbody = False


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def rendered_dom(tmp: Path, html_text: str) -> Page:
    probe = tmp / "probe.html"
    probe.write_text(html_text.replace("</body>", PROBE))
    result = chromium(tmp, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    page = parse(result.stdout)
    assert page.body.get("data-probed") == "yes", result.stderr[-2000:]
    return page


def test_runs_are_normal_run_folders(reproduction: Reproduction) -> None:
    out = reproduction.out
    parts = reproduction.manifest["parts"]
    assert set(parts) == {"E1 over", "E1 under", "E3", "E4", "E7"}
    assert not reproduction.manifest["failures"]
    for info in parts.values():
        folder = out / info["folder"]
        for name in ("config.resolved.yaml", "results.sqlite", "summary.json", "report.md"):
            assert (folder / name).is_file(), folder / name
    assert not (out / "E5").exists() and not (out / "E6").exists()
    # cpoison report works on a part, as on any run
    assert main(["report", str(out / "E3")]) == 0


def test_a_second_run_resumes_and_trains_nothing(reproduction: Reproduction) -> None:
    assert main(reproduction.argv()) == 0
    import json

    manifest = json.loads((reproduction.out / "reproduce.json").read_text())
    assert {k: v["trained_models"] for k, v in manifest["parts"].items()} == {
        k: 0 for k in reproduction.manifest["parts"]}


def test_html_stands_alone_and_markdown_is_its_twin(reproduction: Reproduction) -> None:
    html_text = (reproduction.out / "report.html").read_text()
    md = (reproduction.out / "report.md").read_text()
    page = parse(html_text)
    assert page.images and all(str(i["src"]).startswith("data:image/png;base64,")
                               for i in page.images)
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert len(pngs) == len(page.images)
    for name in pngs:
        assert (reproduction.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        stem = reproduction.out / name[:-4]
        assert stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in stem.with_suffix(".svg").read_bytes()[:2000]
    assert {"fig1-e1-over.png", "fig1-e1-under.png", "fig2-e2-over.png",
            "fig5-e7-main.png"} <= set(pngs)
    md_tables = len(re.findall(r"^\|---", md, flags=re.M))
    assert md_tables == len(page.tables)
    for exp in EXPERIMENTS:
        assert exp.lower() in page.ids
    # every claim has its verdict line in both
    for claim in CLAIMS:
        assert f"| {claim.id} |" in md and f"<td>{claim.id}</td>" in html_text
    # experiments not run say so and show no numbers
    for exp in ("E5", "E6"):
        section = md.split(f"## {exp}:")[1].split("\n## ")[0]
        assert "Not run at this scale" in section
        assert "|" not in section and ".png" not in section
    # published values beside ours
    assert "0.46 ± 0.02" in md and "0.34 ± 0.05" in md  # Table 1, none / MaxUp HPS
    assert "12.8-19.3" in md  # Table 2 first order
    assert "cpoison reproduce " + " ".join(RUN) in md


@needs_chromium
def test_chromium_renders_every_figure_and_table(reproduction: Reproduction,
                                                 tmp_path: Path) -> None:
    html_text = (reproduction.out / "report.html").read_text()
    page = rendered_dom(tmp_path, html_text)
    assert len(page.images) == len(parse(html_text).images) >= 4  # Fig. 1 x 2, Fig. 2, Fig. 5
    assert [i.get("data-decoded") for i in page.images] == ["yes"] * len(page.images)
    assert page.tables and all(rows > 0 for rows in page.tables), page.tables
    shot = tmp_path / "report.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000",
                      (reproduction.out / "report.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, result.stderr[-2000:]


@needs_chromium
def test_the_probe_catches_a_broken_figure(reproduction: Reproduction,
                                           tmp_path: Path) -> None:
    """The decode check is not vacuous: a corrupt embedded PNG is reported as such."""
    html_text = (reproduction.out / "report.html").read_text()
    broken = html_text.replace("</body>", '<img src="data:image/png;base64,AAAA"></body>')
    page = rendered_dom(tmp_path, broken)
    assert [i.get("data-decoded") for i in page.images].count("no") == 1


def _claims_table(md: str) -> list[str]:
    section = md.split("## Claims of the paper's Sec. 5")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_claims_table_is_short_and_its_words_are_below(reproduction: Reproduction) -> None:
    md = (reproduction.out / "report.md").read_text()
    table = _claims_table(md)
    assert table[0] == "| " + " | ".join(CLAIM_HEADERS) + " |"
    assert len(table) == 2 + len(CLAIMS)
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert len(cells) == len(CLAIM_HEADERS) and cells[1] in VERDICTS, line
        assert max(len(c) for c in cells) <= 24, line  # no column forces scrolling
    assert "one-sided 95 % interval" in md and "Student's t" in md
    for claim in CLAIMS:  # the claim's words, the paper's numbers and the rule: below
        assert f"- {claim.id} ({claim.where}" in md and claim.rule in md


def test_every_table_is_also_csv_and_latex(reproduction: Reproduction) -> None:
    md = (reproduction.out / "report.md").read_text()
    names = re.findall(r"Also as \[CSV\]\(([^)]+)\.csv\) and \[LaTeX\]\(\1\.tex\)", md)
    assert len(names) == len(re.findall(r"^\|---", md, flags=re.M))
    assert {"claims", "table-e1-over", "table-e3-main", "table-e4-main"} <= set(names)
    for name in names:
        assert (reproduction.out / f"{name}.csv").read_text().count("\n") >= 2, name
        tex = (reproduction.out / f"{name}.tex").read_text()
        assert "\\begin{tabular}" in tex and "\\label{tab:" + name + "}" in tex, name
        assert "±" not in tex and "_" not in tex.replace("\\_", ""), name
    with (reproduction.out / "claims.csv").open() as handle:
        claims = list(csv.DictReader(handle))
    assert [c["claim"] for c in claims] == [c.id for c in CLAIMS]
    assert {"verdict", "difference", "se", "lower_bound", "victims", "repeats",
            "targets"} <= set(claims[0])


def _texts(folder: Path) -> dict[str, str]:
    out = {}
    for path in folder.iterdir():
        if path.suffix in (".md", ".csv", ".tex", ".html"):
            text = path.read_text()
            out[path.name] = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    return out


def test_no_machine_path_in_the_report(reproduction: Reproduction) -> None:
    texts = _texts(reproduction.out)
    assert {"report.md", "report.html", "claims.csv", "claims.tex"} <= set(texts)
    root = str(reproduction.out.parent)
    for name, text in texts.items():
        assert root not in text and "/tmp" not in text, name
        assert not re.search(r"(?<![\w.:/~-])/(?:work|home|root|Users|var|private)/", text), name
    assert f"--out {reproduction.out.name}" in texts["report.md"]


def test_the_papers_values_have_a_panel_of_their_own(reproduction: Reproduction) -> None:
    runs = load_runs(reproduction.out, "test")
    (over,) = [r for r in runs["E1"] if r.goal == "overconfidence"]
    drawn = figures.fig1(over)
    assert drawn.panels[-1] == figures.PAPER_TITLE
    ours = drawn.panels[:-1]
    assert ours and all(t.startswith("digits") and "CIFAR" not in t for t in ours)
    (under,) = [r for r in runs["E1"] if r.goal == "underconfidence"]
    assert figures.PAPER_TITLE not in figures.fig1(under).panels  # no published values


def test_report_rebuilt_from_exported_cells(reproduction: Reproduction,
                                            tmp_path: Path) -> None:
    written = export_reproduction(reproduction.out, tmp_path / "cells")
    assert set(written) == {"E1-over", "E1-under", "E3", "E4", "E7"}
    page, md_path = report_from_cells(tmp_path / "cells", tmp_path / "rebuilt")
    md = md_path.read_text()
    original = (reproduction.out / "report.md").read_text()
    assert _claims_table(md) == _claims_table(original)
    for name in ("fig1-e1-over.pdf", "claims.tex", "table-e3-main.csv"):
        assert (tmp_path / "rebuilt" / name).is_file(), name
    assert page.is_file() and str(tmp_path) not in md


def test_the_cli_exports_a_reproduction_and_rebuilds_its_report(
        reproduction: Reproduction, tmp_path: Path, capsys) -> None:
    """``cpoison export-cells OUT FOLDER`` on a reproduction's folder exports every part;
    ``cpoison report FOLDER --out DIR`` rebuilds the whole report from those cells."""
    assert main(["export-cells", str(reproduction.out), str(tmp_path / "cells")]) == 0
    assert "E1-over" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "cells"), "--out", str(tmp_path / "rebuilt")]) == 0
    md = (tmp_path / "rebuilt" / "report.md").read_text()
    assert _claims_table(md) == _claims_table((reproduction.out / "report.md").read_text())
