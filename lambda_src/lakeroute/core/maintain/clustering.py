"""Compaction of a sorted table (an upsert table: its sort order is its key) into files of
disjoint key ranges.

Bin-packing small files keeps each file's rows but not their order: a bin of files that each
span the whole key range is one more file spanning it, and an upsert must read it for any
key. For a table whose default sort order names its columns (``core.write.cluster`` sets the
key's on every upsert), the files of a partition are taken in the order of their lower bound
of the first sort column; files whose ranges overlap are rewritten together (sorted and cut
into target-sized files of contiguous ranges), and neighbouring small files are merged with
them up to the target. What is left is files of disjoint ranges, where an upsert of a
narrow range of keys reads only the files that hold it.

Memory: a run of overlapping files is rewritten at once; a run of more than
``CLUSTER_RUN_BYTES`` of Parquet is left to bin-packing (a table every file of which spans
the whole key range needs one upsert of its whole range, which writes it clustered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..write.modes import bounds_reader

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.table.metadata import TableMetadata

CLUSTER_RUN_BYTES = 256 * 1024 * 1024  # Parquet bytes of overlapping files rewritten together at most


def sort_columns(metadata: TableMetadata) -> list[str]:
    """The columns of the table's default sort order (identity, ascending), or []."""
    from pyiceberg.table.sorting import SortDirection
    from pyiceberg.transforms import IdentityTransform

    order = metadata.sort_order()
    schema = metadata.schema()
    names = []
    for f in order.fields:
        if f.direction != SortDirection.ASC or not isinstance(f.transform, IdentityTransform):
            return []
        names.append(schema.find_column_name(f.source_id))
    return [n for n in names if n is not None]


def range_bins(metadata: TableMetadata, files: list[DataFile], key: str, target: int,
               small_limit: int, deleted: Callable[[DataFile], bool] = lambda f: False) -> list[list[DataFile]] | None:
    """One partition's files in bins whose rewrite leaves disjoint ranges of ``key``; None
    when a file has no bounds of it (then bin-packing applies). A file that position deletes
    apply to (``deleted``: merge-on-read upserts) is rewritten even alone: the rewrite folds
    its deletes in, and its delete files leave."""
    ranged: list[tuple[Any, Any, DataFile]] = []
    read = bounds_reader(metadata, key)
    for f in files:
        rng = read(f)
        if rng is None:
            return None
        ranged.append((rng[0], rng[1], f))
    try:
        ranged.sort(key=lambda r: r[0])
    except TypeError:
        return None
    runs: list[list[DataFile]] = []  # runs of files whose ranges overlap, in key order
    hi: Any = None
    for lo, up, f in ranged:
        if runs and hi is not None and lo <= hi:
            runs[-1].append(f)
            hi = max(hi, up)
        else:
            runs.append([f])
            hi = up
    bins: list[list[DataFile]] = []
    current: list[DataFile] = []

    def size(fs: list[DataFile]) -> int:
        return sum(int(f.file_size_in_bytes) for f in fs)

    def flush() -> None:
        nonlocal current
        # overlapping files, several small ones, or deletes to fold in: worth a rewrite
        if len(current) > 1 or (current and deleted(current[0])):
            bins.append(current)
        current = []

    for run in runs:
        overlapping = len(run) > 1
        if overlapping and size(run) > CLUSTER_RUN_BYTES:
            return None
        if not overlapping and size(run) >= small_limit and not deleted(run[0]):  # a big file of its own range stays
            flush()
            continue
        if current and size(current) + size(run) > target:
            flush()
        current = current + run
    flush()
    return bins


def cut(rows: pa.Table, keys: list[str], files_bytes: int, target: int) -> list[pa.Table]:
    """``rows`` sorted by ``keys`` and cut into pieces of about ``target`` Parquet bytes (the
    files they came from weighed ``files_bytes``)."""
    from ..write.cluster import sort_rows

    rows = sort_rows(rows, keys).combine_chunks()
    pieces = max(1, -(-files_bytes // max(1, target)))
    size = max(1, -(-rows.num_rows // pieces))
    return [rows.slice(i, size) for i in range(0, rows.num_rows, size)]
