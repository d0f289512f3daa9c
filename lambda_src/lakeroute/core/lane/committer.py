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
from concurrent.futures import ThreadPoolExecutor
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
IO_THREADS = 8  # concurrent reads and deletes of hand-offs (each a few small objects)


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
    io = file_io(pipeline)  # one FileIO (and its S3 connections) for every record of this run
    held: dict[str, records.Record] = {}  # read before a linger: a published record never changes
    try:
        while True:
            ids = store.pending(table)
            loaded = _load(pipeline, table) if ids else None
            done = _committed_handoffs(loaded) if loaded is not None else set()
            for hid in (i for i in ids if i in done):  # committed by a committer killed before removing it
                body = store.load(table, hid)
                if body is not None:
                    _remove(store, table, hid, records.blobs_of(body), io)
                out.handoffs += 1
            ids = [i for i in ids if i not in done]
            if not ids:
                return out
            batch, triggers = _read_batch(store, table, ids, held, io, defaults or Triggers(), triggers)
            _release(list(held.values()))  # held, but no longer waiting
            held = {}
            if not batch:
                return out
            now = clock()
            oldest = min(records.created_at(r.id) for r in batch)
            wait = triggers.wait(len(_objects(batch)), sum(r.mb for r in batch), now - oldest)
            if wait > 0 and linger and (until is None or now + wait < until):
                held = {r.id: r for r in batch}
                sleep(wait)
                continue
            _commit_round(pipeline, store, table, loaded, batch, out, clock, reingest or pipeline.ingest, io)
            if until is not None and clock() >= until:
                out.waiting = len(store.pending(table))
                return out
    finally:
        _release(list(held.values()))


def _load(pipeline: Pipeline, table: str) -> Table | None:
    """The table, or None before its first commit (one catalog call, not an exists check first)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return pipeline.catalog.load_table(table)
    except NoSuchTableError:
        return None


def _read_batch(store: LaneStore, table: str, ids: list[str], held: dict[str, records.Record], io: FileIO,
                defaults: Triggers, triggers: Triggers) -> tuple[list[records.Record], Triggers]:
    """This round's records, oldest first, up to the count or size trigger (held ones as they
    are; a hand-off removed since the listing is left out). Read a few at a time in parallel
    threads: each is a record, a manifest and a rows file, whose time is the store's round
    trips. Records read past the cut are released (read again next round)."""
    def one(hid: str) -> records.Record | None:
        if hid in held:
            return held.pop(hid)
        body = store.load(table, hid)
        return None if body is None else records.read(io, body)

    batch: list[records.Record] = []
    extra: list[records.Record] = []
    try:
        with ThreadPoolExecutor(IO_THREADS) as pool:
            for start in range(0, len(ids), IO_THREADS):
                for record in pool.map(one, ids[start:start + IO_THREADS]):
                    if record is None:
                        continue
                    if extra or _full(batch, triggers):
                        extra.append(record)
                        continue
                    batch.append(record)
                    triggers = defaults.for_target(record.target)
                if extra or _full(batch, triggers):
                    break
    except BaseException:
        _release(batch + extra)
        raise
    _release(extra)
    return batch, triggers


def _full(batch: list[records.Record], triggers: Triggers) -> bool:
    return bool(batch) and (len(_objects(batch)) >= triggers.max_files or sum(r.mb for r in batch) >= triggers.max_mb)


def _commit_round(pipeline: Pipeline, store: LaneStore, table: str, loaded: Table | None,
                  todo: list[records.Record], out: LaneReport, clock: Callable[[], float],
                  reingest: Callable[[list[ObjectRef]], IngestReport], io: FileIO) -> None:
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
    # Committed: each record, then its blobs. In parallel threads: the next round (and every
    # object waiting for it) waits for these deletes, which are round trips to the store.
    with ThreadPoolExecutor(IO_THREADS) as pool:
        for _ in pool.map(lambda r: _remove(store, table, r.id, r.blobs, io), todo):
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


def _remove(store: LaneStore, table: str, handoff_id: str, blobs: list[str], io: FileIO) -> None:
    """The record first (from then on the hand-off is gone), then its blobs; the store is
    told again so that a folder store drops the emptied folder."""
    store.remove(table, handoff_id)
    delete_files(io, blobs)
    store.remove(table, handoff_id)


def file_io(pipeline: Pipeline) -> FileIO:
    """The catalog's FileIO: reads and writes hand-offs whether or not the table exists yet."""
    from pyiceberg.io import load_file_io

    return load_file_io(pipeline.catalog.properties)
