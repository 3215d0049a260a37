"""Every Python example of the documentation runs (issue 14: examples cannot rot).

The ```python blocks of each page of ``docs/`` and of ``README.md`` are executed in page
order, in one fresh namespace per page (later blocks of a page continue earlier ones), from
a temporary working folder. Blocks in other languages (``sh``, ``yaml``) are not run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(page: Path) -> list[str]:
    """The source of each ```python block of ``page``, in order."""
    return [m.group(1) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


EXAMPLES = [p for p in PAGES if python_blocks(p)]


def test_the_pages_with_examples_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in EXAMPLES}
    assert {"README.md", "docs/python-api.md", "docs/configs.md"} <= names
    assert len(python_blocks(ROOT / "docs" / "python-api.md")) >= 3


@pytest.mark.parametrize("page", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    start = time.perf_counter()
    try:
        for i, source in enumerate(python_blocks(page)):
            name = f"{page.relative_to(ROOT).as_posix()} (python block {i + 1})"
            exec(compile(source, name, "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    # examples must stay quick (about 10 s each at most on one thread); generous here so a
    # busy machine does not fail the suite, tight enough to catch a paper-scale example
    assert seconds < 60, f"{page.name}'s examples took {seconds:.0f} s"
