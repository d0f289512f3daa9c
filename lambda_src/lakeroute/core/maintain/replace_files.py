"""A REPLACE snapshot: data files deleted and added without changing the table's rows, with
every data manifest rewritten in the same commit. PyIceberg 0.12 has no rewrite-files action; this
is its ``_OverwriteFiles`` with the REPLACE operation and a one-pass manifest rewrite
(``core.compaction`` uses it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..shape.table_schema import OWN_RETRY_PROPERTIES
from ..write.snapshot_files import file_changes

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile, ManifestEntry
    from pyiceberg.table import Table

MANIFEST_TARGET_DEFAULT = 8 * 1024 * 1024  # commit.manifest.target-size-bytes


def _replace_producer(table: Table, props: dict[str, str],
                      entries: dict[str, list[ManifestEntry]]) -> Any:
    """A REPLACE snapshot producer (PyIceberg 0.12 has none) that rewrites every data manifest.

    PyIceberg's overwrite reads the parent's manifests three times (required deletes,
    manifests to rewrite without them, merging); ``core.write.snapshot_files`` reads each
    once, from ``entries`` when the plan already read it (manifests never change), and writes
    the surviving entries as EXISTING into merged manifests of at most 20,000 entries (the
    manifest rewrite is part of the compaction commit). Delete files in ``deletes`` (whose
    rows the rewrite applied, and that apply to nothing else any more) are removed too.
    """
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class _ReplaceSummary(_OverwriteFiles):
        def _summary(self, snapshot_properties: dict[str, str] = props) -> Summary:
            # update_snapshot_summaries knows no REPLACE; the totals are computed the same way.
            self._operation = Operation.OVERWRITE
            try:
                summary = super()._summary(snapshot_properties)
            finally:
                self._operation = Operation.REPLACE
            return Summary(Operation.REPLACE, **summary.additional_properties)

    txn = table.transaction()
    return txn, file_changes(txn, table.io, Operation.REPLACE, props, merge=True, entries=entries,
                             base=_ReplaceSummary)


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
