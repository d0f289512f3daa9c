"""Merge-on-read upserts: rows a batch replaces are deleted by position, not rewritten.

A table declares its mode with Iceberg's own table properties, as Spark users already say it:
``write.merge.mode`` or ``write.update.mode`` = ``merge-on-read`` (always) or ``copy-on-write``
(never a delete file). A route sets them with ``target.properties`` (at creation, and on an
existing table by its next upsert, in the same snapshot); a table another engine set them on
follows them too. Neither declared: each commit chooses (``choose_mode``), merge-on-read when
copy-on-write would rewrite far more than the batch, on v2 tables. A merge-on-read upsert

1. reads only the key columns (and ``order_by``) of the files the key bounds leave, with
   each row's position in its file; rows that delete files already remove are not live;
2. joins them with the batch's winners exactly as copy-on-write does (the stale-row rule
   holds: an older change never removes a newer row);
3. writes, per data file that loses rows, one Iceberg v2 position delete file (Parquet,
   ``file_path``/``pos`` with their reserved field ids, sorted by position, its
   ``file_path`` bounds naming that one data file), committed in a delete manifest of the
   same snapshot as the new rows (``core.write.snapshot_files``).

So an upsert's cost follows the batch and the key column, not the table's bytes. Readers
must apply position deletes (PyIceberg, DuckDB ``iceberg_scan``, Spark, Trino, Athena do);
compaction folds them into the data files and drops the delete files it fully applied.

Conflicts need nothing more: the snapshot is built on the table the attempt loaded and the
catalog refuses a stale base, so a concurrent rewrite of a referenced file makes the attempt
plan again on the fresh table; a delete file never lands on a vanished data file.
"""

from __future__ import annotations

import io as bytes_io
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .modes import READ_THREADS, Changes

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from .deletes import LiveFiles

MODE_PROPERTIES = ("write.merge.mode", "write.update.mode")
MERGE_ON_READ = "merge-on-read"
COPY_ON_WRITE = "copy-on-write"
# Auto mode (no declared mode): merge-on-read when copy-on-write would rewrite more than
# AUTO_ROWS_PER_BATCH_ROW table rows per batch row and at least AUTO_MIN_BYTES of Parquet
# (~0.45 s of rewrite here: more than the rest of a commit). Measured by
# benchmarks/upsert_threshold.py (docs/write-modes.md, "Copy-on-write or merge-on-read");
# a table (or the route's target.properties) may set its own with these properties.
AUTO_ROWS_PER_BATCH_ROW = 4.0
AUTO_MIN_BYTES = 16 << 20
RATIO_PROPERTY = "lakeroute.upsert.auto-rows-per-batch-row"
BYTES_PROPERTY = "lakeroute.upsert.auto-min-bytes"
PATH_ID = 2147483546  # reserved field ids of a position delete file (Iceberg spec)
POS_ID = 2147483545
GROUP_ROWS = 8_000_000  # key rows joined at once (a few tens of MB of key columns)


def declared_mode(txn: Transaction, declared: dict[str, str]) -> tuple[str, str] | None:
    """The mode declared for this upsert and by whom (``route`` or ``table``): the route's
    ``target.properties`` first (a route opts an existing table in or out), then the table's
    own; ``merge-on-read`` in either property means merge-on-read, any other value
    copy-on-write. None: neither declares one (``choose_mode`` decides). A mode the route
    declares and the table lacks is set on the table in this transaction, so other engines
    see it."""
    props = txn.table_metadata.properties
    wanted = {p: declared[p] for p in MODE_PROPERTIES if p in declared and props.get(p) != declared[p]}
    if wanted:
        txn.set_properties(wanted)
    for by, source in (("route", declared), ("table", props)):
        said = [source[p].strip().lower() for p in MODE_PROPERTIES if p in source]
        if said:
            return (MERGE_ON_READ if MERGE_ON_READ in said else COPY_ON_WRITE), by
    return None


