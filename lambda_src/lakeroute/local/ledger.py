"""The local ledger (``core.ledger.Ledger``): two small tables in a SQLite file beside the catalog."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

from ..core.ledger import Entry, Mark
from .sqlite_file import SqliteFile, add_columns


class SqliteLedger:
    """Entries keyed by (table name, source id), carrying the table UUID they belong to.

    A ledger written by an earlier lakeroute (no UUID column) is migrated in place: its
    entries carry no UUID, so they count for nothing until ``reconcile`` re-reads the
    table's ancestry once and records them again with the UUID. A damaged file is set aside
    and rebuilt from the tables; a locked or unreadable one is an error naming it and the fix
    (``local.sqlite_file``).
    """

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self._db = SqliteFile(path, "ledger", _setup, timeout)

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        return self._db.run(lambda con: _committed(con, table, uuid, list(source_ids)))

    def watermark(self, table: str, uuid: str) -> Mark | None:
        row = self._db.run(lambda con: con.execute(
            "SELECT snapshot_id, rolled_back FROM lakeroute_watermark WHERE table_name = ? AND table_uuid = ?",
            [table, uuid]).fetchone())
        if row is None:
            return None
        return Mark(int(row[0]), frozenset(json.loads(row[1] or "[]")))

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        self._db.run(lambda con: _record(con, table, uuid, entries, watermark))

    def forget(self, table: str) -> int:
        """Drop every entry and the watermark of ``table`` (``lakeroute reset``); how many entries."""
        return self._db.run(lambda con: _forget(con, table))


def _setup(con: sqlite3.Connection) -> None:
    con.executescript(
        """
        CREATE TABLE IF NOT EXISTS lakeroute_ledger (
            table_name TEXT NOT NULL, source_id TEXT NOT NULL, snapshot_id INTEGER NOT NULL,
            route TEXT, recorded_at REAL NOT NULL, PRIMARY KEY (table_name, source_id));
        CREATE TABLE IF NOT EXISTS lakeroute_watermark (
            table_name TEXT PRIMARY KEY, snapshot_id INTEGER NOT NULL);
        """
    )
    add_columns(con, "lakeroute_ledger", [("table_uuid", "TEXT"), ("seq", "INTEGER")])
    add_columns(con, "lakeroute_watermark", [("table_uuid", "TEXT"), ("rolled_back", "TEXT")])


def _committed(con: sqlite3.Connection, table: str, uuid: str, ids: list[str]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        where = f"table_name = ? AND table_uuid = ? AND source_id IN ({marks})"  # placeholders only
        query = "SELECT source_id, snapshot_id, seq FROM lakeroute_ledger WHERE " + where  # noqa: S608
        rows = con.execute(query, [table, uuid, *chunk])
        found.update((r[0], (int(r[1]), int(r[2] or 0))) for r in rows)
    return found


def _record(con: sqlite3.Connection, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
    now = time.time()
    with con:
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO lakeroute_ledger (table_name, source_id, snapshot_id, route, recorded_at, "
            "table_uuid, seq) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(table_name, source_id) DO UPDATE SET "
            "snapshot_id = excluded.snapshot_id, route = excluded.route, recorded_at = excluded.recorded_at, "
            "table_uuid = excluded.table_uuid, seq = excluded.seq",
            [(table, sid, snap, route, now, uuid, seq) for sid, snap, seq, route in entries],
        )
        if watermark is not None:
            con.execute(
                "INSERT INTO lakeroute_watermark (table_name, snapshot_id, table_uuid, rolled_back) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(table_name) DO UPDATE SET snapshot_id = excluded.snapshot_id, "
                "table_uuid = excluded.table_uuid, rolled_back = excluded.rolled_back",
                [table, watermark.snapshot_id, uuid, json.dumps(sorted(watermark.rolled_back))])


def _forget(con: sqlite3.Connection, table: str) -> int:
    with con:
        con.execute("BEGIN IMMEDIATE")
        n = con.execute("DELETE FROM lakeroute_ledger WHERE table_name = ?", [table]).rowcount
        con.execute("DELETE FROM lakeroute_watermark WHERE table_name = ?", [table])
    return int(n)
