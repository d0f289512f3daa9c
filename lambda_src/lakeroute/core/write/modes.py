"""Write modes beyond append: what one batch's snapshot deletes and adds (copy-on-write).

Every mode is planned on the table as the commit attempt loaded it, inside the attempt: a
concurrent commit makes the catalog reject the snapshot (its base is stale), and the next
attempt plans again on the fresh table. So no mode can lose an update, and no plan is
ever applied to a table it was not computed on.

- ``replace``: each row carries the object that wrote it (``_lakeroute_object``, with exact
  per-file bounds); a new version of a key deletes the files whose bounds name only that
  object (without reading them) and rewrites the few files that hold it among others (after
  compaction), then adds the new version's files.
- ``overwrite``: the staged files already carry their partitions; the live files of those
  partitions (or every live file: ``overwrite: table``) are deleted. Within one batch, per
  partition the last object wins, as if the objects had committed one by one.
- ``upsert``: ``core.upsert``.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..routes import OBJECT_COLUMN, Target
from .attribution import overwrite_counts, props, replace_counts
from .bounds import write_data_files
from .deletes import LiveFiles, live_files, read_tables
from .file_bounds import bounds_reader, may_hold

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile, ManifestEntry
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from .staging import Staged

# Arrow bytes read at once when files must be rewritten (a few data files, not the table).
REWRITE_GROUP_BYTES = 64 * 1024 * 1024
READ_THREADS = 4  # files read at once (I/O bound on S3; Parquet decoding releases the GIL)


@dataclass
class Changes:
    """What one commit attempt deletes and adds."""

    deleted: list[DataFile] = field(default_factory=list)  # live data (and delete) files the snapshot removes
    added: list[DataFile] = field(default_factory=list)  # files the snapshot adds
    written: list[DataFile] = field(default_factory=list)  # written by this attempt (deleted if it fails)
    unused: list[DataFile] = field(default_factory=list)  # staged, superseded within the batch
    stats: dict[str, str] = field(default_factory=dict)  # snapshot summary additions
    planned: bool = False  # complete: the commit may be sent
    rejected: list[tuple[Staged, str]] = field(default_factory=list)  # objects whose rows cannot be written
    # Manifest entries the plan read, by manifest path: the snapshot's file removal reuses them.
    entries: dict[str, list[ManifestEntry]] = field(default_factory=dict)
    # Manifests that list none of the files removed (core.write.object_ranges): kept unread.
    clean: set[str] = field(default_factory=set)


def table_result(target: Target, result: pa.Schema) -> pa.Schema:
    """The result's columns as the table holds them: the operation column is not written; a
    replace table carries the writing object."""
    import pyarrow as pa

    if target.operation is not None and result.get_field_index(target.operation.column) >= 0:
        result = result.remove(result.get_field_index(target.operation.column))
    if target.mode == "replace" and result.get_field_index(OBJECT_COLUMN) < 0:
        result = result.append(pa.field(OBJECT_COLUMN, pa.string()))
    return result


def bounds(metadata: TableMetadata, data_file: DataFile, column: str) -> tuple[Any, Any] | None:
    """A column's (lower, upper) bounds in a data file's metrics, or None when not recorded."""
    return bounds_reader(metadata, column)(data_file)


def write_rows(txn: Transaction, io: FileIO, rows: pa.Table, write_uuid: uuid.UUID,
               counter: itertools.count[int]) -> list[DataFile]:
    if rows.num_rows == 0:
        return []
    # One chunk: PyIceberg's partition split filters the table once per partition, and a
    # table of many chunks (one per file read) makes each filter slow.
    rows = rows.combine_chunks()
    return write_data_files(txn.table_metadata, rows, io, write_uuid, counter)


def read_files(txn: Transaction, io: FileIO, live: LiveFiles, files: list[DataFile]) -> list[pa.Table]:
    """Live data files read under the current schema (ids mapped, new columns null), each with
    the delete files of other writers that apply to it, as the table's Arrow types, in parallel."""
    return read_tables(txn.table_metadata, io, live.tasks(files, qualified_name(txn)), READ_THREADS)


def qualified_name(txn: Transaction) -> str:
    return ".".join(txn._table.name())


def drop_dangling(live: LiveFiles, changes: Changes) -> None:
    """The delete files that applied only to data files this snapshot removes go with them."""
    dangling = live.dangling(changes.deleted)
    if dangling:
        changes.deleted += dangling
        changes.stats["lakeroute.removed-delete-files"] = str(len(dangling))


def groups(files: list[DataFile]) -> Iterable[list[DataFile]]:
    """Files in groups of about REWRITE_GROUP_BYTES of Arrow data (Parquet expands ~3x)."""
    group: list[DataFile] = []
    size = 0
    for f in files:
        group.append(f)
        size += 3 * f.file_size_in_bytes
        if size >= REWRITE_GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def survivors(group: list[DataFile], tables: list[pa.Table], masks: list[pa.Array], changes: Changes,
              also: Callable[[DataFile], bool] = lambda f: False) -> tuple[int, list[pa.Table]]:
    """Each file of ``group`` that loses a row (``masks``: the rows to drop), or that ``also``
    names, is deleted in ``changes``: (rows dropped, the survivors of the deleted files)."""
    import pyarrow.compute as pc

    dropped, kept = 0, []
    for data_file, tbl, mask in zip(group, tables, masks, strict=True):
        n = pc.sum(mask).as_py() or 0
        if n == 0 and not also(data_file):
            continue
        dropped += n
        changes.deleted.append(data_file)
        kept.append(tbl.filter(pc.invert(mask)))
    return dropped, kept