def choose_mode(metadata: TableMetadata, declared: tuple[str, str] | None, files: list[DataFile],
                batch_rows: int, route_properties: dict[str, str]) -> tuple[str, str]:
    """(mode, why) of one upsert commit. A declared mode wins. Otherwise (auto) merge-on-read
    when copy-on-write would rewrite more than ``AUTO_ROWS_PER_BATCH_ROW`` times the batch's
    rows and at least ``AUTO_MIN_BYTES`` of Parquet (the ``files`` the key bounds leave are
    read whole and written back; the route's or the table's ``RATIO_PROPERTY`` and
    ``BYTES_PROPERTY`` replace the defaults), and only on format-version 2 (v1 has no row-level deletes;
    v3 forbids new position delete files: its deletion vectors are not written by lakeroute).
    The choice is lakeroute's per commit, never set on the table."""
    if declared is not None:
        return declared[0], f"declared by the {declared[1]}"
    version = metadata.format_version
    if version != 2:
        return COPY_ON_WRITE, f"auto: format version {version} (position deletes are v2 only)"
    props = {**metadata.properties, **route_properties}
    ratio_limit = _number(props, RATIO_PROPERTY, AUTO_ROWS_PER_BATCH_ROW)
    bytes_limit = _number(props, BYTES_PROPERTY, AUTO_MIN_BYTES)
    rows = sum(f.record_count for f in files)
    size = sum(f.file_size_in_bytes for f in files)
    ratio = rows / max(batch_rows, 1)
    said = (f"auto: copy-on-write would rewrite {len(files)} file(s), {rows} rows ({ratio:.1f}x the batch's "
            f"{batch_rows}), {size / 2**20:.1f} MiB")
    if ratio > ratio_limit and size >= bytes_limit:
        return MERGE_ON_READ, said
    return COPY_ON_WRITE, said


def _number(props: dict[str, str], name: str, default: float) -> float:
    """A threshold property's value; the default when unset (a value that is not a number is
    refused when the route is validated, ``core.routes.target``; another engine's is ignored)."""
    try:
        return float(props[name])
    except (KeyError, ValueError):
        return default


