"""What a snapshot's summary says about its sources: the ledger's truth, read and written here.

A lakeroute commit names the object versions it holds (``lakeroute.sources``, JSON) and the
routes that wrote them (``lakeroute.routes``). Ledger entries and the archive of expired
snapshots are both derived from these two properties.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

SOURCES_PROP = "lakeroute.sources"
ROUTES_PROP = "lakeroute.routes"

Entry = tuple[str, int, int, str]  # (source id, snapshot id, sequence number, routes)


def sequence_of(snap: Snapshot, format_version: int) -> int:
    """The snapshot's place in the table's history: its sequence number (v2 tables number
    their snapshots; v1 tables have none: its time)."""
    return snap.sequence_number if format_version >= 2 and snap.sequence_number else snap.timestamp_ms


def entries_of(snap: Snapshot, format_version: int) -> list[Entry]:
    """The ledger entries a snapshot's summary holds (none for a snapshot lakeroute did not write)."""
    summary = snap.summary.additional_properties if snap.summary else {}
    raw = summary.get(SOURCES_PROP)
    if not raw:
        return []
    order = sequence_of(snap, format_version)
    routes = summary.get(ROUTES_PROP, "")
    return [(sid, snap.snapshot_id, order, routes) for sid in json.loads(raw)]


def snapshot_order(table: Table, snapshot_id: int) -> int:
    """The place in history (``sequence_of``) of one of the table's snapshots (0: unknown)."""
    snap = table.metadata.snapshot_by_id(snapshot_id)
    return sequence_of(snap, int(table.metadata.format_version)) if snap is not None else 0
