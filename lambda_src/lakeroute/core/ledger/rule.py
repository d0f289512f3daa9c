"""The ledger: a bounded index of committed sources per table, which never outranks the table.

The snapshot summaries (``lakeroute.sources`` / ``lakeroute.routes``) are the truth; the
ledger only saves reading them all again. An entry is (table name, table UUID, source id,
snapshot id, snapshot sequence number). It **counts** only while the table holds it:

- the table's UUID is the entry's (a dropped and recreated table, or a reset warehouse,
  is a new table: nothing of the old one counts), and
- its snapshot is an ancestor of the current snapshot, or its snapshot has been expired
  from the metadata *and* is older (by sequence number) than the oldest ancestor still in
  the metadata. Expiry removes old ancestors only, so an expired ancestor's rows are still
  in the table; a rolled-back snapshot is newer than the snapshot rolled back to, which is
  the current one or one of its ancestors, so it never passes this test while that
  ancestor is retained — expired or not, its objects come in again; and
- its snapshot was never seen outside the ancestry: every reconcile remembers the snapshots
  that are in the metadata but not ancestors (rolled back) with the watermark, so a rolled-
  back snapshot stays void after it, and the snapshot rolled back to, are expired.

``reconcile`` reads the summaries of ancestors newer than the ledger's watermark (normally
none to a few) and, after a rollback or for a new table UUID, the retained ancestry once,
with the sources lakeroute's expiry archived for the expired ancestors (``core.archive``):
a rebuilt ledger knows them too.
The check per object is a lookup plus a set membership test: no walk of history per object.

Key-oriented modes record an object's *upload* (``core.objects``); what append records, and
what every mode recorded before uploads were told apart, is its content alone. ``held``
lets such a content entry count for an upload of that content made before the snapshot that
recorded it (that snapshot already had those bytes to read): a table committed before the
upgrade is not ingested again object by object, while a re-upload after it is.
Implementations: ``MemoryLedger`` (tests), ``lakeroute.local.ledger.SqliteLedger``,
``lakeroute.aws.ledger.DynamoLedger``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .archive import archived_entries
from .summary import Entry, entries_of, sequence_of

if TYPE_CHECKING:
    from pyiceberg.table import Table

MAX_ROLLED_BACK = 5000  # remembered per table (newest first); a DynamoDB item holds ~20,000


@dataclass(frozen=True)
class Mark:
    """The ledger's watermark: the current snapshot it reconciled, and the rolled-back ones."""

    snapshot_id: int
    rolled_back: frozenset[int] = frozenset()


class Ledger(Protocol):
    """Entries per (table name, table UUID); see the module docstring for when they count."""

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """source id -> (snapshot id, sequence number) of the entries held for this table UUID."""
        ...

    def watermark(self, table: str, uuid: str) -> Mark | None: ...

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        """Upsert entries (a source re-ingested after a rollback gets its new snapshot), then
        move the watermark: it never covers unrecorded entries."""
        ...


