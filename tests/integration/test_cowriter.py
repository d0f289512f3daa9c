"""Tables shared with other writers, without Spark: files added with PyIceberg's ``add_files``
(plain pyarrow Parquet: no field ids, another column order, ``string`` not ``large_string``),
equality and position delete files built by hand (no Spark writes equality deletes; Flink
does), and table properties lakeroute cannot honour. The co-writer claims with a real engine are in
``test_cowriter_spark.py``.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from lakeroute.core.write.deletes import live_files
from lakeroute.core.write.snapshot_files import file_changes

from tests.integration.test_cli import run
from tests.support.workspace import Workspace

ROWS = pa.schema([("id", pa.int64()), ("name", pa.string())])


def put(ws: Workspace, bucket: str, key: str, rows: list[dict[str, Any]]) -> tuple[str, str]:
    ws.put(bucket, key, pa.Table.from_pylist(rows, schema=ROWS))
    return bucket, key


def committed(ws: Workspace, *refs: tuple[str, str]) -> None:
    report = ws.ingest(*refs)
    assert report.count("committed") == len(refs), [(o.status, o.message) for o in report.outcomes]


def foreign_file(ws: Workspace, table: str, rows: list[dict[str, Any]], name: str) -> None:
    """A plain pyarrow file (columns in another order, no field ids) added with ``add_files``."""
    t = ws.catalog().load_table(table)
    path = f"{t.location()}/data/foreign-{name}.parquet"
    data = pa.Table.from_pylist(rows, schema=pa.schema([("name", pa.string()), ("id", pa.int64())]))
    with t.io.new_output(path).create(overwrite=True) as out:
        pq.write_table(data, out)
    t.add_files([path])


def names(ws: Workspace, table: str) -> dict[int, str]:
    rows = ws.rows(table)
    out = {r["id"]: r["name"] for r in rows}
    assert len(out) == len(rows), "duplicate ids"
    return out


def test_upsert_replace_and_compaction_read_files_added_by_add_files(ws: Workspace) -> None:
    ws.route("contacts", {"bucket": "ups"}, {"table": "ns.contacts", "mode": "upsert", "key": ["id"]})
    committed(ws, put(ws, "ups", "1.parquet", [{"id": 1, "name": "v1"}, {"id": 2, "name": "v1"}]))
    foreign_file(ws, "ns.contacts", [{"id": 10, "name": "pa"}, {"id": 11, "name": "pa"}], "a")
    # One merge over lakeroute's file (large_string) and the foreign one (string, other order).
    committed(ws, put(ws, "ups", "2.parquet", [{"id": 2, "name": "v2"}, {"id": 10, "name": "v2"}]))
    assert names(ws, "ns.contacts") == {1: "v1", 2: "v2", 10: "v2", 11: "pa"}
    foreign_file(ws, "ns.contacts", [{"id": 12, "name": "pa"}], "b")
    code, out, err = run(ws, "maintain", "ns.contacts", "--apply")
    assert code == 0 and "compaction: rewrote" in out, out + err
    assert names(ws, "ns.contacts") == {1: "v1", 2: "v2", 10: "v2", 11: "pa", 12: "pa"}

    ws.route("exports", {"bucket": "rep"}, {"table": "ns.exports", "mode": "replace"})
    committed(ws, put(ws, "rep", "a.parquet", [{"id": 1, "name": "a1"}]))
    t = ws.catalog().load_table("ns.exports")
    path = f"{t.location()}/data/foreign-mixed.parquet"
    mixed = pa.table({"_lakeroute_object": ["rep/a.parquet", "rep/b.parquet"], "name": ["a1", "b1"], "id": [2, 3]})
    with t.io.new_output(path).create(overwrite=True) as out_file:
        pq.write_table(mixed, out_file)
    t.add_files([path])
    committed(ws, put(ws, "rep", "a.parquet", [{"id": 4, "name": "a2"}]))
    assert names(ws, "ns.exports") == {3: "b1", 4: "a2"}


def equality_delete(ws: Workspace, table: str, ids: list[int]) -> None:
    """Commit an equality delete file on ``id`` (as Flink writes them), unpartitioned."""
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.typedef import Record

    t = ws.catalog().load_table(table)
    fid = t.schema().find_field("id").field_id
    path = f"{t.location()}/data/eq-deletes-{ids[0]}.parquet"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False, metadata={"PARQUET:field_id": str(fid)})])
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ids}, schema=schema), buf)
    with t.io.new_output(path).create(overwrite=True) as out:
        out.write(buf.getvalue())
    df = DataFile.from_args(content=DataFileContent.EQUALITY_DELETES, file_path=path, file_format=FileFormat.PARQUET,
                            partition=Record(), record_count=len(ids), file_size_in_bytes=len(buf.getvalue()),
                            equality_ids=[fid])
    df.spec_id = t.spec().spec_id
    add_delete_file(t, df, Operation.DELETE)


def add_delete_file(table: Any, delete_file: Any, operation: Any) -> None:
    """A snapshot that adds one delete file (PyIceberg 0.12 writes none itself)."""
    from pyiceberg.manifest import ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestWriterV2
    from pyiceberg.table.update.snapshot import _FastAppendFiles

    class DeleteManifest(ManifestWriterV2):
        def content(self) -> ManifestContent:
            return ManifestContent.DELETES

        @property
        def _meta(self) -> dict[str, str]:
            return {**super()._meta, "content": "deletes"}

    class AddDeletes(_FastAppendFiles):
        def _manifests(self) -> list[Any]:
            with DeleteManifest(table.spec(), table.schema(), self.new_manifest_output(), self._snapshot_id,
                                self._compression) as writer:
                writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id,
                                                   data_file=delete_file))
            return [writer.to_manifest_file(), *self._existing_manifests()]

    txn = table.transaction()
    AddDeletes(operation=operation, transaction=txn, io=table.io).commit()
    txn.commit_transaction()


def test_equality_deletes_refuse_upsert_once_and_leave_append_and_overwrite_working(ws: Workspace) -> None:
    ws.route("contacts", {"bucket": "ups"}, {"table": "ns.contacts", "mode": "upsert", "key": ["id"]})
    committed(ws, put(ws, "ups", "1.parquet", [{"id": 1, "name": "v1"}, {"id": 2, "name": "v1"}]))
    equality_delete(ws, "ns.contacts", [2])
    before = ws.catalog().load_table("ns.contacts").current_snapshot()
    report = ws.ingest(put(ws, "ups", "2.parquet", [{"id": 1, "name": "v2"}]))
    [outcome] = report.outcomes
    assert outcome.status == "quarantined" and outcome.stage == "schema", outcome.message
    assert "table ns.contacts has 1 equality delete file(s)" in outcome.message
    assert "cannot apply mode upsert" in outcome.message and "rewrite_data_files" in outcome.message
    assert ws.record("ups", "2.parquet")["attempts"] == 1
    assert ws.catalog().load_table("ns.contacts").current_snapshot() == before  # nothing committed
    code, _, err = run(ws, "validate")
    assert code == 2 and "route contacts: table ns.contacts has 1 equality delete file(s)" in err, err
    code, out, _ = run(ws, "maintain", "ns.contacts", "--apply")
    assert code == 0 and "compaction: skipped, table ns.contacts has 1 equality delete file(s)" in out, out

    # Append reads no data file: equality deletes do not apply to newer files, so it commits.
    ws.route("events", {"bucket": "app"}, {"table": "ns.events"})
    committed(ws, put(ws, "app", "1.parquet", [{"id": 1, "name": "e"}, {"id": 2, "name": "e"}]))
    equality_delete(ws, "ns.events", [1])
    committed(ws, put(ws, "app", "2.parquet", [{"id": 1, "name": "again"}]))

    # Overwrite of the whole table reads no data file either. The equality delete file stays
    # (it applies to no newer file; lakeroute never rewrites a manifest holding one, see
    # core.write.deletes), the old data files go.
    ws.route("daily", {"bucket": "ovw"}, {"table": "ns.daily", "mode": "overwrite", "overwrite": "table"})
    committed(ws, put(ws, "ovw", "1.parquet", [{"id": 1, "name": "d1"}, {"id": 2, "name": "d1"}]))
    equality_delete(ws, "ns.daily", [2])
    committed(ws, put(ws, "ovw", "2.parquet", [{"id": 3, "name": "d2"}]))
    t = ws.catalog().load_table("ns.daily")
    live = live_files(t.metadata, t.io)
    assert len(live.equality) == 1 and [f.record_count for f in live.data] == [1]
    assert live.equality_for(live.data[0]) == []  # the new file is newer than the delete
    assert "lakeroute.removed-delete-files" not in t.current_snapshot().summary.additional_properties  # type: ignore[union-attr]


def test_a_table_writing_orc_is_refused_with_the_fix(ws: Workspace) -> None:
    ws.route("events", {"bucket": "orc"}, {"table": "ns.orc"})
    committed(ws, put(ws, "orc", "1.parquet", [{"id": 1, "name": "x"}]))
    t = ws.catalog().load_table("ns.orc")
    with t.transaction() as txn:
        txn.set_properties({"write.format.default": "orc"})
    report = ws.ingest(put(ws, "orc", "2.parquet", [{"id": 2, "name": "y"}]))
    [outcome] = report.outcomes
    assert outcome.status == "quarantined", outcome.message
    assert "write.format.default=orc" in outcome.message and "'write.format.default'='parquet'" in outcome.message
    code, _, err = run(ws, "validate")
    assert code == 2 and "route events: table ns.orc has write.format.default=orc" in err, err
    code, out, err = run(ws, "preview", "events", str(ws.paths.landing / "orc" / "2.parquet"))
    assert code != 0 and "write.format.default=orc" in out + err, out + err


def position_delete(ws: Workspace, table: str, path: str, positions: list[int]) -> None:
    """Commit a position delete file (as Spark merge-on-read writes them), partition-scoped."""
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.typedef import Record

    t = ws.catalog().load_table(table)
    schema = pa.schema([pa.field("file_path", pa.string(), nullable=False, metadata={"PARQUET:field_id": "2147483546"}),
                        pa.field("pos", pa.int64(), nullable=False, metadata={"PARQUET:field_id": "2147483545"})])
    buf = io.BytesIO()
    pq.write_table(pa.table({"file_path": [path] * len(positions), "pos": positions}, schema=schema), buf)
    out_path = f"{t.location()}/data/pos-deletes-{positions[0]}.parquet"
    with t.io.new_output(out_path).create(overwrite=True) as out:
        out.write(buf.getvalue())
    df = DataFile.from_args(content=DataFileContent.POSITION_DELETES, file_path=out_path,
                            file_format=FileFormat.PARQUET, partition=Record(), record_count=len(positions),
                            file_size_in_bytes=len(buf.getvalue()))
    df.spec_id = t.spec().spec_id
    add_delete_file(t, df, Operation.DELETE)


def test_a_snapshot_removes_the_delete_files_of_the_data_files_it_removes(ws: Workspace) -> None:
    """``file_changes`` writes removed delete files into a delete manifest (PyIceberg's own
    overwrite fails its required-deletes check on them, and would rewrite their manifest as
    a DATA manifest); a delete file that still applies to a surviving file stays."""
    from pyiceberg.manifest import DataFileContent, ManifestContent
    from pyiceberg.table.snapshots import Operation

    ws.route("events", {"bucket": "raw"}, {"table": "ns.raw"})
    committed(ws, put(ws, "raw", "1.parquet", [{"id": 1, "name": "x"}, {"id": 2, "name": "x"}]))
    committed(ws, put(ws, "raw", "2.parquet", [{"id": 3, "name": "y"}]))
    t = ws.catalog().load_table("ns.raw")
    older, newer = sorted(live_files(t.metadata, t.io).data, key=lambda f: f.record_count, reverse=True)
    position_delete(ws, "ns.raw", older.file_path, [0])
    assert names(ws, "ns.raw") == {2: "x", 3: "y"}  # PyIceberg applies it on a scan
    t = ws.catalog().load_table("ns.raw")
    live = live_files(t.metadata, t.io)
    assert len(live.positional) == 1 and live.deletes_for(newer) and live.deletes_for(older)
    assert live.dangling([newer]) == []  # partition-scoped: it still applies to the older file
    txn = t.transaction()
    producer = file_changes(txn, t.io, Operation.DELETE, {})
    for f in [*live.data, *live.dangling(live.data)]:
        producer.delete_data_file(f)
    producer.commit()
    new = txn.commit_transaction()
    after = live_files(new.metadata, new.io)
    assert after.data == [] and after.positional == []
    summary = new.current_snapshot().summary  # type: ignore[union-attr]
    assert summary["removed-position-delete-files"] == "1" and summary["deleted-data-files"] == "2"
    for m in new.current_snapshot().manifests(new.io):  # type: ignore[union-attr]
        for e in m.fetch_manifest_entry(new.io, discard_deleted=False):
            is_data = e.data_file.content == DataFileContent.DATA
            assert is_data == (m.content == ManifestContent.DATA), "a file in a manifest of the other content"
