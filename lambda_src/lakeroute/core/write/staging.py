"""Staging: an object's rows cast to the table schema and written as data files, not yet visible."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ObjectError, one_line
from ..routes import OBJECT_COLUMN
from ..shape.types import cast_column
from .bounds import write_data_files

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

    from ..routes import Target

log = logging.getLogger("lakeroute.commit")

STAGE_BYTES = 128 * 1024 * 1024  # Arrow bytes per written chunk: bounds memory per object
# A partitioned table's chunk is copied once more (split by partition) and its partitions are
# encoded in parallel: half the chunk keeps memory level with the unpartitioned case and lets
# reading and writing overlap better (benchmarks/: ~10% faster, ~25% less peak memory).
PARTITIONED_STAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Staged:
    """One object's rows, written as data files, waiting for its table's commit."""

    source_id: str
    route: str
    table: str
    rows: int
    data_files: list[DataFile] = field(default_factory=list)
    # The table schema the files were written with (field ids), and the result's table-ready
    # Arrow schema: a table without declared columns gains its new columns in the commit.
    schema: Schema | None = None
    result_schema: pa.Schema | None = None
    order: int = 0  # staging order within the process
    picked_at: float = 0.0  # epoch seconds when the object was picked up (commit-lane freshness)
    seconds: float = 0.0  # reading, SQL and staging
    object_name: str = ""  # logical bucket/key: what mode replace swaps
    # mode upsert: the rows (table-aligned, plus the delete flag) in local scratch files, in
    # file order; the commit merges them with the table instead of adding them as they are.
    local_files: list[str] = field(default_factory=list)
    # mode append: the object's last (for a small object: only) chunk, kept in memory and
    # written at commit time into data files shared with the batch's other objects.
    tail: pa.Table | None = None

    @property
    def tail_bytes(self) -> int:
        # The buffers' sizes (~1 us): ``nbytes`` deduplicates shared buffers (~30 us per call,
        # more for DuckDB's batches) for the same figure here, each object's buffers its own.
        return 0 if self.tail is None else self.tail.get_total_buffer_size()
    # What the schema policy, rejects and evolution did (core.policy), for the outcome and summary.
    rescued: int = 0
    rejected: int = 0
    rejects_to: str | None = None
    changes: list[str] = field(default_factory=list)
    # What the object did to the table's rows (``core.write.attribution``), set by the mode's plan.
    counts: dict[str, int] = field(default_factory=dict)

    def row_counts(self) -> dict[str, int]:
        """added / updated / deleted / stale rows; mode append sets none: every row is added."""
        return self.counts or {"added": self.rows, "updated": 0, "deleted": 0, "stale": 0}


def align(batch: pa.RecordBatch, schema: pa.Schema, route: str,
          fill: dict[str, str] | None = None) -> pa.RecordBatch:
    """Cast a result batch to the table's Arrow schema by column name.

    ``fill``: columns lakeroute sets itself (a constant per object) when the result lacks them.
    """
    import pyarrow as pa

    names = batch.schema.names
    extra = [n for n in names if schema.get_field_index(n) < 0]
    if extra:
        raise ObjectError("schema", f"route {route}: result columns {', '.join(extra)} are not in "
                          "the table; add them to target.columns or drop them in the SQL", route)
    arrays = []
    for f in schema:
        if f.name in names:
            col = cast_column(batch.column(names.index(f.name)), f.type, route, f.name)
        elif fill and f.name in fill:
            col = pa.array([fill[f.name]] * batch.num_rows, f.type)
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

    def __init__(self, table: Table, metadata: TableMetadata | None = None,
                 target: Target | None = None) -> None:
        self.table = table  # its io writes and deletes the files
        self.metadata = metadata if metadata is not None else table.metadata  # schema, spec, location
        self.write_uuid = uuid.uuid4()
        self.counter = itertools.count(0)
        self.arrow_schema = self.metadata.schema().as_arrow()
        self.target = target
        # Append tables share data files across a batch's objects (fewer, bigger files);
        # replace and overwrite keep an object's rows in its own files (found by them).
        self.shared = target is None or target.mode == "append"

    def _write(self, tbl: pa.Table) -> list[DataFile]:
        return write_data_files(self.metadata, tbl, self.table.io, self.write_uuid, self.counter)

    def stage(self, reader: pa.RecordBatchReader, staged: Staged) -> None:
        if self.target is not None and self.target.mode == "upsert":
            stage_local(reader, staged, self.arrow_schema, self.target)
            return
        self._stage_files(reader, staged)

    def _stage_files(self, reader: pa.RecordBatchReader, staged: Staged) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa

        fill = ({OBJECT_COLUMN: staged.object_name}
                if self.target is not None and self.target.mode == "replace" else None)

        chunk: list[pa.RecordBatch] = []
        size = 0
        limit = STAGE_BYTES if self.metadata.spec().is_unpartitioned() else PARTITIONED_STAGE_BYTES
        staged.schema = self.metadata.schema()
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
                aligned = align(batch, self.arrow_schema, staged.route, fill)
                chunk.append(aligned)
                size += aligned.get_total_buffer_size()  # as tail_bytes
                staged.rows += aligned.num_rows
                if size >= limit:
                    tbl = take()
                    collect()  # the previous chunk first: one chunk in flight at most
                    if pool is None:
                        pool = ThreadPoolExecutor(1, thread_name_prefix="lakeroute-writer")
                    pending = pool.submit(self._write, tbl)
            if chunk and self.shared:
                staged.tail = take()  # written with the batch's other tails, at commit
                check_writable(staged.tail, self.metadata.schema(), staged.route)
                collect()
            else:
                last = self._write(take()) if chunk else []  # meanwhile, the in-flight chunk too
                collect()
                staged.data_files.extend(last)
            if not staged.data_files:
                staged.schema = None  # no file carries field ids: the commit aligns the tail
        except BaseException:
            if pending is not None:  # let it finish, so that its files are deleted below
                with contextlib.suppress(BaseException):
                    staged.data_files.extend(pending.result())
            discard(self.table, [staged])
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)


def check_writable(tbl: pa.Table, schema: Schema, route: str) -> None:
    """What writing ``tbl`` would reject, checked now, while the failure is this object's:
    the column bounds PyIceberg serializes into the manifest (a decimal wider than its type,
    an infinite timestamp or date)."""
    import pyarrow.compute as pc
    from pyiceberg.conversions import to_bytes
    from pyiceberg.types import PrimitiveType

    for f in schema.fields:
        if not isinstance(f.field_type, PrimitiveType) or f.name not in tbl.column_names:
            continue
        col = tbl.column(f.name)
        if col.null_count == len(col) or _always_writable(f.field_type, col.type) or _in_calendar(col):
            continue
        try:
            bounds = pc.min_max(col)
            for which in ("min", "max"):
                value = bounds[which].as_py()
                if value is not None:
                    to_bytes(f.field_type, value)
        except (ValueError, OverflowError, TypeError) as e:
            raise ObjectError("write", f"route {route}: column {f.name}: a value cannot be written as "
                              f"{f.field_type}: {one_line(e, 200)}", route) from e
        except NotImplementedError:  # min/max not defined for this Arrow type: the writer tells
            continue


# Microseconds and days from the epoch to 0001-01-01 and to 9999-12-31T23:59:59.999999: the
# range of Python's datetime and date, through which PyIceberg serializes a bound.
_MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)
_DAYS = (-719_162, 2_932_896)


def _in_calendar(col: pa.ChunkedArray) -> bool:
    """A microsecond timestamp or a date column whose every value is within the calendar (then
    its bounds serialize), found on the integers, without a datetime per bound."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type) and col.type.unit == "us":
        low, high = _MICROS
        ints = col.cast(pa.int64())
    elif pa.types.is_date32(col.type):
        low, high = _DAYS
        ints = col.cast(pa.int32())
    else:
        return False
    bounds = pc.min_max(ints)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    return lo is not None and hi is not None and low <= lo and hi <= high


