"""The layers of cpoison (pyproject.toml's import-linter contracts, docs/design.md): every
import runs downward, function-level imports included, and there is no import cycle between
packages nor between modules. A deliberate upward import makes the contract fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
# aliases of modules that moved (they name the moved module; listed in ignore_imports)
ALIASES = {"cpoison.experiments.runner", "cpoison.experiments.audit"}


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``src`` with the project's contracts."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from importlinter.cli import lint_imports_command; "
            "sys.argv = ['lint-imports', sys.argv[2], '--no-cache']; "
            "lint_imports_command()")
    return subprocess.run([sys.executable, "-c", code, str(src), str(ROOT / "pyproject.toml")],
                          capture_output=True, text=True, timeout=300, cwd=src)


def test_the_layers_hold():
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """training is below experiments: a lazy import of the workspace from the trainer (the
    kind that hides a cycle) fails both contracts."""
    shutil.copytree(ROOT / "src" / "cpoison", tmp_path / "cpoison",
                    ignore=shutil.ignore_patterns("__pycache__"))
    trainer = tmp_path / "cpoison" / "training" / "trainer.py"
    trainer.write_text(trainer.read_text() + (
        "\n\ndef _upward():\n    from cpoison.experiments.workspace import Workspace\n\n"
        "    return Workspace\n"))
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "cpoison.training.trainer -> cpoison.experiments.workspace" in done.stdout
    assert "BROKEN" in done.stdout


def test_every_module_of_the_protocol_is_in_a_layer():
    """The protocol's layer names its modules one by one (``:`` siblings); a new module of
    cpoison.experiments must be added there, or its imports would go unchecked."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    named = set()
    for layer in config["contracts"][0]["layers"]:
        named |= {part.strip() for part in layer.replace("|", ":").split(":")}
    modules = {f"cpoison.experiments.{p.stem}" if p.is_file() else f"cpoison.experiments.{p.name}"
               for p in (ROOT / "src" / "cpoison" / "experiments").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__")
               or (p.is_dir() and (p / "__init__.py").exists())}
    missing = {m for m in modules - ALIASES if not any(
        m == n or m.startswith(n + ".") or n.startswith(m + ".") for n in named)}
    assert not missing, f"add {sorted(missing)} to the protocol's layer in pyproject.toml"
