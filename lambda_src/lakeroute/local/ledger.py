"""The local ledger (``core.ledger.Ledger``): two small tables in a SQLite file beside the catalog."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from ..core.ledger import Entry, Mark


class SqliteLedger:
    """Entries keyed by (table name, source id), carrying the table UUID they belong to.

    A ledger written by an earlier lakeroute (no UUID column) is migrated in place: its
    entries carry no UUID, so they count for nothing until ``reconcile`` re-reads the
    table's ancestry once and records them again with the UUID.
    """

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
        self._migrate()

    def _migrate(self) -> None:
        import sqlite3

        for table, column, kind in (("lakeroute_ledger", "table_uuid", "TEXT"),
                                    ("lakeroute_ledger", "seq", "INTEGER"),
                                    ("lakeroute_watermark", "table_uuid", "TEXT"),
                                    ("lakeroute_watermark", "rolled_back", "TEXT")):
            columns = {row[1] for row in self._con.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                try:
                    self._con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as e:  # a concurrent process migrated first
                    if "duplicate column" not in str(e):
                        raise

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        ids = list(source_ids)
        found: dict[str, tuple[int, int]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            where = f"table_name = ? AND table_uuid = ? AND source_id IN ({marks})"  # placeholders only
            query = "SELECT source_id, snapshot_id, seq FROM lakeroute_ledger WHERE " + where  # noqa: S608
            rows = self._con.execute(query, [table, uuid, *chunk])
            found.update((r[0], (int(r[1]), int(r[2] or 0))) for r in rows)
        return found

    def watermark(self, table: str, uuid: str) -> Mark | None:
        row = self._con.execute(
            "SELECT snapshot_id, rolled_back FROM lakeroute_watermark WHERE table_name = ? AND table_uuid = ?",
            [table, uuid]).fetchone()
        if row is None:
            return None
        return Mark(int(row[0]), frozenset(json.loads(row[1] or "[]")))

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        now = time.time()
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT INTO lakeroute_ledger (table_name, source_id, snapshot_id, route, recorded_at, "
                "table_uuid, seq) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(table_name, source_id) DO UPDATE SET "
                "snapshot_id = excluded.snapshot_id, route = excluded.route, recorded_at = excluded.recorded_at, "
                "table_uuid = excluded.table_uuid, seq = excluded.seq",
                [(table, sid, snap, route, now, uuid, seq) for sid, snap, seq, route in entries],
            )
            if watermark is not None:
                self._con.execute(
                    "INSERT INTO lakeroute_watermark (table_name, snapshot_id, table_uuid, rolled_back) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(table_name) DO UPDATE SET snapshot_id = excluded.snapshot_id, "
                    "table_uuid = excluded.table_uuid, rolled_back = excluded.rolled_back",
                    [table, watermark.snapshot_id, uuid, json.dumps(sorted(watermark.rolled_back))])

    def forget(self, table: str) -> int:
        """Drop every entry and the watermark of ``table`` (``lakeroute reset``); how many entries."""
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            n = self._con.execute("DELETE FROM lakeroute_ledger WHERE table_name = ?", [table]).rowcount
            self._con.execute("DELETE FROM lakeroute_watermark WHERE table_name = ?", [table])
        return int(n)