def _always_writable(iceberg: object, arrow: pa.DataType) -> bool:
    """Arrow values every one of which the Iceberg type serializes (valid UTF-8, an int64 as a
    long, ...): no bound to check. A float64 into a float, a decimal, a date or a time may not."""
    return arrow in _exact_types().get(type(iceberg), ())


@functools.cache
def _exact_types() -> dict[type, tuple[pa.DataType, ...]]:
    import pyarrow as pa
    from pyiceberg.types import BinaryType, BooleanType, DoubleType, FloatType, IntegerType, LongType, StringType

    return {StringType: (pa.string(), pa.large_string(), pa.string_view()), LongType: (pa.int64(),),
            IntegerType: (pa.int32(),), BooleanType: (pa.bool_(),), DoubleType: (pa.float64(),),
            FloatType: (pa.float32(),), BinaryType: (pa.binary(), pa.large_binary())}


DELETE_FLAG = "__lakeroute_delete"  # mode upsert, in scratch only: the row deletes its key


def stage_local(reader: pa.RecordBatchReader, staged: Staged, schema: pa.Schema, target: Target) -> None:
    """Mode upsert: the object's rows, aligned to the table, into one local Arrow file.

    Rows stay in file order (the last of a key's duplicates wins without ``order_by``), the
    operation column becomes a delete flag (and is written only when the table has such a
    column), and a row without a key fails the object: it could never be matched again.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = target.key or []
    op = target.operation
    deletes = pa.array(op.delete, pa.string()) if op else None
    out = pa.schema([*schema, pa.field(DELETE_FLAG, pa.bool_(), nullable=False)])
    fd, path = tempfile.mkstemp(prefix="lakeroute-upsert-", suffix=".arrow")
    os.close(fd)
    staged.local_files.append(path)
    staged.schema = None  # nothing written with field ids: the merge aligns at commit time
    try:
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(
                sink, out, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                flag = pa.array([False] * batch.num_rows, pa.bool_())
                if op is not None:
                    i = batch.schema.get_field_index(op.column)
                    if i < 0:
                        raise ObjectError("schema", f"route {staged.route}: the result has no operation "
                                          f"column {op.column!r}", staged.route)
                    flag = pc.fill_null(pc.is_in(pc.cast(batch.column(i), pa.string()), value_set=deletes), False)
                    if schema.get_field_index(op.column) < 0:  # not a table column: not written
                        batch = batch.drop_columns([op.column])
                aligned = align(batch, schema, staged.route)
                for k in keys:
                    nulls = aligned.column(k).null_count
                    if nulls:
                        raise ObjectError("schema", f"route {staged.route}: key column {k!r} is null in "
                                          f"{nulls} rows; upsert needs a key in every row", staged.route)
                writer.write_batch(pa.RecordBatch.from_arrays([*aligned.columns, flag], schema=out))
                staged.rows += batch.num_rows
    except BaseException:
        discard(None, [staged])
        raise


def delete_files(io: FileIO, paths: Iterable[str]) -> None:
    """Delete files nothing references (best effort): what stays is an orphan, which
    `lakeroute maintain` removes; a crash here would be worse."""
    for path in paths:
        try:
            io.delete(path)
        except FileNotFoundError:
            pass
        except Exception as e:
            log.warning("could not delete %s: %s", path, e)


def discard(table: Table | None, staged: Iterable[Staged]) -> None:
    """Delete staged data files that will never be committed (and local scratch files)."""
    for s in staged:
        for path in s.local_files:
            with contextlib.suppress(OSError):
                os.remove(path)
        s.local_files.clear()
        s.tail = None
        if table is None:
            continue
        delete_files(table.io, [df.file_path for df in s.data_files])
        s.data_files.clear()
