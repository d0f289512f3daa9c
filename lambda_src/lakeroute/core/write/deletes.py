"""Other writers' delete files: which apply to which data file, reading with them, and which
a snapshot must drop.

Another engine (Spark merge-on-read, Flink) may have deleted rows of a table lakeroute writes
to with delete files instead of rewriting data files, and so do lakeroute's own merge-on-read
upserts (``core.write.merge_on_read``, position deletes only). Every rewrite lakeroute does
(upsert, replace, compaction) reads data files and writes their
survivors: a data file must then be read *with* the delete files that apply to it (PyIceberg's
``ArrowScan`` applies only those its ``FileScanTask`` carries), or deleted rows come back.
When the snapshot removes a data file, the delete files that applied only to removed files
are removed with it, or they would dangle.

Which delete file applies to which data file is PyIceberg's own rule (``DeleteFileIndex``, as
its ``plan_files`` uses it): a position delete file applies to the data files of its partition
(or the one file its ``file_path`` bounds name) whose data sequence number is not greater than
its own. Equality deletes apply to older data files of their partition (every partition when
their spec is unpartitioned); PyIceberg 0.12 cannot apply them, so a rewrite of a data file
they apply to is refused (``core.shape.features`` refuses such tables for upsert and replace
before anything is staged).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..shape.features import equality_message

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile, ManifestEntry
    from pyiceberg.table import FileScanTask
    from pyiceberg.table.delete_file_index import DeleteFileIndex
    from pyiceberg.table.metadata import TableMetadata


@dataclass
class LiveFiles:
    """The current snapshot's data files and the delete files that apply to them."""

    data: list[DataFile] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)  # data file path -> data sequence number
    positional: list[tuple[DataFile, int]] = field(default_factory=list)  # (delete file, sequence number)
    equality: list[tuple[DataFile, int]] = field(default_factory=list)
    _index: DeleteFileIndex | None = None

    def add(self, entry: ManifestEntry) -> None:
        """One live manifest entry (of any content) of the snapshot."""
        from pyiceberg.manifest import INITIAL_SEQUENCE_NUMBER, DataFileContent
        from pyiceberg.table.delete_file_index import DeleteFileIndex

        f, seq = entry.data_file, entry.sequence_number or INITIAL_SEQUENCE_NUMBER
        if f.content == DataFileContent.DATA:
            self.data.append(f)
            self.seq[f.file_path] = seq
        elif f.content == DataFileContent.POSITION_DELETES:
            self.positional.append((f, seq))
            if self._index is None:
                self._index = DeleteFileIndex()
            self._index.add_delete_file(entry, partition_key=f.partition)
        else:
            self.equality.append((f, seq))

    @property
    def has_deletes(self) -> bool:
        return bool(self.positional or self.equality)

    def deletes_for(self, data_file: DataFile) -> set[DataFile]:
        """The position delete files that apply to ``data_file`` (PyIceberg's index)."""
        if self._index is None:
            return set()
        return self._index.for_data_file(self.seq[data_file.file_path], data_file,
                                         partition_key=data_file.partition)

    def equality_for(self, data_file: DataFile) -> list[DataFile]:
        seq = self.seq[data_file.file_path]
        return [d for d, s in self.equality if seq < s and _same_scope(d, data_file)]

    def tasks(self, files: list[DataFile], table: str) -> list[FileScanTask]:
        """Scan tasks that read each file with its position deletes applied.

        A file that equality deletes apply to cannot be read correctly by PyIceberg 0.12: a
        ConfigError for the table (a retry would fail the same way).
        """
        from pyiceberg.table import FileScanTask

        out = []
        for f in files:
            if self.equality and self.equality_for(f):
                raise ConfigError(equality_message(table, len(self.equality)))
            out.append(FileScanTask(f, delete_files=self.deletes_for(f)))
        return out

    def dangling(self, removed: list[DataFile]) -> list[DataFile]:
        """The live delete files that apply to no data file left once ``removed`` is gone.

        Files a snapshot adds have a newer sequence number than every live delete file, so no
        delete file applies to them. A delete file that applied to nothing already (another
        engine left it) is dropped too: it can never apply again.

        None while the table has equality delete files: removing a delete file rewrites its
        delete manifest, and PyIceberg 0.12 writes ``equality_ids`` as list<long> where the
        spec (and Java's reader: ClassCastException) wants list<int>, so a manifest holding an
        equality delete file is never rewritten. The delete files left apply to no newer file.
        """
        if not self.has_deletes or not removed or self.equality:
            return []
        gone = {f.file_path for f in removed}
        left = [f for f in self.data if f.file_path not in gone]
        still: set[str] = set()
        for f in left:
            still.update(d.file_path for d in self.deletes_for(f))
        return [d for d, _ in self.positional if d.file_path not in still]


def live_files(metadata: TableMetadata, io: FileIO,
               cache: dict[str, list[ManifestEntry]] | None = None, skip: set[str] | None = None) -> LiveFiles:
    """The current snapshot's data files and delete files (manifests read in parallel).

    ``cache``: manifest entries by manifest path, filled here (manifests never change): the
    snapshot that removes files then reads no manifest a second time. ``skip``: manifests not
    read, known to list no file the caller looks for (``core.write.object_ranges``).
    """
    from pyiceberg.utils.concurrent import ExecutorFactory

    live = LiveFiles()
    snapshot = metadata.current_snapshot()
    if snapshot is None:
        return live
    known = {} if cache is None else cache

    def entries(manifest: Any) -> list[ManifestEntry]:
        rows = known.get(manifest.manifest_path)
        if rows is None:
            rows = known[manifest.manifest_path] = manifest.fetch_manifest_entry(io, discard_deleted=True)
        return rows

    wanted = [m for m in snapshot.manifests(io) if not skip or m.manifest_path not in skip]
    for e in itertools.chain.from_iterable(ExecutorFactory.get_or_create().map(entries, wanted)):
        live.add(e)
    return live


def read_tables(metadata: TableMetadata, io: FileIO, tasks: list[FileScanTask], threads: int) -> list[pa.Table]:
    """Each task's rows under the current schema (ids mapped, new columns null, its deletes
    applied), as the table's Arrow schema: files of other writers read as ``string`` where
    PyIceberg's own read as ``large_string``, with other nullability or field order.

    Our own pool: ArrowScan itself waits on PyIceberg's shared executor, so reading files on
    that executor too would deadlock once the files outnumber its threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

    schema = metadata.schema()
    target = schema_to_pyarrow(schema, include_field_ids=False)
    scan = ArrowScan(metadata, io, schema, AlwaysTrue())
    with ThreadPoolExecutor(threads, thread_name_prefix="lakeroute-rewrite") as pool:
        return list(pool.map(lambda t: scan.to_table([t]).select(target.names).cast(target), tasks))


def _global(delete_file: DataFile) -> bool:
    """An equality delete file of an unpartitioned spec applies to every partition."""
    return len(delete_file.partition) == 0


def _same_scope(delete_file: DataFile, data_file: DataFile) -> bool:
    return _global(delete_file) or (delete_file.spec_id == data_file.spec_id
                                    and _key(delete_file.partition) == _key(data_file.partition))


def _key(partition: Any) -> tuple[Any, ...]:
    return tuple(partition[i] for i in range(len(partition))) if partition is not None else ()
