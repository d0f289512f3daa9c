"""The latest upload of a key wins in key-oriented modes; append skips identical content.

Locally an upload is the content hash plus the file's modification time (``core.objects``):
a revert (v1 -> v2 -> v1, the same bytes uploaded again) is ingested again in replace,
overwrite and upsert, a redelivery of one upload never is, and append keeps skipping
identical content. Real files, the SQLite catalog and ledger.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute.core.objects import SourceObject
from lakeroute.core.pipeline import ObjectRef

from tests.support.workspace import Workspace

KEY_MODES: dict[str, dict[str, Any]] = {
    "replace": {"table": "erp.items", "mode": "replace"},
    "overwrite": {"table": "erp.items", "mode": "overwrite", "overwrite": "table"},
    "upsert": {"table": "erp.items", "mode": "upsert", "key": ["id"]},  # no order_by: the later commit wins
}


def content(tag: str) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64()), "v": [tag, tag]}), buf)
    return buf.getvalue()


def upload(ws: Workspace, key: str, data: bytes) -> Path:
    """A new upload: the file written again (its modification time moves on)."""
    path = ws.paths.landing / "land" / key
    before = path.stat().st_mtime_ns if path.exists() else None
    ws.put("land", key, data)
    while path.stat().st_mtime_ns == before:  # a coarse file-system clock: write until it moves
        time.sleep(0.01)
        ws.put("land", key, data)
    return path


def values(ws: Workspace) -> set[str]:
    return {r["v"] for r in ws.rows("erp.items")}


@pytest.mark.parametrize("mode", list(KEY_MODES))
def test_a_revert_is_ingested_again_and_a_redelivery_is_not(ws: Workspace, mode: str) -> None:
    ws.route("items", {"bucket": "land", "prefix": "exp/"}, KEY_MODES[mode])
    v1, v2 = content("v1"), content("v2")
    for data, want in ((v1, "v1"), (v2, "v2"), (v1, "v1")):  # the third: a correction back to v1
        upload(ws, "exp/a.parquet", data)
        report = ws.ingest(("land", "exp/a.parquet"))
        assert report.count("committed") == 1, report.outcomes
        assert values(ws) == {want} and len(ws.rows("erp.items")) == 2
    snapshots = len(ws.snapshots("erp.items"))
    [o] = ws.ingest(("land", "exp/a.parquet")).outcomes  # the same upload again (a redelivery)
    assert o.status == "skipped" and "already ingested" in o.message
    assert len(ws.snapshots("erp.items")) == snapshots and values(ws) == {"v1"}
    sources = [json.loads(s.summary.additional_properties["lakeroute.sources"])[0]
               for s in ws.snapshots("erp.items")]
    assert len(set(sources)) == 3 and sources[0].split("#")[0] == sources[2].split("#")[0], sources
    assert all(s.startswith("land/exp/a.parquet@sha256:") and "#" in s for s in sources)


def test_append_skips_identical_content_uploaded_again(ws: Workspace) -> None:
    ws.route("items", {"bucket": "land", "prefix": "exp/"}, {"table": "erp.items"})
    upload(ws, "exp/a.parquet", content("v1"))
    assert ws.ingest(("land", "exp/a.parquet")).count("committed") == 1
    upload(ws, "exp/a.parquet", content("v1"))
    [o] = ws.ingest(("land", "exp/a.parquet")).outcomes
    assert o.status == "skipped" and "already ingested" in o.message
    assert len(ws.rows("erp.items")) == 2
    [source] = json.loads(ws.snapshots("erp.items")[0].summary.additional_properties["lakeroute.sources"])
    assert "#" not in source  # append records the content alone, as it always did


def test_one_object_in_an_append_and_a_replace_table(ws: Workspace) -> None:
    """Fan-out: each table records the identity of its own mode."""
    ws.paths.routes.mkdir(parents=True)
    (ws.paths.routes / "fan.yaml").write_text(json.dumps({
        "name": "fan", "source": {"bucket": "land", "prefix": "exp/"},
        "targets": [{"table": "erp.log", "sql": "SELECT * FROM source"},
                    {"table": "erp.items", "mode": "replace", "sql": "SELECT * FROM source"}]}))
    for data in (content("v1"), content("v2"), content("v1")):
        upload(ws, "exp/a.parquet", data)
        ws.ingest(("land", "exp/a.parquet"))
    assert values(ws) == {"v1"}
    log = ws.rows("erp.log")
    assert sorted(r["v"] for r in log) == ["v1", "v1", "v2", "v2"]  # v1 again: a duplicate there


def test_the_upload_is_the_bytes_read_in_a_key_mode(ws: Workspace) -> None:
    """A file renamed over the one being read: the upload read is recorded, and the new one
    comes in next; a file rewritten in place while read fails for a retry (``verify``)."""
    ws.route("items", {"bucket": "land", "prefix": "exp/"}, KEY_MODES["replace"])
    path = upload(ws, "exp/a.parquet", content("v1"))
    pipe = ws.pipeline()

    def rename_over(obj: SourceObject) -> SourceObject:
        tmp = path.with_name("a.tmp")
        tmp.write_bytes(content("v2"))
        os.replace(tmp, path)
        return obj

    pipe.source.fetch = rename_over  # type: ignore[attr-defined]
    [o] = pipe.ingest([ObjectRef("land", "exp/a.parquet")]).outcomes
    assert o.status == "committed" and values(ws) == {"v1"}
    assert ws.ingest(("land", "exp/a.parquet")).count("committed") == 1 and values(ws) == {"v2"}

    def rewrite_in_place(obj: SourceObject) -> SourceObject:
        time.sleep(0.01)
        with open(path, "r+b") as f:  # same inode, written again under the reader (same bytes here)
            data = f.read()
            f.seek(0)
            f.write(data)
        return obj

    upload(ws, "exp/a.parquet", content("v3"))
    pipe = ws.pipeline()
    pipe.source.fetch = rewrite_in_place  # type: ignore[attr-defined]
    [g] = pipe.ingest([ObjectRef("land", "exp/a.parquet")]).outcomes
    assert g.status == "failed" and "rewritten while being read" in g.message
    assert values(ws) == {"v2"}


def test_entries_recorded_before_uploads_were_told_apart_still_count(ws: Workspace) -> None:
    """A replace table committed by an earlier lakeroute (its summary names the content only):
    the upload it read is not ingested again, a later upload of the same bytes is."""
    import hashlib

    ws.route("items", {"bucket": "land", "prefix": "exp/"}, KEY_MODES["replace"])
    upload(ws, "exp/b.parquet", content("b"))
    assert ws.ingest(("land", "exp/b.parquet")).count("committed") == 1  # creates the table
    data = content("old")
    upload(ws, "exp/a.parquet", data)
    table = ws.catalog().load_table("erp.items")
    legacy = f"land/exp/a.parquet@sha256:{hashlib.sha256(data).hexdigest()}"
    rows = pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["old", "old"],
                     "_lakeroute_object": ["land/exp/a.parquet"] * 2})
    table.append(rows.cast(table.schema().as_arrow()), snapshot_properties={
        "lakeroute.sources": json.dumps([legacy]), "lakeroute.routes": "items"})

    [o] = ws.ingest(("land", "exp/a.parquet")).outcomes
    assert o.status == "skipped", o
    assert sorted(r["v"] for r in ws.rows("erp.items")) == ["b", "b", "old", "old"]
    upload(ws, "exp/a.parquet", data)  # the same bytes, uploaded after that commit
    [o] = ws.ingest(("land", "exp/a.parquet")).outcomes
    assert o.status == "committed", o
    assert sorted(r["v"] for r in ws.rows("erp.items")) == ["b", "b", "old", "old"]
    assert ws.ingest(("land", "exp/a.parquet")).count("skipped") == 1
