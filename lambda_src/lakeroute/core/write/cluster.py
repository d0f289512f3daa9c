"""Key-clustered data files for key-oriented (``mode: upsert``) tables.

An upsert finds the files that may hold a batch's keys by the key columns' bounds in the
manifests. Files that each hold the whole key range are all read, whatever the batch; files
sorted by key and cut into key ranges are read only where the batch's keys fall. So every
file an upsert (or the compaction of an upsert table) writes holds rows sorted by the key,
and the rows of one write are cut into files of contiguous key ranges: their bounds are
disjoint, and a narrow batch reads only the files whose ranges hold its keys. The table's
Iceberg sort order is set to the key (ascending) so that other engines see it too.

Files of an unpartitioned table are cut at ``CLUSTER_FILE_BYTES`` of Arrow data, or the
table's ``write.target-file-size-bytes`` when smaller (PyIceberg's measure: Arrow bytes) (a
partitioned table's rows are sorted, then split by partition as before: each partition's
files hold sorted, contiguous rows). The files of one write are encoded in parallel
(PyIceberg's executor), and ``Background`` overlaps that with reading the next files.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .bounds import safe_metrics, write_data_files
from .modes import REWRITE_GROUP_BYTES, Changes, bounds, bounds_reader, groups, read_files, survivors

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from .deletes import LiveFiles

# Arrow bytes per clustered file (~10-25 MB of Parquet): small enough that a narrow batch
# rewrites little, big enough that a table of millions of rows stays a few dozen files.
CLUSTER_FILE_BYTES = 64 * 1024 * 1024
MAX_CUTS = 256  # staying files' bounds a write is cut at, at most (each costs a pass over the key)


def ensure_key_order(txn: Transaction, keys: list[str]) -> None:
    """Make the table's default sort order the key, ascending, in this transaction (once)."""
    from pyiceberg.table.sorting import SortDirection
    from pyiceberg.transforms import IdentityTransform

    metadata = txn.table_metadata
    schema = metadata.schema()
    want = [schema.find_field(k).field_id for k in keys]
    order = metadata.sort_order()
    if [f.source_id for f in order.fields] == want and all(
            f.direction == SortDirection.ASC and isinstance(f.transform, IdentityTransform) for f in order.fields):
        return
    with txn.update_sort_order() as update:
        for k in keys:
            update.asc(k, IdentityTransform())


def sort_rows(rows: pa.Table, keys: list[str]) -> pa.Table:
    """``rows`` ordered by the key columns (an extension type such as uuid by its storage:
    equal bytes order as the values do)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if rows.num_rows < 2:
        return rows
    first = rows.column(keys[0])
    if len(keys) == 1 and not isinstance(first.type, pa.BaseExtensionType) and first.null_count == 0:
        try:  # already in order (the survivors of one sorted file): no sort, no copy
            if pc.all(pc.less_equal(first.slice(0, len(first) - 1), first.slice(1))).as_py():
                return rows
        except pa.ArrowNotImplementedError:
            pass
    cols = {}
    for k in keys:
        col = rows.column(k)
        if isinstance(col.type, pa.BaseExtensionType):
            col = pa.chunked_array([c.storage for c in col.chunks], type=col.type.storage_type)
        cols[k] = col
    order = pc.sort_indices(pa.table(cols), sort_keys=[(k, "ascending") for k in keys])
    return rows.take(order)


def by_lower_bound(metadata: TableMetadata, files: list[DataFile], key: str) -> list[DataFile]:
    """Files in the order of their lower bound of ``key`` (files without bounds first)."""
    read = bounds_reader(metadata, key)

    def lower(f: DataFile) -> tuple[int, Any]:
        rng = read(f)
        return (0, 0) if rng is None else (1, rng[0])

    try:
        return sorted(files, key=lower)
    except TypeError:  # bounds of mixed types (a column re-typed by another writer): any order
        return list(files)


def in_range(metadata: TableMetadata, data_file: DataFile, column: pa.ChunkedArray, key: str, *,
             below: bool = False) -> pa.ChunkedArray | None:
    """A mask of ``column``'s values within ``data_file``'s bounds of ``key`` (``below``: under
    its lower bound); None when the bounds are missing or not comparable with the column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = bounds(metadata, data_file, key)
    if rng is None or isinstance(column.type, pa.BaseExtensionType):
        return None
    try:
        lo, hi = pa.scalar(rng[0], type=column.type), pa.scalar(rng[1], type=column.type)
        mask = pc.less(column, lo) if below else pc.and_(pc.greater_equal(column, lo), pc.less_equal(column, hi))
        return pc.fill_null(mask, False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, OverflowError):
        return None


