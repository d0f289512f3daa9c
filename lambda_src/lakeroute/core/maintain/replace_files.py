"""A REPLACE snapshot: data files deleted and added without changing the table's rows, with
every manifest rewritten in the same commit. PyIceberg 0.12 has no rewrite-files action; this
is its ``_OverwriteFiles`` with the REPLACE operation and a one-pass manifest rewrite
(``core.compaction`` uses it)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..shape.table_schema import OWN_RETRY_PROPERTIES

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile, ManifestEntry, ManifestFile
    from pyiceberg.table import Table

MANIFEST_TARGET_DEFAULT = 8 * 1024 * 1024  # commit.manifest.target-size-bytes
MANIFEST_ENTRIES = 20_000  # entries per rewritten manifest (~10-20 MB of Avro with column stats)


def _replace_producer(table: Table, props: dict[str, str],
                      entries: dict[str, list[ManifestEntry]]) -> Any:
    """A REPLACE snapshot producer (PyIceberg 0.12 has none) that rewrites every manifest.

    PyIceberg's overwrite reads the parent's manifests three times (required deletes,
    manifests to rewrite without them, merging); this reads each once, from ``entries`` when
    the plan already read it (manifests never change), and writes the surviving entries as
    EXISTING into merged manifests of at most ``MANIFEST_ENTRIES`` entries: the manifest
    rewrite is part of the compaction commit.
    """
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.manifest import DataFileContent, ManifestContent, ManifestEntry, ManifestEntryStatus
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class _ReplaceFiles(_OverwriteFiles):
        _survivors: dict[int, list[ManifestEntry]]
        _kept_manifests: list[ManifestFile]

        def _summary(self, snapshot_properties: dict[str, str] = props) -> Summary:
            # update_snapshot_summaries knows no REPLACE; the totals are computed the same way.
            self._operation = Operation.OVERWRITE
            try:
                summary = super()._summary(snapshot_properties)
            finally:
                self._operation = Operation.REPLACE
            return Summary(Operation.REPLACE, **summary.additional_properties)

        def _deleted_entries(self) -> list[ManifestEntry]:
            self._survivors, self._kept_manifests = defaultdict(list), []
            parent = (self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id)
                      if self._parent_snapshot_id is not None else None)
            deleted: list[ManifestEntry] = []
            found: set[str] = set()
            wanted = {f.file_path for f in self._deleted_data_files}
            for m in parent.manifests(self._io) if parent else []:
                if m.content != ManifestContent.DATA:
                    self._kept_manifests.append(m)
                    continue
                rows = entries.get(m.manifest_path)
                if rows is None:
                    rows = entries[m.manifest_path] = m.fetch_manifest_entry(self._io, discard_deleted=True)
                for e in rows:
                    if e.data_file.content == DataFileContent.DATA and e.data_file.file_path in wanted:
                        found.add(e.data_file.file_path)
                        deleted.append(ManifestEntry.from_args(
                            status=ManifestEntryStatus.DELETED, snapshot_id=self._snapshot_id,
                            sequence_number=e.sequence_number, file_sequence_number=e.file_sequence_number,
                            data_file=e.data_file))
                    else:
                        self._survivors[m.partition_spec_id].append(e)
            missing = wanted - found
            if missing:
                raise ValidationException(f"Missing required files to delete: {', '.join(sorted(missing)[:5])}")
            return deleted

        def _existing_manifests(self) -> list[ManifestFile]:
            out = list(self._kept_manifests)
            for spec_id, rows in self._survivors.items():
                for i in range(0, len(rows), MANIFEST_ENTRIES):
                    with self.new_manifest_writer(self.spec(spec_id)) as writer:
                        for e in rows[i:i + MANIFEST_ENTRIES]:
                            writer.existing(e)
                    out.append(writer.to_manifest_file())
            return out

    txn = table.transaction()
    return txn, _ReplaceFiles(operation=Operation.REPLACE, transaction=txn, io=table.io,
                              snapshot_properties=props)


def commit_replace(table: Table, deletes: list[DataFile], adds: list[DataFile], props: dict[str, str],
                   entries: dict[str, list[ManifestEntry]] | None = None) -> Table:
    """One REPLACE snapshot: ``deletes`` out, ``adds`` in, manifests rewritten; no own retries."""
    meta = table.metadata
    if meta.properties.get("commit.retry.num-retries") != "0":
        table.metadata = meta.model_copy(update={"properties": {**meta.properties, **OWN_RETRY_PROPERTIES}})
    txn, producer = _replace_producer(table, props, {} if entries is None else entries)
    for f in deletes:
        producer.delete_data_file(f)
    for f in adds:
        producer.append_data_file(f)
    producer.commit()
    new = txn.commit_transaction()
    return new
