"""The reproduction report's blocks (figures, tables, text) and their renderings: Markdown,
self-contained HTML, CSV and LaTeX (:mod:`cpoison.reproduce.report` builds the blocks).
No machine path reaches a rendering: :func:`scrub` replaces every absolute path by its last
component."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from dataclasses import dataclass, field

from cpoison.reproduce import figures
from cpoison.reproduce.claims import HELD, INDISTINGUISHABLE, NO_ROOM, NOT_HELD, NOT_RUN


@dataclass
class Figure:
    """A figure: its file stem beside report.md (``.png``, ``.pdf``, ``.svg``), the rendered
    bytes and its caption."""

    name: str
    rendered: figures.Rendered
    caption: str

    @property
    def png(self) -> bytes:
        return self.rendered.png


@dataclass
class Table:
    """A table: shown in the report and written as ``<name>.csv`` and ``<name>.tex`` beside
    it (``csv``: other headers and rows for the CSV file, e.g. unrounded numbers)."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    name: str = ""
    csv: tuple[list[str], list[list[str]]] | None = None


@dataclass
class Para:
    """Text: a paragraph (``p``), a command (``code``), a note, or a list (``list``: one
    item a line)."""

    text: str
    kind: str = "p"


Block = Figure | Table | Para


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


# -- no machine paths -----------------------------------------------------------------------

#: an absolute POSIX path (``/work/runs/repro``, ``/tmp/x``): a slash that starts a word,
#: followed by at least one path character (so ``16/255``, ``HPS / APS`` and URLs stay)
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])(?:~)?/[\w.+-]+(?:/[\w.+-]*)*")


def portable(text: str) -> str:
    """``text`` with every absolute path replaced by its last component
    (``--out /work/runs/repro-cpu`` -> ``--out repro-cpu``)."""
    return _ABSOLUTE.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or ".", text)


def scrub(sections: list[Section]) -> list[Section]:
    """Every text of ``sections`` without machine paths (:func:`portable`)."""
    for sec in sections:
        for block in sec.blocks:
            if isinstance(block, Para):
                block.text = portable(block.text)
            elif isinstance(block, Table):
                block.caption = portable(block.caption)
                block.rows = [[portable(c) for c in row] for row in block.rows]
                if block.csv is not None:
                    block.csv = (block.csv[0], [[portable(c) for c in row]
                                                for row in block.csv[1]])
            elif isinstance(block, Figure):
                block.caption = portable(block.caption)
    return sections


# -- renderers -----------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _also(table: Table) -> str:
    return f"Also as [CSV]({table.name}.csv) and [LaTeX]({table.name}.tex)." if table.name else ""


def to_markdown(sections: list[Section]) -> str:
    lines: list[str] = []
    for i, sec in enumerate(sections):
        lines += [f"{'#' if i == 0 else '##'} {sec.title}", ""]
        for block in sec.blocks:
            if isinstance(block, Figure):
                lines += [f"![{block.caption}]({block.name}.png)", "",
                          f"*{block.caption}* ([PDF]({block.name}.pdf), "
                          f"[SVG]({block.name}.svg))", ""]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |"
                          for row in block.rows]
                note = " ".join(t for t in (f"*{block.caption}*" if block.caption else "",
                                            _also(block)) if t)
                lines += ["", note, ""] if note else [""]
            elif block.kind == "code":
                lines += ["```", block.text, "```", ""]
            elif block.kind == "note":
                lines += [f"> {block.text}", ""]
            elif block.kind == "list":
                lines += [f"- {item}" for item in block.text.splitlines()] + [""]
            else:
                lines += [block.text, ""]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1150px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
td.held{background:#dff3df!important;font-weight:600}
td.not-held{background:#f8dcdc!important;font-weight:600}
td.indistinguishable{background:#fff4d6!important}
td.not-run{background:#eee!important;color:#666}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption,.caption{font-size:.85em;color:#555}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}
.note{background:#fff7e0;border-left:4px solid #e0b000;padding:.5em .8em}
ul.claims li{margin:.3em 0;font-size:.9em}
nav a{margin-right:.8em}
"""


def _cell_class(text: str) -> str:
    return {HELD: ' class="held"', NOT_HELD: ' class="not-held"',
            INDISTINGUISHABLE: ' class="indistinguishable"', NO_ROOM: ' class="not-run"',
            NOT_RUN: ' class="not-run"'}.get(text, "")


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
            elif block.kind == "list":
                items = "".join(f"<li>{esc(t)}</li>" for t in block.text.splitlines())
                body.append(f'<ul class="claims">{items}</ul>')
            else:
                body.append(f"<p>{esc(block.text)}</p>".replace("\n", "<br>"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(sections[0].title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def to_csv(table: Table) -> str:
    """The table as CSV (its ``csv`` headers and rows when it has them)."""
    headers, rows = table.csv if table.csv is not None else (table.headers, table.rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$", "−": "$-$",
                  "→": r"$\rightarrow$", "×": r"$\times$", "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX source (special characters escaped, ± and friends in math)."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return "".join(_LATEX_UNICODE.get(ch, ch) for ch in out)


def to_latex(table: Table) -> str:
    """The table as a LaTeX ``table`` float (booktabs rules), captioned and labelled
    ``tab:<name>``."""
    cols = "l" * len(table.headers)
    lines = [r"% generated by cpoison reproduce; needs \usepackage{booktabs}",
             r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.caption:
        lines.append(rf"\caption{{{latex_escape(table.caption)}}}")
    if table.name:
        lines.append(rf"\label{{tab:{table.name}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"



__all__ = ["Block", "Figure", "Para", "Section", "Table", "latex_escape", "portable", "scrub",
           "to_csv", "to_html", "to_latex", "to_markdown"]