def segments(rows: pa.Table, key: str, cuts: list[Any]) -> list[tuple[int, int]]:
    """(offset, length) of the runs of sorted ``rows`` between the ``cuts`` (the lower bounds
    of files that stay: a new file never spans one of them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = rows.column(key)
    if not cuts or rows.num_rows == 0 or isinstance(col.type, pa.BaseExtensionType):
        return [(0, rows.num_rows)]
    lo, hi = pc.min_max(col).values()
    at = {0, rows.num_rows}
    used = 0
    for c in cuts:  # manifest bounds (days, microseconds) as the column's own type
        try:
            cut_at = pa.scalar(c, type=col.type)
            if not (pc.less(lo, cut_at).as_py() and pc.less_equal(cut_at, hi).as_py()):
                continue
            at.add(int(pc.sum(pc.less(col, cut_at)).as_py() or 0))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, OverflowError):
            continue
        used += 1
        if used >= MAX_CUTS:
            break
    edges = sorted(at)
    return [(a, b - a) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def write_clustered(txn: Transaction, io: FileIO, rows: pa.Table, keys: list[str], write_uuid: uuid.UUID,
                    counter: itertools.count[int], cuts: list[Any] | None = None) -> list[DataFile]:
    """``rows`` sorted by the key and written as files of contiguous key ranges, none
    spanning one of ``cuts``."""
    from pyiceberg.io.pyarrow import write_file
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_int

    if rows.num_rows == 0:
        return []
    metadata = txn.table_metadata
    rows = sort_rows(rows, keys).combine_chunks()
    if not metadata.spec().is_unpartitioned():
        return write_data_files(metadata, rows, io, write_uuid, counter)
    target = min(CLUSTER_FILE_BYTES, property_as_int(metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                                                     TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT) or 1)
    per_file = max(1, int(rows.num_rows * target / max(1, rows.nbytes)))
    schema = metadata.schema()
    tasks = []
    for offset, length in segments(rows, keys[0], cuts or []):
        pieces = max(1, -(-length // per_file))
        size = -(-length // pieces)  # equal pieces: no small last file
        tasks += [WriteTask(write_uuid=write_uuid, task_id=next(counter), schema=schema,
                            record_batches=rows.slice(offset + i, min(size, length - i)).to_batches())
                  for i in range(0, length, size)]
    return list(write_file(io=io, table_metadata=safe_metrics(metadata, rows), tasks=iter(tasks)))


class Background:
    """Writes one table of rows at a time on a thread while the caller reads the next files:
    at most one write in flight (memory: the rows being written and the rows being gathered)."""

    def __init__(self, txn: Transaction, io: FileIO, keys: list[str], changes: Changes) -> None:
        self.txn, self.io, self.keys, self.changes = txn, io, keys, changes
        self.write_uuid, self.counter = uuid.uuid4(), itertools.count()
        self.pool: ThreadPoolExecutor | None = None
        self.pending: Future[list[DataFile]] | None = None

    def submit(self, rows: pa.Table, cuts: list[Any]) -> None:
        self.wait()
        if rows.num_rows == 0:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="lakeroute-upsert-write")
        self.pending = self.pool.submit(write_clustered, self.txn, self.io, rows, self.keys,
                                        self.write_uuid, self.counter, cuts)

    def wait(self) -> None:
        """The write in flight finished; its files are the attempt's (deleted if it fails)."""
        if self.pending is not None:
            done, self.pending = self.pending, None
            new = done.result()
            self.changes.written += new
            self.changes.added += new

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)


def rewrite_clustered(txn: Transaction, io: FileIO, live: LiveFiles, files: list[DataFile], changes: Changes,
                      drop: Callable[[list[pa.Table]], list[pa.Array]], writer: Background,
                      settled: Callable[[DataFile | None], pa.Table], lands_in: Callable[[DataFile], bool]) -> int:
    """``modes.rewrite_without`` for an upsert table: ``files`` (in lower-bound order) read a
    group at a time, the survivors of the files that lose rows written in the background,
    sorted and cut by key range, each time with the new rows whose place is known by then
    (``settled``: keys below the next file's lower bound, whose fate no later file can
    change), so that new keys land in the files of their range. A file that loses no row is
    rewritten too when a new key falls in its range (``lands_in``): files keep disjoint
    ranges, and the next batch reads only the files of its keys. Returns the rows dropped."""
    import pyarrow as pa

    dropped = 0
    held: list[pa.Table] = []
    held_bytes = 0
    grouped = list(groups(files))
    key = writer.keys[0]
    metadata = txn.table_metadata

    def cuts() -> list[Any]:
        """The lower bounds of the live files that stay (so far)."""
        gone = {f.file_path for f in changes.deleted}
        read = bounds_reader(metadata, key)
        out = []
        for f in live.data:
            rng = None if f.file_path in gone else read(f)
            if rng is not None:
                out.append(rng[0])
        try:
            return sorted(out)
        except TypeError:
            return []

    for i, group in enumerate(grouped):
        tables = read_files(txn, io, live, group)
        n, kept = survivors(group, tables, drop(tables), changes, also=lands_in)
        del tables
        dropped, held, held_bytes = dropped + n, held + kept, held_bytes + sum(t.nbytes for t in kept)
        if held_bytes >= REWRITE_GROUP_BYTES and i + 1 < len(grouped):
            writer.submit(pa.concat_tables([*held, settled(grouped[i + 1][0])]), cuts())
            held, held_bytes = [], 0
    writer.submit(pa.concat_tables([*held, settled(None)]), cuts())
    return dropped
