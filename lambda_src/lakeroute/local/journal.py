"""The local journal (``core.journal.Journal``): one row per attempt in ``ledger.db``."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from ..core.ledger.journal import ROW_COUNTS, Attempt
from .sqlite_file import SqliteFile, add_columns

_COLUMNS = ("at", "table_name", "route", "bucket", "key", "version", "status", "rows", "stage", "message",
            "rejected", "rescued", *ROW_COUNTS)
_ADDED_LATER = ("rejected", "rescued", *ROW_COUNTS)  # journals written before these counts lack them


class SqliteJournal:
    """Attempts in ``ledger.db`` beside the ledger; a damaged file is set aside and started
    afresh (its history stays in the set-aside file), ``local.sqlite_file``."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self._db = SqliteFile(path, "journal", _setup, timeout)

    def record(self, attempts: list[Attempt]) -> None:
        if not attempts:
            return
        rows = [(a.at, a.table, a.route, a.bucket, a.key, a.version, a.status, a.rows, a.stage, a.message,
                 a.rejected, a.rescued, *(getattr(a, c) for c in ROW_COUNTS)) for a in attempts]

        def insert(con: sqlite3.Connection) -> None:
            with con:
                con.executemany(
                    f"INSERT INTO lakeroute_attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",  # noqa: S608 - constant names
                    rows)

        self._db.run(insert)

    def read(self, table: str, since: dt.datetime | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Attempts for one table (and those that never reached a table, e.g. no route)."""
        query = "SELECT * FROM lakeroute_attempts WHERE (table_name = ? OR table_name = '')"
        args: list[Any] = [table]
        if since is not None:
            query += " AND at >= ?"
            args.append(since.astimezone(dt.UTC).isoformat(timespec="milliseconds"))
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        query = query.replace("SELECT *", f"SELECT {', '.join(_COLUMNS)}", 1)
        rows = self._db.run(lambda con: con.execute(query + " ORDER BY at", args).fetchall())
        return [dict(zip(("at", "table", *_COLUMNS[2:]), r, strict=True)) for r in rows]


def _setup(con: sqlite3.Connection) -> None:
    # The journal is a trail, not a promise: its commits skip the fsync (~50-90 ms a batch on a
    # laptop disk). In WAL mode that loses at most the last attempts at a power cut, never
    # corrupts; the ledger's own connection keeps SQLite's full sync.
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS lakeroute_attempts (at TEXT NOT NULL, table_name TEXT, route TEXT, "
        "bucket TEXT, key TEXT, version TEXT, status TEXT, rows INTEGER, stage TEXT, message TEXT, "
        "rejected INTEGER DEFAULT 0, rescued INTEGER DEFAULT 0)")
    add_columns(con, "lakeroute_attempts", [(c, "INTEGER DEFAULT 0") for c in _ADDED_LATER])
    con.execute("CREATE INDEX IF NOT EXISTS lakeroute_attempts_table ON lakeroute_attempts (table_name, at)")
