"""The ledger: a bounded index of committed sources per table, reconciled from snapshots.

The snapshot summaries (``lakeroute.sources`` / ``lakeroute.routes``) are the truth; the
ledger only saves reading them all again. Implementations: ``MemoryLedger`` (tests),
``lakeroute.local.ledger.SqliteLedger``, ``lakeroute.aws.ledger.DynamoLedger``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyiceberg.table import Table

SOURCES_PROP = "lakeroute.sources"
ROUTES_PROP = "lakeroute.routes"


class Ledger(Protocol):
    """A bounded index of committed source ids per table, reconciled from snapshot summaries."""

    def committed(self, table: str, source_ids: Iterable[str]) -> set[str]: ...

    def watermark(self, table: str) -> int | None: ...

    def record(self, table: str, entries: list[tuple[str, int, str]], watermark: int | None) -> None:
        """entries: (source_id, snapshot_id, route)."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}
        self.marks: dict[str, int | None] = {}

    def committed(self, table: str, source_ids: Iterable[str]) -> set[str]:
        return {s for s in source_ids if (table, s) in self.rows}

    def watermark(self, table: str) -> int | None:
        return self.marks.get(table)

    def record(self, table: str, entries: list[tuple[str, int, str]], watermark: int | None) -> None:
        for sid, snap, _ in entries:
            self.rows[(table, sid)] = snap
        if watermark is not None:
            self.marks[table] = watermark


def reconcile(table: Table, name: str, ledger: Ledger) -> None:
    """Read the summaries of snapshots newer than the ledger's watermark into the ledger.

    Walks the current snapshot's ancestry back to the watermark: normally zero to a few
    snapshots, never the whole history again.
    """
    current = table.metadata.current_snapshot_id
    mark = ledger.watermark(name)
    if current is None or current == mark:
        return
    entries: list[tuple[str, int, str]] = []
    snap = table.metadata.snapshot_by_id(current)
    while snap is not None and snap.snapshot_id != mark:
        summary = snap.summary.additional_properties if snap.summary else {}
        raw = summary.get(SOURCES_PROP)
        if raw:
            routes = summary.get(ROUTES_PROP, "")
            entries.extend((sid, snap.snapshot_id, routes) for sid in json.loads(raw))
        snap = (table.metadata.snapshot_by_id(snap.parent_snapshot_id)
                if snap.parent_snapshot_id is not None else None)
    ledger.record(name, entries, current)
