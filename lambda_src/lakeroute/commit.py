"""Staging data files and committing them exactly once.

Each object's rows are written as Parquet data files into the table's location (staged,
not yet visible); the staged files of one batch that target the same table are then added
in one snapshot. The snapshot summary names the route and the source object versions: that
record is the source of truth. Before every commit attempt the writer loads the table fresh,
reads the summaries of the snapshots it has not seen yet into a small ledger, and drops the
sources already there, so redelivery, a lost commit response or a concurrent duplicate never
adds rows twice. The commit itself is optimistic (the catalog rejects a stale base), so the
check and the commit are atomic together.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import ObjectError, TransientError
from .tables import OWN_RETRY_PROPERTIES

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

log = logging.getLogger("lakeroute.commit")

SOURCES_PROP = "lakeroute.sources"
ROUTES_PROP = "lakeroute.routes"
STAGE_BYTES = 128 * 1024 * 1024  # Arrow bytes per written chunk: bounds memory per object
# A partitioned table's chunk is copied once more (split by partition) and its partitions are
# encoded in parallel: half the chunk keeps memory level with the unpartitioned case and lets
# reading and writing overlap better (benchmarks/: ~10% faster, ~25% less peak memory).
PARTITIONED_STAGE_BYTES = 64 * 1024 * 1024


# ---------------------------------------------------------------- ledger


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


class SqliteLedger:
    """The local ledger: two small tables in a SQLite file beside the catalog."""

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

    def committed(self, table: str, source_ids: Iterable[str]) -> set[str]:
        ids = list(source_ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._con.execute(
                f"SELECT source_id FROM lakeroute_ledger WHERE table_name = ? AND source_id IN ({marks})",  # noqa: S608 (placeholders only)
                [table, *chunk],
            )
            found.update(r[0] for r in rows)
        return found

    def watermark(self, table: str) -> int | None:
        row = self._con.execute(
            "SELECT snapshot_id FROM lakeroute_watermark WHERE table_name = ?", [table]).fetchone()
        return None if row is None else int(row[0])

    def record(self, table: str, entries: list[tuple[str, int, str]], watermark: int | None) -> None:
        now = time.time()
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT OR IGNORE INTO lakeroute_ledger VALUES (?, ?, ?, ?, ?)",
                [(table, sid, snap, route, now) for sid, snap, route in entries],
            )
            if watermark is not None:
                self._con.execute(
                    "INSERT INTO lakeroute_watermark VALUES (?, ?) ON CONFLICT(table_name) "
                    "DO UPDATE SET snapshot_id = excluded.snapshot_id", [table, watermark])


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


# ---------------------------------------------------------------- staging


@dataclass
class Staged:
    """One object's rows, written as data files, waiting for its table's commit."""

    source_id: str
    route: str
    table: str
    rows: int
    data_files: list[DataFile] = field(default_factory=list)


def align(batch: pa.RecordBatch, schema: pa.Schema, route: str) -> pa.RecordBatch:
    """Cast a result batch to the table's Arrow schema by column name."""
    import pyarrow as pa

    names = batch.schema.names
    extra = [n for n in names if schema.get_field_index(n) < 0]
    if extra:
        raise ObjectError("schema", f"route {route}: result columns {', '.join(extra)} are not in "
                          "the table; add them to target.columns or drop them in the SQL", route)
    arrays = []
    for f in schema:
        if f.name in names:
            col = batch.column(names.index(f.name))
            if col.type != f.type:
                try:
                    col = col.cast(f.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise ObjectError("schema", f"route {route}: column {f.name}: cannot cast "
                                      f"{col.type} to {f.type}: {e}", route) from e
        else:
            col = pa.nulls(batch.num_rows, f.type)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class Writer:
    """Writes one table's staged data files; shares a write id and file counter per batch.

    An object's rows are cut into chunks of ``STAGE_BYTES`` Arrow bytes (a partitioned table:
    ``PARTITIONED_STAGE_BYTES``), each written as its own data file(s), split by partition.
    For an object bigger than one chunk, a chunk is written on a background thread while
    DuckDB produces the next one, so reading and encoding overlap; at most one chunk is in
    flight besides the one being filled, which bounds memory at about two chunks. The last
    (or only) chunk is written on the calling thread, so a small object never touches a
    thread. ``stage`` returns only when every file is written, and on any failure deletes
    whatever it wrote before re-raising.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self.write_uuid = uuid.uuid4()
        self.counter = itertools.count(0)
        self.arrow_schema = table.schema().as_arrow()

    def _write(self, tbl: pa.Table) -> list[DataFile]:
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        return list(_dataframe_to_data_files(
            table_metadata=self.table.metadata, df=tbl, io=self.table.io,
            write_uuid=self.write_uuid, counter=self.counter))

    def stage(self, reader: pa.RecordBatchReader, staged: Staged) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa

        chunk: list[pa.RecordBatch] = []
        size = 0
        limit = STAGE_BYTES if self.table.metadata.spec().is_unpartitioned() else PARTITIONED_STAGE_BYTES
        pool: ThreadPoolExecutor | None = None
        pending: Future[list[DataFile]] | None = None

        def take() -> pa.Table:
            nonlocal chunk, size
            tbl = pa.Table.from_batches(chunk, schema=self.arrow_schema)
            chunk, size = [], 0
            return tbl

        def collect() -> None:
            nonlocal pending
            if pending is not None:
                done, pending = pending, None
                staged.data_files.extend(done.result())

        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                aligned = align(batch, self.arrow_schema, staged.route)
                chunk.append(aligned)
                size += aligned.nbytes
                staged.rows += aligned.num_rows
                if size >= limit:
                    tbl = take()
                    collect()  # the previous chunk first: one chunk in flight at most
                    if pool is None:
                        pool = ThreadPoolExecutor(1, thread_name_prefix="lakeroute-writer")
                    pending = pool.submit(self._write, tbl)
            last = self._write(take()) if chunk else []  # meanwhile, the in-flight chunk too
            collect()
            staged.data_files.extend(last)
        except BaseException:
            if pending is not None:  # let it finish, so that its files are deleted below
                with contextlib.suppress(BaseException):
                    staged.data_files.extend(pending.result())
            discard(self.table, [staged])
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)


def discard(table: Table, staged: Iterable[Staged]) -> None:
    """Delete staged data files that will never be committed."""
    for s in staged:
        for df in s.data_files:
            try:
                table.io.delete(df.file_path)
            except Exception:  # best effort: an orphan file is harmless, a crash here is not
                log.warning("could not delete staged file %s", df.file_path)
        s.data_files.clear()


# ---------------------------------------------------------------- commit


@dataclass
class CommitResult:
    table: str
    committed: list[Staged]
    duplicates: list[Staged]
    snapshot_id: int | None
    attempts: int
    seconds: float


def commit(catalog: Catalog, table_name: str, staged: list[Staged], ledger: Ledger, *,
           deadline: float | None = None, max_attempts: int | None = None,
           base_delay: float = 0.05, max_delay: float = 5.0) -> CommitResult:
    """Add the staged files in one snapshot, skipping sources the table already holds.

    Conflicts retry with exponential backoff and full jitter on a freshly loaded table. The
    backoff starts from the measured length of an attempt (a slow catalog under contention
    needs longer gaps than a fast one), and is bounded by ``deadline`` (a time.monotonic()
    value, e.g. the Lambda's remaining time) and ``max_attempts`` (default 40 with a
    deadline, 12 without).
    """
    limit = max_attempts or (40 if deadline is not None else 12)
    from pyiceberg.exceptions import CommitFailedException

    start = time.monotonic()
    attempt = 0
    # After an error of unknown outcome our own snapshot may be the one that holds these
    # sources, with these very data files: then they must not be deleted as duplicates.
    outcome_unknown = False
    while True:
        attempt += 1
        attempt_start = time.monotonic()
        table = catalog.load_table(table_name)
        reconcile(table, table_name, ledger)
        done = ledger.committed(table_name, [s.source_id for s in staged])
        duplicates = [s for s in staged if s.source_id in done]
        todo = [s for s in staged if s.source_id not in done]
        if not todo:
            if not outcome_unknown:
                discard(table, duplicates)
            return CommitResult(table_name, [], duplicates, None, attempt, time.monotonic() - start)
        routes = sorted({s.route for s in todo})
        props = {
            ROUTES_PROP: ",".join(routes),
            SOURCES_PROP: json.dumps([s.source_id for s in todo], ensure_ascii=False),
            "lakeroute.rows": str(sum(s.rows for s in todo)),
        }
        _own_retries(table)
        try:
            txn = table.transaction()
            # merge_append honours commit.manifest-merge.*: manifests stay bounded over many commits.
            with txn.update_snapshot(snapshot_properties=props).merge_append() as append:
                for s in todo:
                    for df in s.data_files:
                        append.append_data_file(df)
            new = txn.commit_transaction()
        except CommitFailedException as e:
            error: Exception = e
        except Exception as e:  # unknown outcome (e.g. lost response): re-check, then retry
            if type(e).__name__ in ("ValidationException",):
                raise
            error = e
            outcome_unknown = True
        else:
            snap = new.metadata.current_snapshot_id
            assert snap is not None
            ledger.record(table_name, [(s.source_id, snap, s.route) for s in todo], None)
            if not outcome_unknown:
                discard(table, duplicates)
            return CommitResult(table_name, todo, duplicates, snap, attempt, time.monotonic() - start)
        base = max(base_delay, time.monotonic() - attempt_start)
        delay = random.uniform(0, min(max_delay, base * 2 ** (attempt - 1)))
        out_of_time = deadline is not None and time.monotonic() + delay > deadline
        if attempt >= limit or out_of_time:
            raise TransientError(
                f"commit to {table_name} failed after {attempt} attempts: {error}") from error
        log.info("commit to %s conflicted (attempt %d): %s; retrying in %.3fs",
                 table_name, attempt, type(error).__name__, delay)
        time.sleep(delay)


def _own_retries(table: Table) -> None:
    """Turn off PyIceberg's internal commit retry for this in-memory table object.

    Its retry re-applies the append on a refreshed base without our duplicate check; we
    retry ourselves (above) instead. The stored table properties are left as they are.
    """
    props = table.metadata.properties
    if props.get("commit.retry.num-retries") != "0":
        table.metadata = table.metadata.model_copy(
            update={"properties": {**props, **OWN_RETRY_PROPERTIES}})