def rewrite_without(txn: Transaction, io: FileIO, live: LiveFiles, files: list[DataFile], changes: Changes,
                    drop: Callable[[list[pa.Table]], list[pa.Array]]) -> tuple[int, pa.Table | None]:
    """Rewrite the files whose rows ``drop`` removes (a boolean mask per file of a group).

    Each file is read with the delete files that apply to it, so rows another engine deleted
    (merge-on-read) stay deleted in the survivors; ``drop_dangling`` then removes the delete
    files that applied only to rewritten files.

    Files that lose no row stay as they are; the survivors of the others are written into
    new files (bin-packed by the table's target size) and the originals deleted. Returns the
    rows dropped and the last survivors, not yet written: the caller writes them with its
    own new rows, so that a partition gets one new file, not two.
    """
    import pyarrow as pa

    write_uuid, counter, dropped = uuid.uuid4(), itertools.count(), 0
    held: list[pa.Table] = []
    held_bytes = 0
    for group in groups(files):
        tables = read_files(txn, io, live, group)
        n, kept = survivors(group, tables, drop(tables), changes)
        del tables
        dropped, held, held_bytes = dropped + n, held + kept, held_bytes + sum(t.nbytes for t in kept)
        if held_bytes >= REWRITE_GROUP_BYTES:
            new = write_rows(txn, io, pa.concat_tables(held), write_uuid, counter)
            changes.written += new
            changes.added += new
            held, held_bytes = [], 0
    return dropped, (pa.concat_tables(held) if held else None)


def last_per_object(todo: list[Staged]) -> tuple[list[Staged], list[Staged]]:
    """(the latest staged version of each object key, the earlier ones it supersedes)."""
    latest: dict[str, Staged] = {}
    for s in sorted(todo, key=lambda s: s.order):
        latest[s.object_name] = s
    keep = {id(s) for s in latest.values()}
    return list(latest.values()), [s for s in todo if id(s) not in keep]


def plan_replace(txn: Transaction, io: FileIO, todo: list[Staged], changes: Changes) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    keep, superseded = last_per_object(todo)
    for s in superseded:
        changes.unused += s.data_files
    names = sorted(s.object_name for s in keep)
    wanted = set(names)
    metadata = txn.table_metadata
    whole: list[DataFile] = []
    partial: list[DataFile] = []
    from .object_ranges import unlisting

    changes.clean = unlisting(metadata, io, names)  # manifests whose header rules the names out
    live = live_files(metadata, io, changes.entries, skip=changes.clean)
    if OBJECT_COLUMN in {f.name for f in metadata.schema().fields}:
        fid = metadata.schema().find_field(OBJECT_COLUMN).field_id
        object_bounds = bounds_reader(metadata, OBJECT_COLUMN)
        for f in live.data:
            rng = object_bounds(f)
            only_nulls = (f.null_value_counts or {}).get(fid, 0) == f.record_count
            if only_nulls or not may_hold(names, rng):
                continue
            # A file other writers deleted rows of holds fewer rows than its bounds say: still whole.
            exact = (rng is not None and rng[0] == rng[1] and rng[0] in wanted
                     and (f.null_value_counts or {}).get(fid, 1) == 0)
            (whole if exact else partial).append(f)
    changes.deleted += whole
    values = pa.array(names, pa.string())
    by_object: dict[str, int] = defaultdict(int)  # rows of each key's previous version, deleted
    for f in whole:
        rng = bounds_reader(metadata, OBJECT_COLUMN)(f)
        if rng is not None:
            by_object[str(rng[0])] += f.record_count

    def drop(tables: list[pa.Table]) -> list[pa.Array]:
        masks = [pc.fill_null(pc.is_in(t.column(OBJECT_COLUMN), value_set=values), False) for t in tables]
        for t, mask in zip(tables, masks, strict=True):
            for item in pc.value_counts(t.column(OBJECT_COLUMN).filter(mask)).to_pylist():
                by_object[str(item["values"])] += int(item["counts"])
        return masks

    dropped, held = rewrite_without(txn, io, live, partial, changes, drop)
    dropped += sum(f.record_count for f in whole)  # (before other writers' deletes, if any)
    if held is not None:
        new = write_rows(txn, io, held, uuid.uuid4(), itertools.count())
        changes.written += new
        changes.added += new
    for s in keep:
        changes.added += s.data_files
    net = replace_counts(sorted(todo, key=lambda s: s.order), by_object)
    changes.stats = {"lakeroute.replaced-rows": str(dropped), **props(net)}
    drop_dangling(live, changes)


def plan_overwrite(txn: Transaction, io: FileIO, todo: list[Staged], changes: Changes, *,
                   whole_table: bool) -> None:
    ordered = sorted(todo, key=lambda s: s.order)
    live = live_files(txn.table_metadata, io, changes.entries)
    if whole_table:
        last = ordered[-1]
        for s in ordered[:-1]:
            changes.unused += s.data_files
        changes.added += last.data_files
        changes.deleted += live.data
    else:
        # Staged files were written with the current spec (their partition is set, their
        # spec id is not until a manifest holds them).
        spec_id = txn.table_metadata.default_spec_id
        owner: dict[Any, Staged] = {}
        for s in ordered:
            for f in s.data_files:
                owner[f.partition] = s
        for s in ordered:
            for f in s.data_files:
                (changes.added if owner[f.partition] is s else changes.unused).append(f)
        changes.deleted += [f for f in live.data if f.spec_id == spec_id and f.partition in owner]
    net = overwrite_counts(ordered, changes.added, changes.deleted, whole_table)
    changes.stats = {"lakeroute.overwritten-files": str(len(changes.deleted)), **props(net)}
    drop_dangling(live, changes)
