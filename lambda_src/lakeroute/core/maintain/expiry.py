"""Snapshot expiry: which snapshots go, and the metadata commit that removes them.

A snapshot stays only while both rules allow it: it is one of the newest ``keep_snapshots``
and it is younger than ``keep_days``. The current snapshot and every branch or tag head stay
whatever the rules say. Expiry removes snapshots from the metadata only; the files that only
expired snapshots referenced are deleted afterwards by the caller (``core.maintenance``),
once the commit has landed.

The ledger (``core.ledger``) keeps counting what expired ancestors held: an expired snapshot
counts when it is older than the oldest retained ancestor, which is exactly what removing
old snapshots leaves behind. Callers reconcile the ledger *before* expiring, so the summaries
about to disappear (and the rolled-back snapshots about to be forgotten) are in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..shape.table_schema import OWN_RETRY_PROPERTIES

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

DAY_MS = 86_400_000


@dataclass(frozen=True)
class ExpiryPlan:
    expire: list[int]  # snapshot ids, oldest first
    before: int  # snapshots in the metadata
    base: int | None  # the current snapshot the plan was made against

    @property
    def after(self) -> int:
        return self.before - len(self.expire)


def protected(metadata: TableMetadata) -> set[int]:
    """Snapshots no rule may expire: the current one, branch and tag heads."""
    ids = {ref.snapshot_id for ref in metadata.refs.values()}
    if metadata.current_snapshot_id is not None:
        ids.add(metadata.current_snapshot_id)
    return ids


def plan_expiry(metadata: TableMetadata, keep_snapshots: int, keep_days: float, now_ms: int) -> ExpiryPlan:
    snaps = sorted(metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True)
    newest = {s.snapshot_id for s in snaps[:keep_snapshots]}
    cutoff = now_ms - int(keep_days * DAY_MS)
    keep = protected(metadata)
    expire = [s.snapshot_id for s in reversed(snaps)
              if s.snapshot_id not in keep and (s.snapshot_id not in newest or s.timestamp_ms < cutoff)]
    return ExpiryPlan(expire, len(snaps), metadata.current_snapshot_id)


def due(metadata: TableMetadata, keep_snapshots: int, keep_days: float, now_ms: int, added: int = 0) -> bool:
    """Whether an automatic expiry is worth a commit: the count (plus ``added`` snapshots not
    in ``metadata``) passed ``keep_snapshots`` by a margin (a tenth, at least 5), or the oldest
    snapshot is a day past ``keep_days``. The margin makes one expiry commit per several
    ingest commits instead of one per commit."""
    snaps = metadata.snapshots
    if len(snaps) + added <= 1:
        return False
    if len(snaps) + added > keep_snapshots + max(5, keep_snapshots // 10):
        return True
    oldest = min((s.timestamp_ms for s in snaps), default=now_ms)
    return oldest < now_ms - int((keep_days + 1) * DAY_MS)


def commit_expiry(table: Table, plan: ExpiryPlan) -> Table:
    """Remove the planned snapshots in one metadata commit.

    The commit requires the current snapshot to be the plan's: a concurrent append, rollback
    or compaction makes it fail (``CommitFailedException``) and the caller re-plans on the
    fresh table, so a snapshot that became current or an ancestor again is never removed.
    PyIceberg's own retry is off (it would re-apply the removal without re-planning).
    """
    from pyiceberg.table.update import AssertRefSnapshotId, RemoveSnapshotsUpdate

    props = table.metadata.properties
    if props.get("commit.retry.num-retries") != "0":
        table.metadata = table.metadata.model_copy(update={"properties": {**props, **OWN_RETRY_PROPERTIES}})
    txn = table.transaction()
    txn._apply((RemoveSnapshotsUpdate.model_validate({"snapshot-ids": plan.expire}),),
               (AssertRefSnapshotId.model_validate({"snapshot-id": plan.base, "ref": "main"}),))
    return txn.commit_transaction()
