"""A snapshot producer that removes data files *and* delete files, reading each parent
manifest once.

PyIceberg 0.12's ``_OverwriteFiles`` removes data files only: a delete file given to
``delete_data_file`` fails its required-deletes check (it looks for DATA entries), and a
manifest it rewrites is always written as a DATA manifest, so a delete manifest rewritten
by it would turn its delete files into data files. ``FileChanges`` writes every manifest
with the content it had, records removed delete files as DELETED entries of a delete
manifest, and keeps manifests that lose nothing as they are (``merge``: their entries are
rewritten into merged manifests too, the compaction's manifest rewrite).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile, ManifestContent, ManifestEntry, ManifestFile, ManifestWriter
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.table import Transaction
    from pyiceberg.table.update.snapshot import UpdateSnapshot, _OverwriteFiles

MANIFEST_ENTRIES = 20_000  # entries per rewritten manifest (~10-20 MB of Avro with column stats)
# A replace table's manifests hold this many entries at most: replacing one object rewrites
# the manifest that lists its file, so that work stays the same whatever the table's size.
REPLACE_MANIFEST_ENTRIES = 64


def file_changes(txn: Transaction, io: FileIO, operation: Any, props: dict[str, str], *, merge: bool = False,
                 entries: dict[str, list[ManifestEntry]] | None = None,
                 base: type[Any] | None = None, per_manifest: int = MANIFEST_ENTRIES,
                 clean: set[str] | None = None) -> _OverwriteFiles:
    """A producer of one snapshot of ``operation`` (see the module docstring).

    ``entries``: manifests already read, by path (manifests never change). ``base``: the
    producer class to extend (default PyIceberg's ``_OverwriteFiles``). ``per_manifest``:
    entries per manifest this snapshot writes (added files, and the survivors of a manifest
    that loses files). ``clean``: manifests known to list none of the removed files (their
    header's object range, ``core.write.object_ranges``): kept without being read. Every
    data manifest this producer writes for a table with an object column carries its range.
    """
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.manifest import (
        DataFileContent,
        ManifestContent,
        ManifestEntry,
        ManifestEntryStatus,
        ManifestWriterV2,
    )
    from pyiceberg.table.update.snapshot import _OverwriteFiles
    from pyiceberg.utils.concurrent import ExecutorFactory

    from .object_ranges import label, merge_labelled, object_bounds

    cache = {} if entries is None else entries
    known_clean = clean or set()
    bounds = object_bounds(txn.table_metadata)

    class _DeleteManifestWriter(ManifestWriterV2):
        def content(self) -> ManifestContent:
            return ManifestContent.DELETES

        @property
        def _meta(self) -> dict[str, str]:
            return {**super()._meta, "content": "deletes"}

    class FileChanges(base or _OverwriteFiles):  # type: ignore[misc]
        _survivors: dict[tuple[int, ManifestContent], list[ManifestEntry]]
        _kept: list[ManifestFile]

        def _writer(self, spec: PartitionSpec, content: ManifestContent) -> ManifestWriter:
            if content == ManifestContent.DATA:
                return self.new_manifest_writer(spec)
            # Delete files exist from format version 2 on (v3 tables are refused before this).
            return _DeleteManifestWriter(spec, self.schema(), self.new_manifest_output(), self._snapshot_id,
                                         self._compression)

        def _deleted_entries(self) -> list[ManifestEntry]:
            self._survivors, self._kept = defaultdict(list), []
            meta = self._transaction.table_metadata
            parent = meta.snapshot_by_id(self._parent_snapshot_id) if self._parent_snapshot_id is not None else None
            manifests = parent.manifests(self._io) if parent else []
            if not self._deleted_data_files and not merge:  # nothing removed: every manifest stays
                self._kept = list(manifests)
                return []
            if not merge:  # a merge reads every manifest; otherwise a clean one stays as it is
                self._kept = [m for m in manifests if m.manifest_path in known_clean]
                manifests = [m for m in manifests if m.manifest_path not in known_clean]
            todo = [m for m in manifests if m.manifest_path not in cache]
            fetched = ExecutorFactory.get_or_create().map(
                lambda m: m.fetch_manifest_entry(self._io, discard_deleted=True), todo)
            for m, rows in zip(todo, fetched, strict=True):
                cache[m.manifest_path] = rows
            wanted = {f.file_path for f in self._deleted_data_files}
            found: set[str] = set()
            deleted: list[ManifestEntry] = []
            for m in manifests:
                rows = cache[m.manifest_path]
                hit = any(e.data_file.file_path in wanted for e in rows)
                if not hit and not (merge and m.content == ManifestContent.DATA):
                    self._kept.append(m)
                    continue
                for e in rows:
                    if e.data_file.file_path in wanted:
                        found.add(e.data_file.file_path)
                        deleted.append(ManifestEntry.from_args(
                            status=ManifestEntryStatus.DELETED, snapshot_id=self._snapshot_id,
                            sequence_number=e.sequence_number, file_sequence_number=e.file_sequence_number,
                            data_file=e.data_file))
                    else:
                        self._survivors[(m.partition_spec_id, m.content)].append(e)
            missing = wanted - found
            if missing:
                raise ValidationException(f"Missing required files to delete: {', '.join(sorted(missing)[:5])}")
            return deleted

        def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
            if bounds is None or not hasattr(self, "_min_count_to_merge"):  # not a merge-append
                return super()._process_manifests(manifests)
            return merge_labelled(self, manifests, bounds)

        @staticmethod
        def _labelled(writer: ManifestWriter, content: ManifestContent, files: list[DataFile]) -> ManifestWriter:
            return label(writer, files, bounds) if content == ManifestContent.DATA else writer

        def _existing_manifests(self) -> list[ManifestFile]:
            out = list(self._kept)
            for (spec_id, content), rows in self._survivors.items():
                for i in range(0, len(rows), per_manifest):
                    part = rows[i:i + per_manifest]
                    with self._labelled(self._writer(self.spec(spec_id), content), content,
                                        [e.data_file for e in part]) as writer:
                        for e in part:
                            writer.existing(e)
                    out.append(writer.to_manifest_file())
            return out

        def _manifests(self) -> list[ManifestFile]:
            deleted = self._deleted_entries()  # first: a validation failure leaves no manifest behind
            out: list[ManifestFile] = []
            added = [f for f in self._added_data_files if f.content == DataFileContent.DATA]
            for i in range(0, len(added), per_manifest):
                with label(self.new_manifest_writer(self._transaction.table_metadata.spec()),
                           added[i:i + per_manifest], bounds) as writer:
                    for f in added[i:i + per_manifest]:
                        writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED,
                                                           snapshot_id=self._snapshot_id, sequence_number=None,
                                                           file_sequence_number=None, data_file=f))
                out.append(writer.to_manifest_file())
            # Position delete files (merge-on-read upserts) go into delete manifests, one per
            # spec of the data files they name.
            by_spec: dict[int, list[DataFile]] = defaultdict(list)
            for f in self._added_data_files:
                if f.content != DataFileContent.DATA:
                    by_spec[f.spec_id].append(f)
            for spec_id, files in by_spec.items():
                for i in range(0, len(files), per_manifest):
                    with self._writer(self.spec(spec_id), ManifestContent.DELETES) as writer:
                        for f in files[i:i + per_manifest]:
                            writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED,
                                                               snapshot_id=self._snapshot_id, sequence_number=None,
                                                               file_sequence_number=None, data_file=f))
                    out.append(writer.to_manifest_file())
            groups: dict[tuple[int, ManifestContent], list[ManifestEntry]] = defaultdict(list)
            for e in deleted:
                content = (ManifestContent.DATA if e.data_file.content == DataFileContent.DATA
                           else ManifestContent.DELETES)
                groups[(e.data_file.spec_id, content)].append(e)
            for (spec_id, content), rows in groups.items():
                with self._writer(self.spec(spec_id), content) as writer:
                    for e in rows:
                        writer.add_entry(e)
                out.append(writer.to_manifest_file())
            return self._process_manifests(out + self._existing_manifests())

    return FileChanges(operation=operation, transaction=txn, io=io, snapshot_properties=props)


def overwrite(update: UpdateSnapshot, entries: dict[str, list[ManifestEntry]] | None = None) -> _OverwriteFiles:
    """``update.overwrite()``, able to remove the delete files in ``delete_data_file`` too
    (``entries``: manifests the plan already read, by path)."""
    from pyiceberg.table.snapshots import Operation

    txn = update._transaction
    operation = (Operation.OVERWRITE if txn.table_metadata.snapshot_by_name(name=update._branch) is not None
                 else Operation.APPEND)
    return file_changes(txn, update._io, operation, update._snapshot_properties, entries=entries)


def object_files(update: UpdateSnapshot, entries: dict[str, list[ManifestEntry]], *,
                 removes: bool, clean: set[str] | None = None) -> _OverwriteFiles:
    """The producer of a ``replace`` table's snapshots (with files removed or not): manifests
    of at most ``REPLACE_MANIFEST_ENTRIES`` entries, merged as a merge-append merges them
    (``commit.manifest-merge.*``, up to the table's manifest target size, which replace tables
    keep small). Replacing one object then rewrites one small manifest, however many files
    the table has."""
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _MergeAppendFiles

    txn = update._transaction
    has_parent = txn.table_metadata.snapshot_by_name(name=update._branch) is not None
    operation = Operation.OVERWRITE if removes and has_parent else Operation.APPEND
    return file_changes(txn, update._io, operation, update._snapshot_properties, entries=entries,
                        base=_MergeAppendFiles, per_manifest=REPLACE_MANIFEST_ENTRIES, clean=clean)
