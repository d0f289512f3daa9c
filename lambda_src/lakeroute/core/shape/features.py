"""Table features lakeroute cannot write, found before anything is staged.

Tables are shared with other engines (Spark, Flink, Athena), which may give a table features
PyIceberg 0.12, lakeroute's writer, cannot handle. Such a table is a configuration problem
for its routes (an object for it is quarantined at stage ``table`` with this message, and
``validate`` / ``sync --plan`` report it), never a transient failure retried until it gives
up:

- format version 3: PyIceberg 0.12 reads v3 tables but writes no v3 manifest
  (``write_manifest`` raises "Cannot write manifest for table version: 3"), so no mode can
  commit;
- ``write.format.default`` other than Parquet: PyIceberg writes Parquet only;
- equality delete files, for the modes that read and rewrite data files (upsert, replace):
  PyIceberg cannot apply them (append and overwrite read no data file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.table.metadata import TableMetadata

WRITABLE_FORMAT_VERSIONS = (1, 2)
REWRITING_MODES = ("upsert", "replace")


def unsupported(table: str, metadata: TableMetadata, io: FileIO, mode: str) -> str | None:
    """Why lakeroute cannot write ``mode`` into this table (one line with the way out), or None."""
    version = int(metadata.format_version)
    if version not in WRITABLE_FORMAT_VERSIONS:
        return (f"table {table} is Iceberg format version {version} (e.g. created or upgraded by Spark), which "
                "PyIceberg 0.12 cannot commit to: route to a table with 'format-version'='2' (a table cannot be "
                "downgraded: create one and copy the rows, e.g. Spark CREATE TABLE ... TBLPROPERTIES "
                "('format-version'='2') AS SELECT ...)")
    file_format = metadata.properties.get("write.format.default", "parquet")
    if file_format.lower() != "parquet":
        return (f"table {table} has write.format.default={file_format}, and PyIceberg writes Parquet only: "
                f"set it back with ALTER TABLE {table} SET TBLPROPERTIES ('write.format.default'='parquet') "
                "(existing files of any format stay readable)")
    if mode in REWRITING_MODES:
        count = equality_delete_files(metadata, io)
        if count:
            return equality_message(table, count, f"apply mode {mode}")
    return None


def equality_message(table: str, count: int, what: str = "rewrite its data files") -> str:
    return (f"table {table} has {count} equality delete file(s) from another engine (e.g. Flink), which "
            f"PyIceberg 0.12 cannot apply, so lakeroute cannot {what}: let that engine rewrite the data "
            f"files they apply to (Spark: CALL system.rewrite_data_files(table => '{table}', options => "
            "map('delete-file-threshold', '1'))) or use mode append or overwrite")


def refuse_unsupported(table: str, metadata: TableMetadata, io: FileIO, mode: str) -> None:
    why = unsupported(table, metadata, io, mode)
    if why is not None:
        raise ConfigError(why)


def equality_delete_files(metadata: TableMetadata, io: FileIO) -> int:
    """How many live equality delete files the current snapshot has (delete manifests only)."""
    from pyiceberg.manifest import DataFileContent, ManifestContent

    snapshot = metadata.current_snapshot()
    if snapshot is None:
        return 0
    count = 0
    for m in snapshot.manifests(io):
        if m.content == ManifestContent.DELETES:
            count += sum(1 for e in m.fetch_manifest_entry(io, discard_deleted=True)
                         if e.data_file.content == DataFileContent.EQUALITY_DELETES)
    return count