def read_keys(io: FileIO, metadata: TableMetadata, live: LiveFiles, data_file: DataFile,
              types: dict[str, pa.DataType], cache: dict[str, dict[str, pa.ChunkedArray]]
              ) -> tuple[pa.Table, pa.Array | None]:
    """Every row of ``data_file``: the ``types`` columns (found by field id, as a scan
    resolves them; by name in a file without ids) cast to those types, and the positions the
    delete files that apply to it already remove (None: none). ``cache``: delete files
    already read (by path; a delete file of another engine may name many data files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import _read_deletes

    schema = metadata.schema()
    with io.new_input(data_file.file_path).open() as f:
        pf = pq.ParquetFile(f)
        arrow = pf.schema_arrow
        by_id = {int(fld.metadata[b"PARQUET:field_id"]): fld.name for fld in arrow
                 if fld.metadata and b"PARQUET:field_id" in fld.metadata}
        names = {c: by_id.get(schema.find_field(c).field_id, c) for c in types}
        present = [n for n in names.values() if arrow.get_field_index(n) >= 0]
        got = pf.read(columns=present)
    n = data_file.record_count if got.num_columns == 0 else got.num_rows
    cols = {}
    for c, t in types.items():
        src = names[c]
        cols[c] = got.column(src).cast(t) if got.schema.get_field_index(src) >= 0 else pa.nulls(n, t)
    gone = []
    for d in live.deletes_for(data_file):
        if d.file_path not in cache:
            cache[d.file_path] = _read_deletes(io, d)
        if data_file.file_path in cache[d.file_path]:
            gone.append(cache[d.file_path][data_file.file_path])
    deleted = pa.chunked_array([c for g in gone for c in g.chunks], pa.int64()).combine_chunks() if gone else None
    return pa.table(cols), deleted


def mark_deleted(txn: Transaction, io: FileIO, live: LiveFiles, files: list[DataFile], changes: Changes,
                 drop: Callable[[list[pa.Table]], list[pa.Array]], types: dict[str, pa.DataType],
                 positions: Callable[[int], pa.Array]) -> tuple[int, int]:
    """``files``' rows that ``drop`` removes, deleted by position: one delete file per data
    file that loses rows (added to ``changes``). Returns (rows deleted, delete files)."""
    import pyarrow.compute as pc

    metadata = txn.table_metadata
    cache: dict[str, dict[str, pa.ChunkedArray]] = {}
    write_uuid, count, deleted = uuid.uuid4(), 0, 0
    group: list[DataFile] = []
    rows = 0
    batches: list[list[DataFile]] = []
    for f in files:
        group.append(f)
        rows += f.record_count
        if rows >= GROUP_ROWS:
            batches.append(group)
            group, rows = [], 0
    if group:
        batches.append(group)
    ramp = positions(max((f.record_count for f in files), default=0))
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="lakeroute-mor") as pool:
        for batch in batches:
            read = []
            for keys, gone in pool.map(lambda f: read_keys(io, metadata, live, f, types, cache), batch):
                n = keys.num_rows
                if len(ramp) < n:  # on this thread: the caller's DuckDB connection
                    ramp = positions(n)
                pos = ramp.slice(0, n)  # zero copy: one 0..n-1 for every file
                if gone is not None:  # rows already deleted are not live: they never match
                    alive = pc.invert(pc.is_in(pos, value_set=gone))
                    keys, pos = keys.filter(alive), pos.filter(alive)
                read.append((keys, pos))
            masks = drop([k for k, _ in read])
            todo = [(f, pos.filter(mask)) for f, (_, pos), mask in zip(batch, read, masks, strict=True)
                    if pc.any(mask).as_py()]
            futures = [pool.submit(write_position_deletes, txn, io, f, pos, write_uuid) for f, pos in todo]
            failed: BaseException | None = None
            for fut in futures:  # every file written is the attempt's (deleted if it fails), even after an error
                try:
                    new = fut.result()
                except Exception as e:
                    failed = failed or e
                    continue
                changes.written.append(new)
                changes.added.append(new)
                deleted += new.record_count
                count += 1
            if failed is not None:
                raise failed
    return deleted, count


def write_position_deletes(txn: Transaction, io: FileIO, data_file: DataFile, positions: pa.Array,
                           write_uuid: uuid.UUID) -> DataFile:
    """One position delete file for ``data_file`` (its ``file_path`` bounds name it alone)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyiceberg.conversions import to_bytes
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.types import LongType, StringType

    positions = pc.unique(positions).sort()
    n = len(positions)
    schema = pa.schema([
        pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": str(PATH_ID).encode()}),
        pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": str(POS_ID).encode()}),
    ])
    rows = pa.table([pa.array([data_file.file_path] * n, pa.string()), positions.cast(pa.int64())], schema=schema)
    buf = bytes_io.BytesIO()
    pq.write_table(rows, buf, compression="zstd")
    body = buf.getvalue()
    metadata = txn.table_metadata
    where = load_location_provider(metadata.location, metadata.properties)
    path = where.new_data_location(f"{write_uuid}-deletes-{uuid.uuid4().hex[:12]}.parquet")
    with io.new_output(path).create(overwrite=True) as stream:
        stream.write(body)
    path_bytes = to_bytes(StringType(), data_file.file_path)
    out = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES, file_path=path, file_format=FileFormat.PARQUET,
        partition=data_file.partition, record_count=n, file_size_in_bytes=len(body),
        column_sizes={}, value_counts={PATH_ID: n, POS_ID: n}, null_value_counts={PATH_ID: 0, POS_ID: 0},
        nan_value_counts={},
        lower_bounds={PATH_ID: path_bytes, POS_ID: to_bytes(LongType(), positions[0].as_py())},
        upper_bounds={PATH_ID: path_bytes, POS_ID: to_bytes(LongType(), positions[-1].as_py())},
        key_metadata=None, split_offsets=None, equality_ids=None, sort_order_id=None)
    out.spec_id = data_file.spec_id  # (from_args does not take it): the delete manifest's spec
    return out
