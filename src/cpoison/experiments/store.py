"""The results store (SPEC 10): SQLite, one row per (repeat, attack, victim, score).

All rows of one victim are written in one transaction, so a run killed at any moment
leaves only whole victims behind; a re-run asks :meth:`ResultStore.has` and skips them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from cpoison.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    repeat INTEGER NOT NULL,
    attack TEXT NOT NULL,
    victim INTEGER NOT NULL,
    score TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (repeat, attack, victim, score)
);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class ResultStore:
    """Per-victim results in ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path)
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise DataError(f"results store {self.path} is not readable SQLite: {err}") from None

    def close(self) -> None:
        self.conn.close()

    def has(self, repeat: int, attack: str, victim: int, scores: list[str]) -> bool:
        cur = self.conn.execute(
            "SELECT score FROM rows WHERE repeat=? AND attack=? AND victim=?",
            (repeat, attack, victim),
        )
        return set(scores) <= {r[0] for r in cur.fetchall()}

    def add_victim(self, repeat: int, attack: str, victim: int,
                   rows: dict[str, dict[str, Any]]) -> None:
        """Write the rows of every score of one victim atomically."""
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)",
                [(repeat, attack, victim, s, json.dumps(r)) for s, r in rows.items()],
            )

    def rows(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT data FROM rows ORDER BY repeat, attack, victim, score")
        return [json.loads(r[0]) for r in cur.fetchall()]

    def set_fact(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)",
                              (key, json.dumps(value)))

    def fact(self, key: str, default: Any = None) -> Any:
        cur = self.conn.execute("SELECT data FROM facts WHERE key=?", (key,))
        row = cur.fetchone()
        return json.loads(row[0]) if row else default
