"""The local ledger (``core.ledger.Ledger``): two small tables in a SQLite file beside the catalog."""

from __future__ import annotations

import time
from collections.abc import Iterable


class SqliteLedger:
    """The local ledger: two small tables in a SQLite file beside the catalog."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self._con = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.executescript(
            """
            CREATE TABLE IF NOT EXISTS lakeroute_ledger (
                table_name TEXT NOT NULL, source_id TEXT NOT NULL, snapshot_id INTEGER NOT NULL,
                route TEXT, recorded_at REAL NOT NULL, PRIMARY KEY (table_name, source_id));
            CREATE TABLE IF NOT EXISTS lakeroute_watermark (
                table_name TEXT PRIMARY KEY, snapshot_id INTEGER NOT NULL);
            """
        )

    def committed(self, table: str, source_ids: Iterable[str]) -> set[str]:
        ids = list(source_ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._con.execute(
                f"SELECT source_id FROM lakeroute_ledger WHERE table_name = ? AND source_id IN ({marks})",  # noqa: S608 (placeholders only)
                [table, *chunk],
            )
            found.update(r[0] for r in rows)
        return found

    def watermark(self, table: str) -> int | None:
        row = self._con.execute(
            "SELECT snapshot_id FROM lakeroute_watermark WHERE table_name = ?", [table]).fetchone()
        return None if row is None else int(row[0])

    def record(self, table: str, entries: list[tuple[str, int, str]], watermark: int | None) -> None:
        now = time.time()
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT OR IGNORE INTO lakeroute_ledger VALUES (?, ?, ?, ?, ?)",
                [(table, sid, snap, route, now) for sid, snap, route in entries],
            )
            if watermark is not None:
                self._con.execute(
                    "INSERT INTO lakeroute_watermark VALUES (?, ?) ON CONFLICT(table_name) "
                    "DO UPDATE SET snapshot_id = excluded.snapshot_id", [table, watermark])
