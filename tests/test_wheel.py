"""The wheel installs and runs outside the checkout (issue 14: installable anywhere).

Builds the wheel from a copy of the sources, installs it with ``--no-deps`` into a fresh
virtualenv in a temporary folder, lets that virtualenv see this interpreter's site-packages
(torch and the other dependencies are reused, not downloaded) through a ``.pth`` file, and
runs the installed package from another temporary folder: its version, the shipped configs
(package data, SPEC 9) and the console script. About 10-20 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """This process's environment without anything that points back at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(args: list[str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _project_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match, "pyproject.toml has no static version"
    return match.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtualenv holding the freshly built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(tmp / "dist"), str(source)], cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("cpoison-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "--quiet", str(wheel)], cwd=tmp)  # fmt: skip
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=tmp).strip()  # fmt: skip
    host = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "_cpoison_test_host_site.pth").write_text("\n".join(host) + "\n")
    return bin_dir


def _python(bin_dir: Path) -> str:
    return str(bin_dir / ("python.exe" if os.name == "nt" else "python"))


def test_installed_package_is_the_wheel_with_its_version(installed: Path, tmp_path: Path) -> None:
    out = _run([_python(installed), "-c",
                "import cpoison; print(cpoison.__version__); print(cpoison.__file__)"],
               cwd=tmp_path).split("\n")  # fmt: skip
    assert out[0] == _project_version()
    assert Path(out[1]).is_relative_to(installed.parent), "imported from outside the venv"


def test_shipped_configs_resolve_from_any_folder(installed: Path, tmp_path: Path) -> None:
    code = (
        "from cpoison.resources import resolve_config, shipped_configs\n"
        "from cpoison.experiments.config import load_config\n"
        "print(' '.join(shipped_configs()))\n"
        "path = resolve_config('configs/demo.yaml')\n"
        "print(path)\n"
        "print(load_config(path).name)\n"
        "print(resolve_config('cpu/table2.yaml').name)\n"
    )
    names, path, name, table2 = _run([_python(installed), "-c", code], cwd=tmp_path).split("\n")[:4]
    assert "configs/demo.yaml" in names.split() and "configs/cpu/table2.yaml" in names.split()
    # the reproduction's configs, two folders deep (cpoison reproduce, SPEC 9)
    assert "configs/reproduce/paper/E1-cifar10.yaml" in names.split()
    assert Path(path).is_relative_to(installed.parent)
    assert Path(path).read_text() == (ROOT / "src/cpoison/configs/demo.yaml").read_text()
    assert name == "demo-overconfidence" and table2 == "table2.yaml"


def test_console_script_runs_from_a_temporary_folder(installed: Path, tmp_path: Path) -> None:
    script = str(installed / "cpoison")
    help_text = _run([script, "--help"], cwd=tmp_path)
    assert "usage: cpoison" in help_text
    assert _run([script, "--version"], cwd=tmp_path).strip() == f"cpoison {_project_version()}"
    # a dataset that ships with scikit-learn: no download, a second or two
    out = _run([script, "data", "digits"], cwd=tmp_path)
    assert "digits" in out and "10 classes" in out


def test_a_shipped_config_runs_from_a_temporary_folder(installed: Path, tmp_path: Path) -> None:
    """`cpoison attack configs/digits-tiny.yaml` outside the checkout: the shipped config is
    found in the installed package and the run writes its report."""
    script = str(installed / "cpoison")
    out = _run([script, "attack", "configs/digits-tiny.yaml", "--out", "run", "--store",
                "store", "--quiet", "--threads", "1"], cwd=tmp_path, timeout=300)
    assert "| budget | attack | score |" in out
    assert (tmp_path / "run" / "report.md").is_file()
    assert (tmp_path / "run" / "reduction_ratio_vs_budget.png").is_file()
