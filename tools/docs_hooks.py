"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks``).

The API pages render the package's docstrings. Two things in them are written for
developers and readers of the source, not for the site, and are rewritten here, on the
rendered HTML of the API pages only:

- Sphinx cross-reference roles (``:class:`X```, ``:func:`~a.b.f```), which Markdown shows
  literally, become the code they name (``X``; ``f`` for ``~a.b.f``, as Sphinx shows it);
- references to the developers' specification by section number ("SPEC 3.2") become what
  the section is about ("the conformal threshold"); a parenthesis holding only such
  references is dropped.

tests/docs/test_api_pages.py checks that no built page mentions the specification.
"""

from __future__ import annotations

import re

# what each section of the developers' specification is about, as a reader of the API
# reference would say it (the Concepts page explains each)
SECTIONS = {
    "1": "the toolkit's users and uses",
    "2": "the threat model",
    "3": "the conformal prediction core",
    "3.1": "the score definitions",
    "3.2": "the conformal threshold and sets",
    "3.3": "the set metrics",
    "3.4": "the checks against MAPIE and TorchCP",
    "3.5": "full conformal prediction",
    "4": "the attack goals and losses",
    "4.1": "the attack goals",
    "4.2": "the relaxed loss (paper Eq. 7)",
    "4.3": "the worst-case loss (paper Eq. 8)",
    "5": "poison crafting",
    "5.1": "the first-order update (paper Eq. 11-13)",
    "5.2": "the second-order update (paper Eq. 16-17)",
    "5.3": "the comparator attacks",
    "5.4": "the attack's strength settings",
    "6": "the evaluation protocol",
    "7": "the defenses",
    "8": "the datasets and models",
    "9": "the paper's experiments",
    "10": "the engineering rules",
    "11": "the experiment engine",
    "12": "the audit of your own pipeline",
}

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref|term):"
    r"<code>(~?)([^<]+)</code>"
)
_NUM = r"\d+(?:\.\d+)*"
_SEP = r"\s*(?:/|,|and|-|to)\s*"
_REF = re.compile(rf"\bSPEC(?:\.md)?(?:\s+(?:section\s+)?({_NUM}(?:{_SEP}{_NUM})*))?")
_ONLY_REFS = re.compile(
    rf"\s*\((?:see\s+)?SPEC\s+{_NUM}(?:\s*(?:/|,|and|-|to|;)\s*(?:SPEC\s+)?{_NUM})*\)"
)


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def _meaning(number: str) -> str:
    while number and number not in SECTIONS:
        number = number.rsplit(".", 1)[0] if "." in number else ""
    return SECTIONS.get(number, "the design")


def _ref(match: re.Match[str]) -> str:
    numbers = match.group(1)
    if not numbers:
        return "the documentation"
    parts = re.split(r"(\s*(?:/|,|and|-|to)\s*)", numbers)
    out = []
    for part in parts:
        if re.fullmatch(_NUM, part.strip() or "x"):
            out.append(_meaning(part.strip()))
        else:
            sep = part.strip()
            out.append(" and " if sep in ("/", ",", "and") else " to ")
    return "".join(out)


def rewrite(html: str) -> str:
    """The API page's HTML with roles shown as code and no specification references."""
    html = _ROLE.sub(_role, html)
    html = _ONLY_REFS.sub("", html)
    return _REF.sub(_ref, html)


def on_page_content(html: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs API
    if page.file.src_uri.startswith("api/"):
        return rewrite(html)
    return html
