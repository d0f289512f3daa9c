"""Compaction: bin-pack each partition's small data files into target-sized ones, in one
``replace`` snapshot (rows unchanged), with the manifests rewritten in the same commit.

PyIceberg 0.12 has no rewrite-files action, so this builds one from its parts: the files are
read with pyarrow (files written with the current schema's field ids) or PyIceberg's
``ArrowScan`` (any other: columns resolved by field id, as a table scan does), written as one
file per bin through PyIceberg's ``write_file`` under the table's own properties (codec,
``write.metadata.metrics.*``: per-file bounds stay as exact as ingest wrote them), and
committed by ``core.replace_files``: a REPLACE snapshot (data files deleted and added, no row
changes) whose manifests are rewritten in the same commit.

Conflicts: the commit requires the branch head it was planned on. A concurrent ingest commit
makes it fail; the rewritten files stay valid (appends remove nothing), so the next attempt
only re-commits them on the fresh table, with backoff. Should a file it replaces be gone (a
concurrent replace/overwrite), the attempt's files are deleted and the table re-planned.
After the last attempt compaction yields: its files are deleted, the writers keep going, the
report says so. Only the default partition spec's data files are compacted.

Tables shared with other engines: a data file is read with the position delete files that
apply to it (``core.write.deletes``), so rows another engine deleted stay deleted, and the
delete files that applied only to rewritten files leave in the same snapshot. A table with
equality delete files (PyIceberg cannot apply them) or that lakeroute cannot write
(``core.shape.features``: format version 3, ...) is left alone, and the report says why.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..shape.features import equality_message, unsupported
from ..write.bounds import safe_metrics
from ..write.deletes import LiveFiles
from ..write.staging import delete_files
from .clustering import cut, range_bins, sort_columns
from .replace_files import MANIFEST_TARGET_DEFAULT, commit_replace

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile, ManifestEntry
    from pyiceberg.table import Table

log = logging.getLogger("lakeroute.maintenance")

SMALL_FRACTION = 0.75  # a file under 75% of the target is "small" (Iceberg's min-file-size default)
MANIFESTS_TO_MERGE = 10  # small manifests that make a manifest rewrite worth a commit on its own
IN_FLIGHT_BYTES = 256 * 1024 * 1024  # Parquet bytes being rewritten at once (memory bound)
# Parquet bytes one run rewrites at most (~3-7 min at the 10-25 MB/s a function reaches): a
# run always finishes within a Lambda's 15 minutes; what is left is the next run's.
MAX_REWRITE_BYTES = 4 * 1024**3


@dataclass
class Bin:
    """Data files of one partition rewritten into one file."""

    partition: str
    files: list[DataFile]
    sort: list[str] = field(default_factory=list)  # a sorted table's: rows sorted, cut by range
    target: int = 0  # Parquet bytes per output file of a sorted bin

    @property
    def outputs(self) -> int:
        return max(1, -(-self.bytes // self.target)) if self.sort and self.target else 1

    @property
    def bytes(self) -> int:
        return sum(int(f.file_size_in_bytes) for f in self.files)

    @property
    def rows(self) -> int:
        return sum(int(f.record_count) for f in self.files)


@dataclass
class CompactionPlan:
    base: int | None  # the snapshot planned on
    files: int = 0
    bytes: int = 0
    partitions: int = 0
    manifests: int = 0
    small_manifests: int = 0
    bins: list[Bin] = field(default_factory=list)
    deferred: int = 0  # bins left for a later run (MAX_REWRITE_BYTES)
    skipped: str = ""  # why the table is left alone
    entries: dict[str, list[ManifestEntry]] = field(default_factory=dict, repr=False)  # read once
    live: LiveFiles = field(default_factory=LiveFiles, repr=False)  # data files and other writers' deletes

    @property
    def rewritten(self) -> int:
        return sum(len(b.files) for b in self.bins)

    @property
    def files_after(self) -> int:
        return self.files - self.rewritten + sum(b.outputs for b in self.bins)

    @property
    def rewrite_manifests(self) -> bool:
        return not self.skipped and (bool(self.bins) or self.small_manifests >= MANIFESTS_TO_MERGE)


@dataclass
class CompactionResult:
    plan: CompactionPlan
    snapshot_id: int | None = None
    attempts: int = 0
    retries: int = 0
    yielded: str = ""  # why it gave way to concurrent commits (nothing committed)
    files_after: int | None = None
    manifests_after: int | None = None
    bytes_written: int = 0
    seconds: float = 0.0


def pack(files: list[DataFile], target: int) -> list[list[DataFile]]:
    """First-fit decreasing into bins of at most ``target`` bytes; single-file bins dropped
    (rewriting one file alone gains nothing)."""
    bins: list[tuple[int, list[DataFile]]] = []
    for f in sorted(files, key=lambda f: int(f.file_size_in_bytes), reverse=True):
        size = int(f.file_size_in_bytes)
        for i, (used, members) in enumerate(bins):
            if used + size <= target:
                members.append(f)
                bins[i] = (used + size, members)
                break
        else:
            bins.append((size, [f]))
    return [members for _, members in bins if len(members) > 1]


def plan_compaction(table: Table, target_bytes: int, max_bytes: int = MAX_REWRITE_BYTES) -> CompactionPlan:
    from pyiceberg.manifest import ManifestContent

    meta = table.metadata
    snap = table.current_snapshot()
    plan = CompactionPlan(base=snap.snapshot_id if snap else None)
    if snap is None:
        return plan
    name = ".".join(table.name())
    why = unsupported(name, meta, table.io, "compaction")
    if why is not None:
        plan.skipped = why
        return plan
    manifest_target = int(meta.properties.get("commit.manifest.target-size-bytes", MANIFEST_TARGET_DEFAULT))
    groups: dict[tuple[int, str], list[DataFile]] = defaultdict(list)
    for m in snap.manifests(table.io):
        plan.manifests += 1
        live = m.has_added_files() or m.has_existing_files()  # not only DELETED entries
        if live and int(m.manifest_length) < manifest_target:
            plan.small_manifests += 1
        rows = plan.entries[m.manifest_path] = m.fetch_manifest_entry(table.io, discard_deleted=True)
        for entry in rows:
            plan.live.add(entry)
            if m.content != ManifestContent.DATA:
                continue
            df = entry.data_file
            plan.files += 1
            plan.bytes += int(df.file_size_in_bytes)
            groups[(int(df.spec_id), repr(df.partition))].append(df)
    plan.partitions = len(groups)
    if plan.live.equality:
        plan.skipped = equality_message(name, len(plan.live.equality), "compact it")
        return plan
    small_limit = int(target_bytes * SMALL_FRACTION)
    keys = sort_columns(meta)
    for (spec_id, partition), files in groups.items():
        if spec_id != meta.default_spec_id:
            continue  # older specs' files stay as they are (rewriting would re-partition them)
        ranged = (range_bins(meta, files, keys[0], target_bytes, small_limit,
                             lambda f: bool(plan.live.deletes_for(f))) if keys else None)
        if ranged is not None:  # a sorted (upsert) table: files of disjoint key ranges
            plan.bins += [Bin(partition, members, keys, target_bytes) for members in ranged]
            continue
        small = [f for f in files if int(f.file_size_in_bytes) < small_limit]
        plan.bins += [Bin(partition, members) for members in pack(small, target_bytes)]
    # Most files removed per byte rewritten first, up to the run's budget.
    plan.bins.sort(key=lambda b: len(b.files) / max(1, b.bytes), reverse=True)
    total = 0
    for i, b in enumerate(plan.bins):
        total += b.bytes
        if total > max_bytes and i > 0:
            plan.deferred = len(plan.bins) - i
            plan.bins = plan.bins[:i]
            break
    return plan


def rewrite(table: Table, bins: list[Bin], live: LiveFiles) -> list[list[DataFile]]:
    """Each bin's rows read and written as one new data file (per bin: the new files)."""
    workers = max(1, min(4, IN_FLIGHT_BYTES // max(1, max((b.bytes for b in bins), default=1))))
    with ThreadPoolExecutor(workers, thread_name_prefix="lakeroute-compact") as pool:
        return list(pool.map(lambda b: _rewrite_bin(table, b, live), bins))


def _rewrite_bin(table: Table, b: Bin, live: LiveFiles) -> list[DataFile]:
    """The bin's rows written as one data file of its partition.

    One ``WriteTask`` straight to PyIceberg's ``write_file`` (what ``_dataframe_to_data_files``
    ends in): the bin's partition is known, so the rows are not split by partition again, and
    the bin is already sized to the target in Parquet bytes (``write.target-file-size-bytes``
    would count Arrow bytes, several times more). Stats, codec and metrics modes come from the
    table's properties as for any PyIceberg write.
    """
    from pyiceberg.io.pyarrow import write_file
    from pyiceberg.partitioning import PartitionKey
    from pyiceberg.table import WriteTask

    meta = table.metadata
    rows = _read(table, b.files, live)
    key = None
    if not meta.spec().is_unpartitioned():
        key = PartitionKey(field_values=[], partition_spec=meta.spec(), schema=meta.schema())
        key.__dict__["partition"] = b.files[0].partition  # the bin's partition (a cached_property)
    pieces = cut(rows, b.sort, b.bytes, b.target) if b.sort else [rows]
    write_uuid = uuid.uuid4()
    tasks = [WriteTask(write_uuid=write_uuid, task_id=i, schema=meta.schema(),
                       record_batches=piece.to_batches(), partition_key=key) for i, piece in enumerate(pieces)]
    return list(write_file(io=table.io, table_metadata=safe_metrics(meta, rows), tasks=iter(tasks)))


def _read(table: Table, files: list[DataFile], live: LiveFiles) -> pa.Table:
    """The files' rows under the current schema.

    A file whose columns carry the current schema's field ids, names and types (what ingest
    writes between schema changes) and that no delete file applies to is read with pyarrow
    directly and its missing columns filled with nulls; any other file (renamed or re-typed
    columns, no field ids, another writer's strings, deleted rows) goes through PyIceberg's
    ``ArrowScan``, which resolves columns by field id and applies the file's position deletes.
    Both give what a scan of the table gives.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    meta = table.metadata
    schema = meta.schema()
    target = schema.as_arrow()
    by_id = {f.field_id: f.name for f in schema.fields}
    parts: list[pa.Table] = []
    slow: list[DataFile] = []
    for f in files:
        if live.deletes_for(f):
            slow.append(f)
            continue
        with _open(table.io, f.file_path) as stream:
            got = pq.ParquetFile(stream).read()  # lighter per file than pq.read_table (datasets)
        if not _same_columns(got.schema, target, by_id):
            slow.append(f)
            continue
        arrays = [got.column(field.name) if field.name in got.schema.names
                  else pa.nulls(got.num_rows, field.type) for field in target]
        parts.append(pa.Table.from_arrays(arrays, schema=target))
    if slow:
        parts.append(ArrowScan(meta, table.io, schema, AlwaysTrue()).to_table(
            live.tasks(slow, ".".join(table.name()))).select(target.names).cast(target))
    return pa.concat_tables(parts)


def _open(io: Any, path: str) -> Any:
    """A random-access file: straight from PyArrow's file system when the FileIO is PyArrow's
    (one lookup of the cached file system per file), else through the FileIO."""
    fs_by_scheme, parse = getattr(io, "fs_by_scheme", None), getattr(type(io), "parse_location", None)
    if fs_by_scheme is not None and parse is not None:
        scheme, netloc, inner = parse(path)
        return fs_by_scheme(scheme, netloc).open_input_file(inner)
    return io.new_input(path).open()


def _same_columns(got: pa.Schema, target: pa.Schema, by_id: dict[int, str]) -> bool:
    for column in got:
        raw = (column.metadata or {}).get(b"PARQUET:field_id")
        if raw is None or by_id.get(int(raw)) != column.name:
            return False
        if not column.type.equals(target.field(column.name).type):
            return False
    return True


def compact(catalog: Catalog, name: str, target_bytes: int, *, apply: bool, attempts: int = 6,
            base_delay: float = 0.2, max_delay: float = 5.0,
            sleep: Callable[[float], None] = time.sleep) -> CompactionResult:
    """Plan (and with ``apply`` commit) the compaction of one table; see the module docstring."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    start = time.monotonic()
    table = catalog.load_table(name)
    plan = plan_compaction(table, target_bytes)
    result = CompactionResult(plan)
    if not apply or not plan.rewrite_manifests:
        result.seconds = time.monotonic() - start
        return result
    written = rewrite(table, plan.bins, plan.live)
    adds = [f for files in written for f in files]
    deletes = _removed(plan)
    result.bytes_written = sum(int(f.file_size_in_bytes) for f in adds)
    props = {"lakeroute.maintenance": "compaction", "lakeroute.rewritten-files": str(plan.rewritten)}
    if len(deletes) > plan.rewritten:
        props["lakeroute.removed-delete-files"] = str(len(deletes) - plan.rewritten)
    while True:
        result.attempts += 1
        try:
            new = commit_replace(table, deletes, adds, props, plan.entries)
        except CommitFailedException as e:
            error: Exception = e
        except ValidationException as e:  # a file it replaces is gone: re-plan from scratch
            _discard(table, adds)
            error = e
            if result.attempts < attempts:
                table = catalog.load_table(name)
                plan = result.plan = plan_compaction(table, target_bytes)
                written = rewrite(table, plan.bins, plan.live)
                adds = [f for files in written for f in files]
                deletes = _removed(plan)
                result.bytes_written += sum(int(f.file_size_in_bytes) for f in adds)
                result.retries += 1
                continue
        else:
            result.snapshot_id = new.metadata.current_snapshot_id
            snap = new.current_snapshot()
            # As planned (concurrent appends since the plan are not counted).
            result.files_after = plan.files_after
            result.manifests_after = len(snap.manifests(new.io)) if snap else 0
            break
        if result.attempts >= attempts:
            _discard(table, adds)
            result.yielded = (f"gave way to concurrent commits after {result.attempts} attempts "
                              f"({type(error).__name__}); nothing changed, run it again later")
            log.warning("compaction of %s: %s", name, result.yielded)
            break
        result.retries += 1
        delay = random.uniform(0, min(max_delay, base_delay * 2 ** (result.attempts - 1)))
        log.info("compaction of %s conflicted (attempt %d): %s; retrying in %.2fs",
                 name, result.attempts, type(error).__name__, delay)
        sleep(delay)
        table = catalog.load_table(name)
    result.seconds = time.monotonic() - start
    return result


def _removed(plan: CompactionPlan) -> list[DataFile]:
    """The bins' data files, and the delete files that applied only to them (now applied)."""
    files = [f for b in plan.bins for f in b.files]
    return files + plan.live.dangling(files)


def _discard(table: Table, files: list[DataFile]) -> None:
    delete_files(table.io, [f.file_path for f in files])
