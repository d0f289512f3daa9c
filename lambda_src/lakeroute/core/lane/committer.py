"""The table's committer: everything waiting in the lane, in one snapshot, one commit at a time.

Run by whoever holds the table's lane (AWS: the commit function, one invocation per table at
a time through the FIFO message group; locally: the process that ran the staging workers).
Per round it lists the waiting hand-offs (its own listing: a hand-off whose signal was lost
is found too), waits while the triggers allow (``core.lane.triggers``), and commits:

1. hand-offs already named in a retained snapshot's summary (``lakeroute.handoffs``: a
   committer crashed after its commit) are only removed — their files are the table's;
2. an object version twice in the lane (a redelivered upload staged again) commits once:
   the later copies' files are deleted;
3. the rest is committed by the pipeline's own group commit (write modes planned in the
   attempt, exactly once by the ledger rule, objects whose rows cannot be written
   quarantined), with the hand-off ids in the snapshot summary;
4. objects whose files no longer fit the table (a schema change meanwhile) are read again
   and committed directly; then the records and their blobs are removed.

A commit that fails transiently leaves every record and file in place for the next round.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import TransientError
from ..pipeline.outcomes import IngestReport, ObjectRef, Outcome
from ..pipeline.plans import HANDOFFS_PROP, TablePlan
from ..shape.tables import provisional_table, with_new_columns
from ..write.staging import Staged, delete_files, discard
from . import records
from .triggers import Triggers

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.table import Table

    from ..pipeline.ingest import Pipeline
    from .store import LaneStore

log = logging.getLogger("lakeroute.lane")


@dataclass
class LaneReport:
    """What a committer did for one table."""

    table: str
    report: IngestReport = field(default_factory=IngestReport)
    handoffs: int = 0  # hand-offs removed (committed now, before, or duplicates)
    commits: int = 0
    freshness: list[float] = field(default_factory=list)  # seconds from pick-up to visible, per object
    waiting: int = 0  # hand-offs left for the next run (``until`` came)


def commit_lane(pipeline: Pipeline, store: LaneStore, table: str, *, defaults: Triggers | None = None,
                until: float | None = None, linger: bool = True,
                reingest: Callable[[list[ObjectRef]], IngestReport] | None = None,
                clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> LaneReport:
    """Commit the table's waiting hand-offs, round after round, until none waits or ``until``
    (a ``clock()`` value) comes; ``linger``: wait for the triggers while time allows.
    ``reingest``: reads objects again whose staged files no longer fit the table (default:
    ``pipeline.ingest``, which must then know their routes)."""
    out = LaneReport(table)
    triggers = defaults or Triggers()
    while True:
        ids = store.pending(table)
        loaded = pipeline.catalog.load_table(table) if ids and pipeline.catalog.table_exists(table) else None
        done = _committed_handoffs(loaded) if loaded is not None else set()
        for hid in (i for i in ids if i in done):  # committed by a committer killed before removing it
            body = store.load(table, hid)
            if body is not None:
                _remove(pipeline, store, table, hid, records.blobs_of(body))
            out.handoffs += 1
        ids = [i for i in ids if i not in done]
        if not ids:
            return out
        batch: list[records.Record] = []
        for hid in ids:
            body = store.load(table, hid)
            if body is None:  # removed since the listing
                continue
            batch.append(records.read(file_io(pipeline), body))
            triggers = (defaults or Triggers()).for_target(batch[-1].target)
            if len(_objects(batch)) >= triggers.max_files or sum(r.mb for r in batch) >= triggers.max_mb:
                break
        if not batch:
            return out
        now = clock()
        oldest = min(records.created_at(r.id) for r in batch)
        wait = triggers.wait(len(_objects(batch)), sum(r.mb for r in batch), now - oldest)
        if wait > 0 and linger and (until is None or now + wait < until):
            _release(batch)
            sleep(wait)
            continue
        _commit_round(pipeline, store, table, loaded, batch, out, clock, reingest or pipeline.ingest)
        if until is not None and clock() >= until:
            out.waiting = len(store.pending(table))
            return out


def _commit_round(pipeline: Pipeline, store: LaneStore, table: str, loaded: Table | None,
                  todo: list[records.Record], out: LaneReport, clock: Callable[[], float],
                  reingest: Callable[[list[ObjectRef]], IngestReport]) -> None:
    seen: set[str] = set()
    plan = TablePlan(todo[-1].target, handoffs=[r.id for r in todo])
    duplicates: list[tuple[ObjectRef, Staged]] = []
    arrived: dict[str, float] = {}  # source id -> when its object was picked up
    for r in todo:
        for ref, s, at in r.objects:
            if s.source_id in seen:
                duplicates.append((ref, s))
                continue
            seen.add(s.source_id)
            plan.staged.append((ref, s))
            arrived[s.source_id] = at
    if loaded is not None:
        plan.table, plan.metadata = loaded, loaded.metadata
    else:
        results = [s.result_schema for _, s in sorted(plan.staged, key=lambda x: x[1].order)
                   if s.result_schema is not None]
        if not results:
            raise TransientError(f"table {table} does not exist and its hand-offs carry no schema to create it")
        # As the stagers' own provisional tables grew: the first result, then each new column.
        plan.provisional = provisional_table(pipeline.catalog, plan.target, results[0])
        plan.metadata = plan.provisional.metadata
        for result in results[1:]:
            evolved = with_new_columns(plan.provisional, plan.metadata, result)
            if evolved is not None:
                plan.adopt(evolved)
    report = IngestReport()
    outcomes = pipeline.commit_group(table, plan, report, keep_files=True)
    if all(o.status == "failed" and o.stage == "commit" for o in outcomes) and not report.commits:
        _release(todo)
        raise TransientError(f"commit lane of {table}: {outcomes[0].message if outcomes else 'nothing committed'}")
    for ref, s in duplicates:
        discard(plan.home, [s])
        outcomes.append(Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: staged twice; committed once",
                                s.route, table, source_id=s.source_id))
    again = [o for o in outcomes if o.status == "failed" and o.stage == "commit" and "read again" in o.message]
    if again:  # the table changed under the staged files: read those objects again, commit directly
        redo = reingest([o.ref for o in again])
        outcomes = [o for o in outcomes if o not in again] + redo.outcomes
        report.commits += redo.commits
    now = clock()
    out.freshness += [now - arrived[o.source_id] for o in outcomes
                      if o.status == "committed" and o.source_id in arrived]
    report.outcomes = outcomes
    pipeline.resolve_replayed(report)  # replayed objects that landed leave the quarantine
    out.report.outcomes += outcomes
    out.report.commits += report.commits
    out.commits += sum(1 for c in report.commits if c.get("snapshot_id") is not None)
    for r in todo:
        _remove(pipeline, store, table, r.id, r.blobs)
        out.handoffs += 1


def _committed_handoffs(table: Table) -> set[str]:
    """Hand-off ids named by the table's retained snapshots."""
    ids: set[str] = set()
    for snap in table.metadata.snapshots:
        raw = snap.summary.additional_properties.get(HANDOFFS_PROP) if snap.summary else None
        if raw:
            ids.update(json.loads(raw))
    return ids


def _objects(batch: list[records.Record]) -> list[tuple[ObjectRef, Staged, float]]:
    return [o for r in batch for o in r.objects]


def _release(batch: list[records.Record]) -> None:
    """Local scratch copies of a record's upsert rows (read again next round)."""
    discard(None, [s for r in batch for _, s, _ in r.objects])


def _remove(pipeline: Pipeline, store: LaneStore, table: str, handoff_id: str, blobs: list[str]) -> None:
    """The record first (from then on the hand-off is gone), then its blobs; the store is
    told again so that a folder store drops the emptied folder."""
    store.remove(table, handoff_id)
    delete_files(file_io(pipeline), blobs)
    store.remove(table, handoff_id)


def file_io(pipeline: Pipeline) -> FileIO:
    """The catalog's FileIO: reads and writes hand-offs whether or not the table exists yet."""
    from pyiceberg.io import load_file_io

    return load_file_io(pipeline.catalog.properties)
