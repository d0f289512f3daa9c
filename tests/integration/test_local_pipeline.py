"""The local pipeline for real: route files, landing files, DuckDB, a SQLite Iceberg catalog."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
import zstandard
from lakeroute.core.ledger import ROUTES_PROP, SOURCES_PROP

from tests.support.workspace import Workspace, orders

LINEAGE_SQL = "SELECT *, getvariable('source_key') AS _source_key FROM source"


def test_folder_routing_parquet_one_snapshot_per_call(ws: Workspace) -> None:
    ws.route("orders", {"bucket": "sales", "prefix": "orders/"},
             {"table": "sales.orders", "columns": {"id": "long", "amount": "double", "_source_key": "string"}},
             LINEAGE_SQL)
    keys = [f"orders/{i}.parquet" for i in range(3)]
    for i, k in enumerate(keys):
        ws.put("sales", k, orders(4, start=10 * i))
    report = ws.ingest(*[("sales", k) for k in keys])
    assert report.count("committed") == 3 and not report.failed
    rows = ws.rows("sales.orders")
    assert len(rows) == 12
    assert {r["_source_key"] for r in rows} == set(keys)
    snaps = ws.snapshots("sales.orders")
    assert len(snaps) == 1, "files of one call commit together"
    props = snaps[0].summary.additional_properties
    assert props[ROUTES_PROP] == "orders"
    sources = json.loads(props[SOURCES_PROP])
    assert sorted(s.split("@")[0] for s in sources) == sorted(f"sales/{k}" for k in keys)
    assert all("@sha256:" in s for s in sources)


def test_bucket_routing_csv_gz_and_schema_from_result(ws: Workspace) -> None:
    ws.route("events", {"bucket": "events-bucket", "format": "csv", "options": {"delim": ";"}},
             {"table": "web.events"})
    ws.put("events-bucket", "any/where/e1.csv.gz", gzip.compress(b"id;name\n1;a\n2;b\n"))
    ws.put("events-bucket", "e2.csv", b"id;name\n3;c\n")
    report = ws.ingest(("events-bucket", "any/where/e1.csv.gz"), ("events-bucket", "e2.csv"))
    assert not report.failed, [o.message for o in report.failed]
    assert sorted((r["id"], r["name"]) for r in ws.rows("web.events")) == [(1, "a"), (2, "b"), (3, "c")]


@pytest.mark.parametrize("compress", ["none", "gz", "zst"])
def test_json_formats(ws: Workspace, compress: str) -> None:
    ws.route("j", {"bucket": "b-json"}, {"table": "ns.j", "columns": {"id": "long", "ts": "timestamptz"}},
             "SELECT id, CAST(ts AS TIMESTAMPTZ) AS ts FROM source")
    body = b'{"id": 1, "ts": "2026-11-01T10:00:00Z"}\n{"id": 2, "ts": "2026-11-01T11:00:00+01:00"}\n'
    key = {"none": "x.jsonl", "gz": "x.json.gz", "zst": "x.ndjson.zst"}[compress]
    data = {"none": body, "gz": gzip.compress(body), "zst": zstandard.ZstdCompressor().compress(body)}[compress]
    ws.put("b-json", key, data)
    report = ws.ingest(("b-json", key))
    assert not report.failed, [o.message for o in report.failed]
    rows = sorted(ws.rows("ns.j"), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[1]["ts"].isoformat() == "2026-11-01T10:00:00+00:00"


def test_pattern_and_metadata_routing(ws: Workspace) -> None:
    ws.route("temp", {"bucket": "iot", "prefix": "r/", "metadata": {"kind": "temp"}}, {"table": "iot.temp"})
    ws.route("hum", {"bucket": "iot", "prefix": "r/", "metadata": {"kind": "hum"}}, {"table": "iot.hum"})
    ws.route("csvs", {"bucket": "iot", "prefix": "r/", "pattern": "*.csv"}, {"table": "iot.csvs"})
    ws.put("iot", "r/a.parquet", orders(2), metadata={"kind": "temp"})
    ws.put("iot", "r/b.parquet", orders(3), metadata={"kind": "hum"})
    ws.put("iot", "r/c.csv", b"id,amount\n1,2.5\n")
    report = ws.ingest(("iot", "r/a.parquet"), ("iot", "r/b.parquet"), ("iot", "r/c.csv"))
    assert not report.failed, [o.message for o in report.failed]
    assert (len(ws.rows("iot.temp")), len(ws.rows("iot.hum")), len(ws.rows("iot.csvs"))) == (2, 3, 1)


def test_partitioned_declared_table(ws: Workspace) -> None:
    import datetime as dt

    ws.route("p", {"bucket": "bkt"}, {"table": "ns.p", "partition_by": ["day(ts)", "bucket(4, id)"],
                                    "columns": {"id": "long", "ts": "timestamptz"}})
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ws.put("bkt", "p.parquet", pa.table({"id": list(range(10)),
                                       "ts": [t0 + dt.timedelta(hours=7 * i) for i in range(10)]}))
    assert not ws.ingest(("bkt", "p.parquet")).failed
    table = ws.catalog().load_table("ns.p")
    assert [f.name for f in table.spec().fields] == ["ts_day", "id_bucket"]
    files = list(table.scan().plan_files())
    assert len(files) > 3, "rows are split into partitions"
    assert len(ws.rows("ns.p")) == 10


HOSTILE_KEYS = [
    "with space/a b.parquet",
    "quote'/it's.parquet",
    'dq"/x".parquet',
    "ünïcødé/日本語.parquet",
    "sql/x'); COPY (SELECT 1) TO 'p.csv'; --.parquet",
    "sql/'; DROP TABLE t; --.parquet",
    "pct/100%.parquet",
    "plus/a+b.parquet",
    "hash/#?.parquet",
    "curly/{s3_input_path}.parquet",
]


def test_hostile_keys_are_values_not_sql(ws: Workspace, tmp_path) -> None:  # noqa: ANN001
    ws.route("any", {"bucket": "hostile"}, {"table": "ns.h"}, LINEAGE_SQL)
    for i, k in enumerate(HOSTILE_KEYS):
        ws.put("hostile", k, orders(1, start=i))
    report = ws.ingest(*[("hostile", k) for k in HOSTILE_KEYS])
    assert not report.failed, [o.message for o in report.failed]
    rows = ws.rows("ns.h")
    assert sorted(r["_source_key"] for r in rows) == sorted(HOSTILE_KEYS)
    assert not list(tmp_path.rglob("p.csv")), "nothing from a key was executed"


def test_duplicate_ingest_is_skipped_new_content_is_ingested(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "o.parquet", orders(3))
    assert ws.ingest(("bkt", "o.parquet")).count("committed") == 1
    again = ws.ingest(("bkt", "o.parquet"))
    assert again.count("skipped") == 1 and again.count("committed") == 0
    assert "already ingested" in again.outcomes[0].message
    assert len(ws.rows("ns.o")) == 3
    twice = ws.ingest(("bkt", "o.parquet"), ("bkt", "o.parquet"))
    assert twice.count("skipped") == 2
    ws.put("bkt", "o.parquet", orders(5, start=100))  # same key, new version
    assert ws.ingest(("bkt", "o.parquet")).count("committed") == 1
    assert len(ws.rows("ns.o")) == 8
    assert len(ws.snapshots("ns.o")) == 2


def test_corrupt_file_quarantined_others_commit(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "good1.parquet", orders(2))
    ws.put("bkt", "bad.parquet", b"PAR1 this is not parquet at all")
    ws.put("bkt", "good2.parquet", orders(3, start=5))
    report = ws.ingest(("bkt", "good1.parquet"), ("bkt", "bad.parquet"), ("bkt", "good2.parquet"))
    assert report.count("committed") == 2
    [bad] = report.failed
    assert bad.status == "quarantined" and bad.ref.key == "bad.parquet"
    [(entry, err)] = ws.quarantined("bkt", "bad.parquet")
    assert (entry / "object.parquet").read_bytes() == b"PAR1 this is not parquet at all"
    assert err["route"] == "o" and err["stage"] == "read" and err["message"]
    assert err["attempts"] == 1 and err["key"] == "bad.parquet" and err["version"].startswith("sha256:")
    assert len(ws.rows("ns.o")) == 5


def test_no_route_is_named_and_quarantined(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"})
    ws.put("bkt", "elsewhere/x.parquet", orders(1))
    report = ws.ingest(("bkt", "elsewhere/x.parquet"))
    [o] = report.failed
    assert o.message == ("no route for bkt/elsewhere/x.parquet; no route of bucket bkt covers its folder "
                         "(routes read: in/ (o))")
    err = ws.record("bkt", "elsewhere/x.parquet")
    assert err["stage"] == "route" and err["route"] is None


def test_schema_mismatch_quarantined_nothing_committed(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long"}})
    ws.put("bkt", "ok.csv", b"id\n1\n")
    ws.put("bkt", "text.csv", b"id\nnot-a-number\n")
    ws.put("bkt", "extra.csv", b"id,surprise\n1,2\n")
    report = ws.ingest(("bkt", "ok.csv"), ("bkt", "text.csv"), ("bkt", "extra.csv"))
    stages = {o.ref.key: ws.record("bkt", o.ref.key) for o in report.failed}
    assert set(stages) == {"text.csv", "extra.csv"}
    assert stages["text.csv"]["stage"] == "schema" and "cannot cast" in stages["text.csv"]["message"]
    assert "surprise" in stages["extra.csv"]["message"]
    assert [r["id"] for r in ws.rows("ns.o")] == [1]


def test_auto_table_evolves_with_new_columns(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "1.csv", b"id\n1\n")
    assert not ws.ingest(("bkt", "1.csv")).failed
    ws.put("bkt", "2.csv", b"id,extra\n2,x\n")
    assert not ws.ingest(("bkt", "2.csv")).failed
    assert sorted((r["id"], r["extra"]) for r in ws.rows("ns.o")) == [(1, None), (2, "x")]


ESCAPES = [
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_text('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "Permission Error"),
    ("SELECT * FROM glob('/*')", "Permission Error"),
    ("COPY (SELECT 1) TO '/tmp/lakeroute-escape.csv'", "exactly one SELECT"),
    ("ATTACH '/tmp/lakeroute-escape.db'", "exactly one SELECT"),
    ("INSTALL httpfs", "exactly one SELECT"),
    ("LOAD httpfs", "exactly one SELECT"),
    ("SET enable_external_access = true", "exactly one SELECT"),
    ("SELECT 1 AS id; SELECT * FROM read_csv('/etc/passwd')", "exactly one SELECT"),
    ("SELECT * FROM source; COPY (SELECT 1) TO '/tmp/lakeroute-escape.csv'", "exactly one SELECT"),
]


@pytest.mark.parametrize(("sql", "expected"), ESCAPES, ids=[s for s, _ in ESCAPES])
def test_route_sql_cannot_escape_its_source(ws: Workspace, sql: str, expected: str) -> None:
    import os

    ws.route("evil", {"bucket": "bkt"}, {"table": "ns.evil"}, sql)
    ws.put("bkt", "x.parquet", orders(1))
    report = ws.ingest(("bkt", "x.parquet"))
    [o] = report.failed
    assert o.status == "quarantined" and expected in o.message, o.message
    assert not ws.catalog().table_exists("ns.evil") or ws.rows("ns.evil") == []
    assert not os.path.exists("/tmp/lakeroute-escape.csv") and not os.path.exists("/tmp/lakeroute-escape.db")
