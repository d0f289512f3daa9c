"""Hand-off records: one table's staged objects, written down so another process commits them.

A hand-off is what one staging batch leaves for one table. It lives under the lane's root
(``<root>/<table>/``), written with the table's own FileIO (local files or S3):

- ``<id>/manifest.avro``: an Iceberg manifest of the objects' data files (already in the
  table's location, invisible until committed): the data files' own format, partition
  values and column metrics included, read back exactly as written;
- ``<id>/tails.arrow``: the small objects' rows (mode append), one Arrow IPC file, written
  by the committer into data files shared across the whole commit;
- ``<id>/upsert-<n>.arrow``: mode upsert's rows (table-aligned, with the delete flag);
- ``<id>.json``: the record, written last (its presence means the hand-off is complete):
  the target, and per object its reference, version, route, rows, schema, files and
  arrival time.

The id starts with the creation time in nanoseconds, so names sort oldest first.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..pipeline.outcomes import ObjectRef
from ..routes import Target
from ..write.staging import Staged

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table.metadata import TableMetadata

    from ..pipeline.plans import TablePlan

FORMAT = 1


def new_id() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def created_at(handoff_id: str) -> float:
    """Epoch seconds at which the hand-off was created (from its id)."""
    return int(handoff_id.split("-", 1)[0]) / 1e9


@dataclass
class Record:
    """A hand-off as read back: its id, table, target and staged objects (with their refs)."""

    id: str
    table: str
    target: Target
    objects: list[tuple[ObjectRef, Staged, float]]  # (ref, staged, arrival epoch seconds)
    blobs: list[str]  # manifest, tails, upsert files: deleted with the record

    @property
    def mb(self) -> float:
        return sum(df.file_size_in_bytes for _, s, _ in self.objects for df in s.data_files) / 2**20 + sum(
            (s.tail.nbytes if s.tail is not None else 0) for _, s, _ in self.objects) / 2**20


def write(io: FileIO, root: str, table: str, plan: TablePlan, arrivals: dict[int, float]) -> tuple[str, bytes]:
    """Write a plan's blobs; return (id, record JSON) — the caller publishes the record."""
    import pyarrow as pa

    hid = new_id()
    base = f"{root.rstrip('/')}/{table}/{hid}"
    staged = [s for _, s in plan.staged]
    blobs: list[str] = []
    assert plan.metadata is not None
    manifest = _write_manifest(io, f"{base}/manifest.avro", plan.metadata, staged)
    if manifest is not None:
        blobs.append(manifest["path"])
    tails = [s for s in staged if s.tail is not None]
    ranges: dict[int, list[int]] = {}
    if tails:
        joined = pa.concat_tables([s.tail for s in tails if s.tail is not None], promote_options="permissive")
        offset = 0
        for s in tails:
            assert s.tail is not None
            ranges[id(s)] = [offset, s.tail.num_rows]
            offset += s.tail.num_rows
        blobs.append(_write_arrow(io, f"{base}/tails.arrow", joined))
    objects = []
    for n, (ref, s) in enumerate(plan.staged):
        upserts = []
        for k, path in enumerate(s.local_files):
            with open(path, "rb") as f:
                upserts.append(_put(io, f"{base}/upsert-{n}-{k}.arrow", f.read()))
        blobs += upserts
        objects.append({
            "ref": {"bucket": ref.bucket, "key": ref.key, "version": ref.version, "id": ref.id,
                    "size": ref.size, "replay": ref.replay},
            "source_id": s.source_id, "route": s.route, "rows": s.rows, "order": s.order,
            "seconds": s.seconds, "object_name": s.object_name, "arrived": arrivals.get(id(s), time.time()),
            "files": [df.file_path for df in s.data_files],
            "schema": None if s.schema is None else s.schema.model_dump_json(),
            "result_schema": None if s.result_schema is None else _schema_b64(s.result_schema),
            "tail": ranges.get(id(s)), "upserts": upserts,
            "rescued": s.rescued, "rejected": s.rejected, "rejects_to": s.rejects_to, "changes": s.changes,
        })
    doc = {"format": FORMAT, "id": hid, "table": table,
           "target": plan.target.model_dump(mode="json", by_alias=True, exclude_none=True),
           "manifest": manifest, "tails": f"{base}/tails.arrow" if tails else None,
           "blobs": blobs, "objects": objects}
    return hid, json.dumps(doc, ensure_ascii=False).encode("utf-8")