@dataclass(frozen=True)
class TableState:
    """What the ledger check needs from one loaded table metadata."""

    uuid: str
    current: int | None
    ancestry: frozenset[int]
    known: frozenset[int]
    floor: int  # order of the oldest ancestor still in the metadata
    rolled_back: frozenset[int] = frozenset()
    times: Mapping[int, int] = field(default_factory=dict, compare=False)  # snapshot id -> epoch ms

    @classmethod
    def of(cls, table: Table) -> TableState:
        meta = table.metadata
        version = int(meta.format_version)
        by_id = {s.snapshot_id: s for s in meta.snapshots}
        ancestry: list[int] = []
        snap = by_id.get(meta.current_snapshot_id) if meta.current_snapshot_id is not None else None
        floor = 0
        while snap is not None and snap.snapshot_id not in ancestry:
            ancestry.append(snap.snapshot_id)
            floor = sequence_of(snap, version)
            snap = by_id.get(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
        return cls(str(meta.table_uuid), meta.current_snapshot_id, frozenset(ancestry),
                   frozenset(by_id), floor, times={s.snapshot_id: s.timestamp_ms for s in meta.snapshots})

    def holds(self, snapshot_id: int, order: int) -> bool:
        if snapshot_id in self.ancestry:
            return True
        if snapshot_id in self.known or snapshot_id in self.rolled_back:
            return False  # in the metadata but not an ancestor: rolled back
        return order < self.floor  # expired: only ancestors older than the retained ones count


def reconcile(table: Table, name: str, ledger: Ledger) -> TableState:
    """Read the summaries of ancestors newer than the ledger's watermark into the ledger."""
    state = TableState.of(table)
    current = state.current
    if current is None:
        return state
    mark = ledger.watermark(name, state.uuid)
    # A snapshot rolled back and later made current again (roll forward) is an ancestor again.
    seen = ((mark.rolled_back if mark else frozenset()) - state.ancestry) | (state.known - state.ancestry)
    if len(seen) > MAX_ROLLED_BACK:
        seen = frozenset(sorted(seen, reverse=True)[:MAX_ROLLED_BACK])
    state = dataclasses.replace(state, rolled_back=seen)
    if mark is not None and mark.snapshot_id == current and mark.rolled_back == seen:
        return state
    stop = mark.snapshot_id if mark is not None and mark.snapshot_id in state.ancestry else None
    meta = table.metadata
    version = int(meta.format_version)
    entries: list[Entry] = []
    snap = meta.snapshot_by_id(current)
    while snap is not None and snap.snapshot_id != stop:
        entries.extend(entries_of(snap, version))
        snap = (meta.snapshot_by_id(snap.parent_snapshot_id)
                if snap.parent_snapshot_id is not None else None)
    entries.reverse()  # oldest first: a source in two ancestors keeps the newer one
    if stop is None:  # the whole retained history: also the expired ancestors' (core.archive)
        entries = archived_entries(table) + entries
    ledger.record(name, state.uuid, entries, Mark(current, seen))
    return state


def recorded(ledger: Ledger, state: TableState, name: str, source_ids: Iterable[str]) -> set[str]:
    """The sources this table holds, by the rule above."""
    found = ledger.committed(name, state.uuid, source_ids)
    return {sid for sid, (snap, order) in found.items() if state.holds(snap, order)}


def held(ledger: Ledger, state: TableState, name: str,
         objects: Iterable[tuple[str, str, int | None]]) -> set[str]:
    """The ledger ids this table holds, of (ledger id, content id, uploaded at, epoch ms): the
    ledger id by the rule above, or else the content id when recorded by a snapshot taken
    after the upload (see the module docstring)."""
    asked = list(objects)
    found = ledger.committed(name, state.uuid, {i for sid, content, _ in asked for i in (sid, content)})
    out = set()
    for sid, content, uploaded in asked:
        if sid in found and state.holds(*found[sid]):
            out.add(sid)
        elif content != sid and content in found and uploaded is not None:
            snapshot, order = found[content]
            at = state.times.get(snapshot)
            if at is not None and uploaded < at and state.holds(snapshot, order):
                out.add(sid)
    return out


class MemoryLedger:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[str, int, int]] = {}
        self.marks: dict[str, tuple[str, Mark]] = {}

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        out = {}
        for s in source_ids:
            row = self.rows.get((table, s))
            if row is not None and row[0] == uuid:
                out[s] = (row[1], row[2])
        return out

    def watermark(self, table: str, uuid: str) -> Mark | None:
        mark = self.marks.get(table)
        return mark[1] if mark is not None and mark[0] == uuid else None

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        for sid, snap, order, _ in entries:
            self.rows[(table, sid)] = (uuid, snap, order)
        if watermark is not None:
            self.marks[table] = (uuid, watermark)
