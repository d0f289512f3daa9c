"""S3 Tables' own table maintenance, configured from each table's ``target.maintenance``.

Who does what on a stage whose catalog is S3 Tables:

- compaction: S3 Tables (``icebergCompaction``, ``targetFileSizeMB`` = ``target_file_mb``
  brought into the service's 64-512 MB range); lakeroute's own compaction does not run;
- snapshot expiry: S3 Tables (``icebergSnapshotManagement``: ``minSnapshotsToKeep`` =
  ``keep_snapshots``, ``maxSnapshotAgeHours`` = ``keep_days`` in hours) *and* lakeroute's
  (the expiry after an ingest commit, ``auto_expire``, and the scheduled maintenance), which
  archives the expired summaries first; whichever comes first expires, both keep the same;
- unreferenced files: S3 Tables (``icebergUnreferencedFileRemoval``, set on the table bucket
  by the stack); lakeroute's orphan removal cannot run there (the storage answers no
  ListObjects).

Exactly once does not depend on who expires: every commit records its sources in the ledger
right after it, every commit and every scheduled maintenance reconciles the snapshots the
ledger has not seen, and the ledger counts an expired ancestor's entries (``core.ledger.rule``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .clients import aws_errors, error_code

if TYPE_CHECKING:
    from ..core.routes import Maintenance
    from .s3tables import S3TablesCatalog

MIN_TARGET_MB, MAX_TARGET_MB = 64, 512  # what S3 Tables accept for targetFileSizeMB


def table_configuration(settings: Maintenance) -> dict[str, dict[str, Any]]:
    """The ``value`` of PutTableMaintenanceConfiguration per ``type``."""
    target = min(MAX_TARGET_MB, max(MIN_TARGET_MB, int(settings.target_file_mb)))
    hours = max(1, round(settings.keep_days * 24))
    return {
        "icebergCompaction": {"status": "enabled", "settings": {
            "icebergCompaction": {"targetFileSizeMB": target}}},
        "icebergSnapshotManagement": {"status": "enabled", "settings": {
            "icebergSnapshotManagement": {"minSnapshotsToKeep": int(settings.keep_snapshots),
                                          "maxSnapshotAgeHours": hours}}},
    }


def _current(catalog: S3TablesCatalog, namespace: str, table: str) -> dict[str, Any]:
    got = catalog.client.get_table_maintenance_configuration(tableBucketARN=catalog.bucket_arn,
                                                             namespace=namespace, name=table)
    return {str(k): v for k, v in (got.get("configuration") or {}).items()}


def configure_table(catalog: S3TablesCatalog, name: str, settings: Maintenance) -> list[str]:
    """Put the configuration types that differ from the table's; the lines say what changed."""
    namespace, _, table = name.partition(".")
    want = table_configuration(settings)
    have = _current(catalog, namespace, table)
    lines = []
    for kind, value in want.items():
        if _same(have.get(kind), value):
            continue
        catalog.client.put_table_maintenance_configuration(
            tableBucketARN=catalog.bucket_arn, namespace=namespace, name=table, type=kind, value=value)
        inner = value["settings"][kind]
        lines.append(f"s3tables maintenance {name}: {kind} " +
                     ", ".join(f"{k}={v}" for k, v in sorted(inner.items())))
    return lines


def _same(have: Any, want: dict[str, Any]) -> bool:
    if not isinstance(have, dict):
        return False
    return have.get("status") == want["status"] and have.get("settings") == want["settings"]


def configure_tables(catalog: S3TablesCatalog, settings: Mapping[str, Maintenance]) -> list[str]:
    """``configure_table`` for each table that exists (a table created by its first commit is
    configured by the next sync or scheduled maintenance)."""
    lines: list[str] = []
    for name in sorted(settings):
        if not catalog.table_exists(name):
            continue
        try:
            lines += configure_table(catalog, name, settings[name])
        except aws_errors() as e:
            code, _, message = error_code(e)
            lines.append(f"s3tables maintenance {name}: not configured: {code or type(e).__name__}: {message}")
    return lines
