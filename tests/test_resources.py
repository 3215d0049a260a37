"""Shipped configs found from any folder (cpoison.resources; issue 14, SPEC 9 / 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpoison.errors import ConfigError
from cpoison.resources import resolve_config, shipped_configs

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "cpoison" / "configs"


def test_shipped_configs_lists_every_yaml_under_configs() -> None:
    names = shipped_configs()
    files = SHIPPED.rglob("*.yaml")
    expected = sorted(f"configs/{p.relative_to(SHIPPED).as_posix()}" for p in files)
    assert names == expected
    assert "configs/demo.yaml" in names and "configs/cpu/table2.yaml" in names


@pytest.mark.parametrize(
    ("given", "expected"),
    [("configs/demo.yaml", "demo.yaml"), ("demo.yaml", "demo.yaml"),
     ("cpu/table2.yaml", "cpu/table2.yaml"), ("./configs/cpu/table2.yaml", "cpu/table2.yaml")],
)  # fmt: skip
def test_shipped_names_resolve_from_another_folder(
    given: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = resolve_config(given)
    assert path.read_bytes() == (SHIPPED / expected).read_bytes()


def test_a_users_own_file_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("name: mine\n")
    assert resolve_config("configs/demo.yaml").read_text() == "name: mine\n"
    mine = tmp_path / "elsewhere.yaml"
    mine.write_text("name: other\n")
    assert resolve_config(str(mine)) == mine


@pytest.mark.parametrize("given", ["configs/nope.yaml", "/no/such/demo.yaml", "../demo.yaml",
                                   "configs", "cpu"])  # fmt: skip
def test_missing_config_names_the_path_and_lists_shipped(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        resolve_config(given)
    message = str(err.value)
    assert given in message and "configs/demo.yaml" in message


def test_empty_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        resolve_config("  ")
