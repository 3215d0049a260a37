"""The run's results database (SPEC 10, 11): SQLite, one record per evaluation cell (keyed by
its content key, :mod:`cpoison.store.keys`) holding the rows of every score.

Only the driver writes it. A cell's rows are written in one transaction, so a run killed at
any moment leaves only whole cells behind; a re-run skips the cells whose keys it finds.
A database damaged on disk is reported as such (checked when opened), never as a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cpoison.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    point TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    attack TEXT NOT NULL,
    victim INTEGER NOT NULL,
    rows TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class ResultStore:
    """Per-cell results in ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path)
            check = self.conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in check[:3]))
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise DataError(f"results database {self.path} is damaged or not SQLite ({err}); "
                            "move it aside and re-run to recompute its cells") from None

    def close(self) -> None:
        self.conn.close()

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as err:
            raise DataError(f"results database {self.path} cannot be read ({err}); move it "
                            "aside and re-run to recompute its cells") from None

    def done_keys(self) -> set[str]:
        """Keys of the cells already stored."""
        return {r[0] for r in self._query("SELECT key FROM cells")}

    def add_cell(self, key: str, point: dict[str, Any], repeat: int, attack: str,
                 victim: int, rows: list[dict[str, Any]]) -> None:
        """Write the rows of every score of one cell atomically."""
        try:
            with self.conn:
                self.conn.execute(
                    "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)",
                    (key, json.dumps(point, sort_keys=True), repeat, attack, victim,
                     json.dumps(rows)),
                )
        except sqlite3.DatabaseError as err:
            raise DataError(f"results database {self.path} cannot be written ({err})") from None

    def rows(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every row (or the rows of ``keys``, in that order), each with its cell's key and
        grid point."""
        records = self._query("SELECT key, point, rows FROM cells ORDER BY rowid")
        by_key = {k: (point, data) for k, point, data in records}
        order = list(keys) if keys is not None else [k for k, _, _ in records]
        out = []
        for key in order:
            if key not in by_key:
                continue
            point, data = by_key[key]
            for row in json.loads(data):
                out.append({**row, "cell": key, "point": json.loads(point)})
        return out

    def cells(self) -> list[dict[str, Any]]:
        """Every stored cell as ``{key, point, repeat, attack, victim, rows}``, in the order
        they were written."""
        records = self._query(
            "SELECT key, point, repeat, attack, victim, rows FROM cells ORDER BY rowid")
        return [{"key": key, "point": json.loads(point), "repeat": repeat, "attack": attack,
                 "victim": victim, "rows": json.loads(rows)}
                for key, point, repeat, attack, victim, rows in records]

    def set_fact(self, key: str, value: Any) -> None:
        try:
            with self.conn:
                self.conn.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)",
                                  (key, json.dumps(value)))
        except sqlite3.DatabaseError as err:
            raise DataError(f"results database {self.path} cannot be written ({err})") from None

    def fact(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT data FROM facts WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default
