"""Committing staged data files exactly once: one snapshot per table per batch.

Each object's rows are written as Parquet data files into the table's location (staged,
not yet visible, ``core.staging``); the staged files of one batch that target the same
table are then added in one snapshot. The snapshot summary names the route and the source
object versions: that record is the source of truth. Before every commit attempt the table
is loaded fresh, the ledger reconciled from the summaries it has not seen, and the sources
the table already holds (``core.ledger``'s rule) dropped, so redelivery, a lost commit
response or a concurrent duplicate never adds rows twice. The commit is optimistic (the
catalog rejects a stale base), so the check and the commit are atomic together.

Nothing of an object reaches the table before its rows do: a table created from a result
(no declared columns) is created *by* the commit of its first rows, and new result columns
are added to the schema in the same commit as the rows that carry them. Files written with
field ids the table no longer has (a concurrent schema change) are never committed: those
objects are failed for a retry, which stages them again against the new schema.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import TransientError, one_line
from ..ledger.rule import Ledger, reconcile, recorded
from ..ledger.summary import ROUTES_PROP, SOURCES_PROP, snapshot_order
from ..shape.features import refuse_unsupported
from ..shape.renames import renamed_columns
from ..shape.table_schema import OWN_RETRY_PROPERTIES, same_field_ids
from .modes import Changes, plan_overwrite, plan_replace, qualified_name, write_rows
from .snapshot_files import object_files
from .snapshot_files import overwrite as overwrite_files
from .staging import Staged, align, delete_files, discard

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import StagedTable, Table, Transaction

    from ..routes import Target

log = logging.getLogger("lakeroute.commit")


@dataclass
class CommitResult:
    table: str
    committed: list[Staged]
    duplicates: list[Staged]
    snapshot_id: int | None
    attempts: int
    seconds: float
    restage: list[Staged] = field(default_factory=list)  # files no longer fit: retry the objects
    rejected: list[tuple[Staged, str]] = field(default_factory=list)  # rows that cannot be written
    stats: dict[str, str] = field(default_factory=dict)  # the snapshot's lakeroute.* summary additions


class CommitError(TransientError):
    """A commit that ran out of attempts. ``outcome_unknown``: an attempt may have landed
    (e.g. a lost response), so its data files must be kept (orphans at worst)."""

    def __init__(self, message: str, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


def commit(catalog: Catalog, table_name: str, staged: list[Staged], ledger: Ledger, *,
           provisional: StagedTable | None = None, evolve: bool = False, target: Target | None = None,
           deadline: float | None = None, max_attempts: int | None = None,
           base_delay: float = 0.05, max_delay: float = 5.0, force: bool = False,
           summary: dict[str, str] | None = None) -> CommitResult:
    """Add the staged files in one snapshot, skipping sources the table already holds.

    ``provisional``: the table as it will be created when it does not exist yet (its
    metadata carries the columns staged so far). ``evolve``: add the staged results' new
    columns in the same commit (tables without declared columns). ``target``: its write
    mode; anything but append is planned inside each attempt (``core.modes``), on the
    table that attempt loaded, so a concurrent commit means planning again, never a lost
    update.

    Conflicts retry with exponential backoff and full jitter on a freshly loaded table. The
    backoff starts from the measured length of an attempt (a slow catalog under contention
    needs longer gaps than a fast one), and is bounded by ``deadline`` (a time.monotonic()
    value, e.g. the Lambda's remaining time) and ``max_attempts`` (default 40 with a
    deadline, 12 without). ``force``: commit even sources the table holds (a deliberate
    re-ingest); a lost response is still detected, by this call's own snapshot. ``summary``:
    more snapshot summary properties (the commit lane names the hand-offs it commits).
    """
    limit = max_attempts or (40 if deadline is not None else 12)
    from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.table import CreateTableTransaction


    start = time.monotonic()
    attempt = 0
    # After an error of unknown outcome our own snapshot may be the one that holds these
    # sources, with these very data files: then they must not be deleted as duplicates.
    outcome_unknown = False
    rejected: list[tuple[Staged, str]] = []
    while True:
        attempt += 1
        attempt_start = time.monotonic()
        try:
            table: Table | None = catalog.load_table(table_name)
        except NoSuchTableError:
            table = None
        duplicates: list[Staged] = []
        renamed: list[Staged] = []
        txn: Transaction
        if table is None:
            if provisional is None:
                raise CommitError(f"table {table_name} does not exist any more (dropped while "
                                  "this batch was read?)", outcome_unknown)
            txn = CreateTableTransaction(provisional)
            todo = list(staged)
        else:
            state = reconcile(table, table_name, ledger)
            done = recorded(ledger, state, table_name, [s.source_id for s in staged])
            if force and not outcome_unknown:
                done = set()
            duplicates = [s for s in staged if s.source_id in done]
            todo = [s for s in staged if s.source_id not in done]
            _own_retries(table)
            txn = table.transaction()
            # Renamed since staging (another writer): read again, then refused, never added.
            renamed = [s for s in todo if s.result_schema is not None
                       and renamed_columns(txn.table_metadata, s.result_schema.names)]
            todo = [s for s in todo if not any(s is r for r in renamed)]
            if evolve and todo:
                _add_new_columns(txn, todo)
        final = txn.table_metadata.schema()
        restage = renamed + [s for s in todo if s.schema is not None and not same_field_ids(s.schema, final)]
        misfits = {id(s) for s in restage}
        todo = [s for s in todo if id(s) not in misfits]
        if not todo:
            if not outcome_unknown and table is not None:
                discard(table, duplicates)
            return CommitResult(table_name, [], duplicates, None, attempt, time.monotonic() - start,
                                restage, rejected)
        changes = Changes()
        try:
            plan_changes(txn, todo, target, changes)
            if changes.rejected:
                out = {id(s) for s, _ in changes.rejected}
                rejected += changes.rejected
                todo = [s for s in todo if id(s) not in out]
                if not todo:
                    return CommitResult(table_name, [], duplicates, None, attempt,
                                        time.monotonic() - start, restage, rejected)
            props = {
                ROUTES_PROP: ",".join(sorted({s.route for s in todo})),
                SOURCES_PROP: json.dumps([s.source_id for s in todo], ensure_ascii=False),
                "lakeroute.rows": str(sum(s.rows for s in todo)),
                **changes.stats,
                **(summary or {}),
            }
            for prop, count in (("lakeroute.rejected_rows", sum(s.rejected for s in todo)),
                                ("lakeroute.rescued_rows", sum(s.rescued for s in todo))):
                if count:  # rows set aside (rejects file) or landed with _rescued_data
                    props[prop] = str(count)
            snapshot = txn.update_snapshot(snapshot_properties=props)
            if target is not None and target.mode == "replace":  # small manifests: see object_files
                with object_files(snapshot, changes.entries, removes=bool(changes.deleted),
                                  clean=changes.clean) as producer:
                    for df in changes.deleted:
                        producer.delete_data_file(df)
                    for df in changes.added:
                        producer.append_data_file(df)
            elif changes.deleted or any(df.content != DataFileContent.DATA for df in changes.added):
                # data and delete files out, data (and position delete) files in (manifests
                # read by the plan not read again)
                with overwrite_files(snapshot, changes.entries) as overwrite:
                    for df in changes.deleted:
                        overwrite.delete_data_file(df)
                    for df in changes.added:
                        overwrite.append_data_file(df)
            else:
                # merge_append honours commit.manifest-merge.*: manifests stay bounded over many commits.
                with snapshot.merge_append() as append:
                    for df in changes.added:
                        append.append_data_file(df)
            new = txn.commit_transaction()
        except CommitFailedException as e:
            error: Exception = e
            _delete(txn, changes.written)  # rejected: this attempt's own files are not in the table
        except Exception as e:  # unknown outcome (e.g. lost response): re-check, then retry
            if type(e).__name__ in ("ValidationException",) or not changes.planned:
                _delete(txn, changes.written)  # failed before the commit was sent
                raise
            error = e
            outcome_unknown = True
        else:
            _delete(txn, changes.unused)
            snap = new.metadata.current_snapshot_id
            assert snap is not None
            order = snapshot_order(new, snap)
            ledger.record(table_name, str(new.metadata.table_uuid),
                          [(s.source_id, snap, order, s.route) for s in todo], None)
            if not outcome_unknown and table is not None:
                discard(table, duplicates)
            return CommitResult(table_name, todo, duplicates, snap, attempt, time.monotonic() - start,
                                restage, rejected, changes.stats)
        base = max(base_delay, time.monotonic() - attempt_start)
        delay = random.uniform(0, min(max_delay, base * 2 ** (attempt - 1)))
        out_of_time = deadline is not None and time.monotonic() + delay > deadline
        if attempt >= limit or out_of_time:
            raise CommitError(f"commit to {table_name} failed after {attempt} attempts: "
                              f"{type(error).__name__}: {error}", outcome_unknown) from error
        log.info("commit to %s conflicted (attempt %d): %s; retrying in %.3fs",
                 table_name, attempt, type(error).__name__, delay)
        time.sleep(delay)


def plan_changes(txn: Transaction, todo: list[Staged], target: Target | None, changes: Changes) -> None:
    """Fill ``changes``: what this attempt's snapshot deletes and adds, for the write mode.
    (Filled in place, so that files written before a failure are known and deleted.)"""
    io = txn._table.io
    mode = "append" if target is None else target.mode
    # The table may have changed under us (another engine upgraded it): a configuration error.
    refuse_unsupported(qualified_name(txn), txn.table_metadata, io, mode)
    if mode == "upsert":
        from .upsert import plan_upsert  # with merge-on-read: imported by upsert tables only

        assert target is not None
        plan_upsert(txn, io, todo, target, changes)
    elif mode == "replace":
        plan_replace(txn, io, todo, changes)
    elif mode == "overwrite":
        assert target is not None
        plan_overwrite(txn, io, todo, changes, whole_table=target.overwrite == "table")
    else:
        changes.added += [df for s in todo for df in s.data_files]
        _write_tails(txn, io, todo, changes)
    changes.planned = True


def _write_tails(txn: Transaction, io: FileIO, todo: list[Staged], changes: Changes) -> None:
    """The batch's small objects (and large objects' last chunks) in shared data files.

    Written inside the attempt, for exactly the objects it commits and with the schema it
    commits (cast by name: field ids always match); a rejected attempt deletes them.
    """
    import pyarrow as pa

    tails = [s for s in sorted(todo, key=lambda s: s.order) if s.tail is not None]
    if not tails:
        return
    schema = txn.table_metadata.schema().as_arrow()
    write_uuid, counter = uuid.uuid4(), itertools.count()

    def rows(of: list[Staged]) -> pa.Table:
        return pa.Table.from_batches([align(b, schema, s.route) for s in of
                                      for b in s.tail.to_batches()], schema=schema)  # type: ignore[union-attr]

    try:
        new = write_rows(txn, io, rows(tails), write_uuid, counter)
    except OSError:
        raise  # the store, not the rows: the whole commit is retried
    except Exception:
        # Some object's rows cannot be written (staging checks the known cases): find it by
        # writing each alone, so that only it fails and the others commit.
        new = []
        for s in tails:
            try:
                new += write_rows(txn, io, rows([s]), write_uuid, counter)
            except OSError:
                _delete(txn, new)
                raise
            except Exception as e:
                changes.rejected.append((s, f"write: {type(e).__name__}: {one_line(e, 300)}"))
    changes.written += new
    changes.added += new


def _delete(txn: Transaction, files: list[DataFile]) -> None:
    delete_files(txn._table.io, [df.file_path for df in files])


def _add_new_columns(txn: Transaction, staged: list[Staged]) -> None:
    """The staged results' new columns and widened types (``core.policy``), in this transaction."""
    from ..shape.policy import apply_changes, changes_for

    current = txn.table_metadata.schema()
    results = [s.result_schema for s in staged if s.result_schema is not None]
    if changes_for(current, results)[0]:
        with txn.update_schema() as update:
            apply_changes(update, current, results)


def _own_retries(table: Table) -> None:
    """Turn off PyIceberg's internal commit retry for this in-memory table object.

    Its retry re-applies the append on a refreshed base without our duplicate check; we
    retry ourselves (above) instead. The stored table properties are left as they are.
    """
    props = table.metadata.properties
    if props.get("commit.retry.num-retries") != "0":
        table.metadata = table.metadata.model_copy(
            update={"properties": {**props, **OWN_RETRY_PROPERTIES}})