def blobs_of(body: bytes) -> list[str]:
    """A record's blobs, without reading them."""
    return list(json.loads(body).get("blobs", []))


def read(io: FileIO, body: bytes) -> Record:
    """A record and its blobs, back as staged objects ready for a commit."""
    from pyiceberg.schema import Schema

    doc = json.loads(body)
    if doc.get("format") != FORMAT:
        raise ValueError(f"hand-off {doc.get('id')}: format {doc.get('format')!r}, expected {FORMAT}")
    files = _read_manifest(io, doc["manifest"]) if doc.get("manifest") else {}
    tails = _read_arrow(io, doc["tails"]) if doc.get("tails") else None
    target = Target.model_validate(doc["target"])
    objects: list[tuple[ObjectRef, Staged, float]] = []
    for o in doc["objects"]:
        ref = ObjectRef(**o["ref"])
        s = Staged(o["source_id"], o["route"], doc["table"], o["rows"], order=o["order"], seconds=o["seconds"],
                   object_name=o["object_name"], rescued=o["rescued"], rejected=o["rejected"],
                   rejects_to=o["rejects_to"], changes=list(o["changes"]))
        s.data_files = [files[p] for p in o["files"]]
        s.schema = Schema.model_validate_json(o["schema"]) if o["schema"] else None
        s.result_schema = _schema_from_b64(o["result_schema"]) if o["result_schema"] else None
        if o["tail"] is not None and tails is not None:
            s.tail = tails.slice(o["tail"][0], o["tail"][1])
        s.local_files = [_local_copy(io, path) for path in o["upserts"]]
        objects.append((ref, s, float(o["arrived"])))
    return Record(doc["id"], doc["table"], target, objects, list(doc.get("blobs", [])))


def _write_manifest(io: FileIO, path: str, metadata: TableMetadata, staged: list[Staged]) -> dict[str, Any] | None:
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus, write_manifest

    files: list[DataFile] = [df for s in staged for df in s.data_files]
    if not files:
        return None
    spec = metadata.spec()
    with write_manifest(format_version=2, spec=spec, schema=metadata.schema(), output_file=io.new_output(path),
                        snapshot_id=0, avro_compression="zstandard") as writer:
        for df in files:
            writer.add_entry(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=0, data_file=df))
    m = writer.to_manifest_file()
    return {"path": path, "length": m.manifest_length, "spec_id": m.partition_spec_id}


def _read_manifest(io: FileIO, manifest: dict[str, Any]) -> dict[str, DataFile]:
    from pyiceberg.manifest import ManifestContent, ManifestFile

    m = ManifestFile.from_args(manifest_path=manifest["path"], manifest_length=manifest["length"],
                               partition_spec_id=manifest["spec_id"], content=ManifestContent.DATA,
                               sequence_number=0, min_sequence_number=0, added_snapshot_id=0)
    return {e.data_file.file_path: e.data_file for e in m.fetch_manifest_entry(io, discard_deleted=False)}


def _put(io: FileIO, path: str, body: bytes) -> str:
    with io.new_output(path).create(overwrite=True) as out:
        out.write(body)
    return path


def _write_arrow(io: FileIO, path: str, table: pa.Table) -> str:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(table)
    return _put(io, path, sink.getvalue().to_pybytes())


def _read_arrow(io: FileIO, path: str) -> pa.Table:
    import pyarrow as pa

    with io.new_input(path).open() as f:
        return pa.ipc.open_file(pa.py_buffer(f.read())).read_all()


def _local_copy(io: FileIO, path: str) -> str:
    """An upsert file in local scratch (the merge reads local files; ``discard`` removes it)."""
    fd, local = tempfile.mkstemp(prefix="lakeroute-upsert-", suffix=".arrow")
    with os.fdopen(fd, "wb") as out, io.new_input(path).open() as f:
        out.write(f.read())
    return local


def _schema_b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema_from_b64(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
