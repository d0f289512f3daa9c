"""End to end on a moto server: S3 put -> S3 notification -> SQS -> handler -> Iceberg on Glue.

The notifications are moto's own (bucket notification configuration to the queue, including
the s3:TestEvent it sends on configuration); the handler gets them as Lambda's SQS event
source would (receive_message -> Lambda record shape). Tables are read back through the Glue
catalog.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment, s3_notification
from tests.support.catalogs import CATALOGS
from tests.support.moto_server import MotoServer
from tests.support.patience import patience

pytestmark = pytest.mark.slow

ROUTES_TABLE = "lr-routes"
REFERENCE_TABLE = "lr-reference"
QUARANTINE_BUCKET = "lr-quarantine"
LANDING = ("lr-sales", "lr-iot", "lr-events", "lr-legacy")
DEPLOYMENT = Deployment(routes_table=ROUTES_TABLE, ledger_table="lr-ledger", reference_table=REFERENCE_TABLE,
                        warehouse_bucket="lr-warehouse", quarantine_bucket=QUARANTINE_BUCKET,
                        metrics_namespace="lakeroute-test")
WAREHOUSE = DEPLOYMENT.warehouse

ROUTES = {
    "sales-orders.yaml": """
        name: sales-orders
        source: {bucket: lr-sales, prefix: orders/, pattern: "*.parquet"}
        target:
          table: sales.orders
          partition_by: ["day(order_ts)"]
          columns: {order_id: long, amount: "decimal(12,2)", order_ts: timestamptz, _source_key: string}
        sql: |
          SELECT order_id, amount, order_ts, getvariable('source_key') AS _source_key FROM source
        """,
    "sales-refunds.yaml": """
        name: sales-refunds
        source: {bucket: lr-sales, prefix: refunds/, format: csv, options: {delim: ";", header: true}}
        target: {table: sales.refunds}
        sql: |
          SELECT CAST(refund_id AS BIGINT) AS refund_id, reason, getvariable('source_key') AS _source_key
          FROM source
        """,
    "web-events.yaml": """
        name: web-events
        source: {bucket: lr-events, format: json}
        target: {table: web.events, columns: {event_id: string, user_id: long, _source_key: string}}
        sql: SELECT event_id, user_id, getvariable('source_key') AS _source_key FROM source
        """,
    "iot-temperature.yaml": """
        name: iot-temperature
        source: {bucket: lr-iot, prefix: readings/, metadata: {sensor_type: temperature}}
        target: {table: iot.temperature, columns: {device_id: string, celsius: double, _source_key: string}}
        sql: SELECT device_id, value AS celsius, getvariable('source_key') AS _source_key FROM source
        """,
    "iot-humidity.yaml": """
        name: iot-humidity
        source: {bucket: lr-iot, prefix: readings/, metadata: {sensor_type: humidity}}
        target: {table: iot.humidity, columns: {device_id: string, humidity: double, _source_key: string}}
        sql: SELECT device_id, value AS humidity, getvariable('source_key') AS _source_key FROM source
        """,
}


# ---------------------------------------------------------------- fixtures



@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_kind: str) -> Iterator[Lake]:
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch) as env:
        yield Lake(tmp_path, env, deployment)


class Lake(MotoLake):
    """The AWS side of one test: buckets, tables, queue, and helpers to drive the handler."""

    def __init__(self, tmp: Path, env: dict[str, str], deployment: Deployment = DEPLOYMENT) -> None:
        super().__init__(tmp, deployment, LANDING)
        self.env = env
        self.queue_url, self.queue_arn = self.queue("lr-ingest")
        for bucket in LANDING:
            self.notify(bucket, self.queue_arn)
        self.routes_dir = tmp / "routes"
        self.routes_dir.mkdir()
        for name, text in ROUTES.items():
            (self.routes_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")

    def sync(self) -> list[str]:
        return sync_aws(load_routes(self.routes_dir), ROUTES_TABLE, WAREHOUSE)

    def put(self, bucket: str, key: str, body: bytes, **kwargs: Any) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)

    def receive(self) -> dict[str, Any]:
        """Every queued message, as the Lambda SQS event source hands it to the function."""
        return {"Records": self.drain(self.queue_url, visibility=300)}

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return lambda_handler.handler(event, LambdaContext("req-1", 120_000))

    def rows(self, table: str) -> list[dict[str, Any]]:
        data = self.table(table).scan().to_arrow()
        return sorted(data.to_pylist(), key=lambda r: [str(v) for v in r.values()])

    def snapshots(self, table: str) -> list[Any]:
        return list(self.table(table).snapshots())

    def quarantined(self) -> dict[str, bytes]:
        listing = self.s3.list_objects_v2(Bucket=QUARANTINE_BUCKET).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=QUARANTINE_BUCKET, Key=o["Key"])["Body"].read()
                for o in listing}

    def records(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Original key -> (entry prefix, error record) of every quarantine entry."""
        out = {}
        for key, body in self.quarantined().items():
            if key.endswith("/error.json"):
                record = json.loads(body)
                out[record["key"]] = (key.removesuffix("error.json"), record)
        return out


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def orders(*ids: int) -> bytes:
    return parquet(pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "amount": pa.array([f"{i}.50" for i in ids]).cast(pa.decimal128(12, 2)),
        "order_ts": pa.array([f"2026-11-0{1 + i % 2}T10:00:00+00:00" for i in ids]).cast(
            pa.timestamp("us", tz="UTC")),
    }))


def readings(value: float, metadata: dict[str, str] | None = None) -> bytes:
    table = pa.table({"device_id": ["d1", "d2"], "value": [value, value + 1]})
    return parquet(table.replace_schema_metadata(metadata) if metadata else table)


def message_for(event: dict[str, Any], key_fragment: str) -> str:
    return next(r["messageId"] for r in event["Records"] if key_fragment in r["body"])


# ---------------------------------------------------------------- tests


QUOTED_KEY = "orders/2026 11/it's \"here\".parquet"


@CATALOGS
def test_sqs_batch_end_to_end(lake: Lake) -> None:
    lines = lake.sync()
    assert "added route sales-orders (s3://lr-sales/orders/ -> sales.orders)" in lines
    assert "created table sales.orders" in lines
    lake.ddb.put_item(TableName=REFERENCE_TABLE, Item={
        "PartitionKey": {"S": "clicks"}, "target_table": {"S": "legacy.clicks"},
        "query_sql": {"S": "SELECT id, '{s3_input_path}' AS src FROM read_parquet('{s3_input_path}')"}})

    lake.put("lr-sales", "orders/2026-11-01/part-1.parquet", orders(1, 2, 3))
    lake.put("lr-sales", QUOTED_KEY, orders(4, 5))
    lake.put("lr-sales", "orders/broken.parquet", b"this is not parquet")
    lake.put("lr-sales", "refunds/r1.csv", b"refund_id;reason\n7;damaged\n8;late\n")
    lake.put("lr-events", "2026/11/01/events 1.json",
             b'{"event_id": "e1", "user_id": 1}\n{"event_id": "e2", "user_id": 2}\n')
    lake.put("lr-iot", "readings/t1.parquet", readings(20.5), Metadata={"sensor_type": "temperature"})
    lake.put("lr-iot", "readings/h1.parquet", readings(55.0, {"sensor_type": "humidity"}))
    lake.put("lr-legacy", "clicks/o'brien+1.parquet", parquet(pa.table({"id": [10, 11]})))

    event = lake.receive()
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    assert sum(1 for b in bodies if b.get("Event") == "s3:TestEvent") == len(LANDING)
    assert len(event["Records"]) == len(LANDING) + 8

    response = lake.invoke(event)

    poison = message_for(event, "broken.parquet")
    assert response == {"batchItemFailures": [{"itemIdentifier": poison}]}

    assert [(r["order_id"], r["_source_key"]) for r in lake.rows("sales.orders")] == [
        (1, "orders/2026-11-01/part-1.parquet"), (2, "orders/2026-11-01/part-1.parquet"),
        (3, "orders/2026-11-01/part-1.parquet"), (4, QUOTED_KEY), (5, QUOTED_KEY)]
    assert lake.rows("sales.refunds") == [
        {"refund_id": 7, "reason": "damaged", "_source_key": "refunds/r1.csv"},
        {"refund_id": 8, "reason": "late", "_source_key": "refunds/r1.csv"}]
    assert lake.rows("web.events") == [
        {"event_id": "e1", "user_id": 1, "_source_key": "2026/11/01/events 1.json"},
        {"event_id": "e2", "user_id": 2, "_source_key": "2026/11/01/events 1.json"}]
    # metadata routing: S3 user metadata for one object, Parquet key-value metadata for the other
    assert [r["celsius"] for r in lake.rows("iot.temperature")] == [20.5, 21.5]
    assert [r["humidity"] for r in lake.rows("iot.humidity")] == [55.0, 56.0]
    # reference-design item (folder routing on the first segment), path bound as a value
    assert lake.rows("legacy.clicks") == [
        {"id": 10, "src": "s3://lr-legacy/clicks/o'brien+1.parquet"},
        {"id": 11, "src": "s3://lr-legacy/clicks/o'brien+1.parquet"}]

    # group commit: the two good order files are one snapshot naming both sources
    (snapshot,) = lake.snapshots("sales.orders")
    sources = json.loads(snapshot.summary.additional_properties["lakeroute.sources"])
    assert sorted(s.split("@")[0] for s in sources) == [
        "lr-sales/orders/2026 11/it's \"here\".parquet", "lr-sales/orders/2026-11-01/part-1.parquet"]

    # the poison object: copied to quarantine beside its error record
    quarantined = lake.quarantined()
    [(entry, record)] = lake.records().values()
    assert entry.startswith("quarantine/lr-sales/orders/broken.parquet/~v=")
    assert set(quarantined) == {entry + "object.parquet", entry + "error.json"}
    assert quarantined[entry + "object.parquet"] == b"this is not parquet"
    assert (record["bucket"], record["key"], record["route"], record["stage"], record["attempts"]) == (
        "lr-sales", "orders/broken.parquet", "sales-orders", "read", 1)
    assert "lr-sales/orders/broken.parquet" in record["message"]
    assert "lakeroute-objects" not in record["message"]  # not the downloaded temp file

    # SQS redelivers the batch (or S3 sends duplicates): nothing is added, the poison fails again
    counts = {t: len(lake.snapshots(t)) for t in ("sales.orders", "sales.refunds", "web.events",
                                                   "iot.temperature", "iot.humidity", "legacy.clicks")}
    before = lake.s3.head_object(Bucket=QUARANTINE_BUCKET, Key=entry + "object.parquet")
    assert lake.invoke(event) == {"batchItemFailures": [{"itemIdentifier": poison}]}
    assert {t: len(lake.snapshots(t)) for t in counts} == counts
    assert len(lake.rows("sales.orders")) == 5
    after = lake.s3.head_object(Bucket=QUARANTINE_BUCKET, Key=entry + "object.parquet")
    assert after["LastModified"] == before["LastModified"]  # not copied again
    assert lake.records()["orders/broken.parquet"][1]["attempts"] == 2


@CATALOGS
def test_new_version_is_ingested_and_duplicates_within_a_batch_are_not(lake: Lake) -> None:
    lake.sync()
    lake.put("lr-sales", "orders/a.parquet", orders(1))
    first = lake.receive()
    assert lake.invoke(first) == {"batchItemFailures": []}

    lake.put("lr-sales", "orders/a.parquet", orders(2))  # same key, new content: new version
    second = lake.receive()
    doubled = {"Records": second["Records"] * 2}  # the same message twice in one batch
    assert lake.invoke(doubled) == {"batchItemFailures": []}
    assert [(r["order_id"], r["_source_key"]) for r in lake.rows("sales.orders")] == [
        (1, "orders/a.parquet"), (2, "orders/a.parquet")]
    assert len(lake.snapshots("sales.orders")) == 2


def test_versioned_bucket_ingests_each_announced_version_once(lake: Lake) -> None:
    lake.sync()
    lake.s3.put_bucket_versioning(Bucket="lr-sales", VersioningConfiguration={"Status": "Enabled"})
    key = "orders/v 1+(x).parquet"
    puts = [lake.s3.put_object(Bucket="lr-sales", Key=key, Body=orders(i)) for i in (1, 2)]
    for put, i in zip(puts, (1, 2), strict=True):
        body = s3_notification("lr-sales", key, put, len(orders(i)))
        lake.sqs.send_message(QueueUrl=lake.queue_url, MessageBody=json.dumps(body))
    # moto's own notifications (no versionId: the latest version) plus the two built ones
    event = lake.receive()
    assert len(event["Records"]) == len(LANDING) + 4  # + the s3:TestEvents of the set-up
    assert lake.invoke(event) == {"batchItemFailures": []}
    assert [(r["order_id"], r["_source_key"]) for r in lake.rows("sales.orders")] == [(1, key), (2, key)]
    (snapshot,) = lake.snapshots("sales.orders")
    sources = json.loads(snapshot.summary.additional_properties["lakeroute.sources"])
    assert sorted(sources) == sorted(f"lr-sales/{key}@{p['VersionId']}" for p in puts)


@CATALOGS
def test_unroutable_object_is_quarantined_once_and_not_failed_back(lake: Lake) -> None:
    """A poison object is failed back (LAKEROUTE_FAIL_QUARANTINED, the default); an object no
    route takes is not: every retry would find the same routes, it would only reach the DLQ."""
    lake.sync()
    lake.put("lr-sales", "misc/notes.csv", b"a\n1\n")
    lake.put("lr-sales", "order/a.parquet", orders(1))  # orders/ misspelt
    lake.put("lr-sales", "orders/broken.parquet", b"not parquet")
    event = lake.receive()
    assert lake.invoke(event) == {"batchItemFailures": [{"itemIdentifier": message_for(event, "broken")}]}
    records = lake.records()
    _, record = records["misc/notes.csv"]
    assert record["stage"] == "route" and record["message"].startswith("no route for lr-sales/misc/notes.csv; ")
    _, record = records["order/a.parquet"]
    assert record["message"].startswith("no route for lr-sales/order/a.parquet; "), record["message"]
    assert "sales-orders" in record["message"] and "orders/" in record["message"], record["message"]
    assert (record["attempts"], record["object_copied"]) == (1, True)


def test_httpfs_reader(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEROUTE_READER", "httpfs")
    lake.sync()
    lake.put("lr-sales", "orders/2026 11/x'y.parquet", orders(9))
    assert lake.invoke(lake.receive()) == {"batchItemFailures": []}
    assert [(r["order_id"], r["_source_key"]) for r in lake.rows("sales.orders")] == [
        (9, "orders/2026 11/x'y.parquet")]


def test_misconfigured_environment_fails_with_every_problem(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakeroute.core.errors import ConfigError

    monkeypatch.delenv("LAKEROUTE_LEDGER_TABLE")
    monkeypatch.setenv("LAKEROUTE_WAREHOUSE", "lr-warehouse/wh")
    lake.put("lr-events", "x.json", b'{"event_id": "e", "user_id": 1}\n')
    with pytest.raises(ConfigError) as e:
        lake.invoke(lake.receive())
    assert "LAKEROUTE_LEDGER_TABLE is not set" in str(e.value)
    assert "LAKEROUTE_WAREHOUSE='lr-warehouse/wh' must be s3://bucket/prefix" in str(e.value)


def test_cli_sync_pushes_routes_and_removes_stale_ones(lake: Lake) -> None:
    env = {**os.environ, **lake.env}
    cmd = [sys.executable, "-m", "lakeroute.cli", "--routes", str(lake.routes_dir), "sync"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=patience(120))
    assert first.returncode == 0, first.stderr
    assert "added route web-events (s3://lr-events/ -> web.events)" in first.stdout
    assert "created table iot.humidity" in first.stdout

    (lake.routes_dir / "iot-humidity.yaml").unlink()
    lines = lake.sync()
    assert "removed route iot-humidity (bucket lr-iot)" in lines
    assert "4 routes unchanged in lr-routes" in lines
    assert "table iot.humidity no longer has a route; kept — `lakeroute reset iot.humidity --yes` to drop" in lines
    items = lake.ddb.scan(TableName=ROUTES_TABLE)["Items"]
    # The routes, and the routes-version item warm functions check (aws.route_store).
    assert sorted(i["name"]["S"] for i in items) == [
        "#version", "iot-temperature", "sales-orders", "sales-refunds", "web-events"]


@CATALOGS
def test_upsert_with_deletes_and_replace_through_the_handler_on_glue_and_s3(lake: Lake) -> None:
    """The write modes on the AWS adapters: files planned and rewritten through S3 FileIO,
    commits on Glue, the DynamoDB ledger skipping a redelivery."""
    (lake.routes_dir / "contacts-cdc.yaml").write_text(textwrap.dedent("""
        name: contacts-cdc
        source: {bucket: lr-events, prefix: cdc/, format: parquet}
        target: {table: web.contacts, mode: upsert, key: [id], order_by: ts,
                 operation: {column: op, delete: [D]}}
        sql: SELECT id, ts, op, v FROM source
        """), encoding="utf-8")
    (lake.routes_dir / "items-export.yaml").write_text(textwrap.dedent("""
        name: items-export
        source: {bucket: lr-events, prefix: exp/, format: parquet}
        target: {table: web.items, mode: replace}
        """), encoding="utf-8")
    lake.sync()

    def cdc(rows: list[tuple[int, int, str, str | None]]) -> bytes:
        return parquet(pa.table({"id": [r[0] for r in rows], "ts": [r[1] for r in rows],
                                 "op": [r[2] for r in rows], "v": pa.array([r[3] for r in rows], pa.string())}))

    lake.put("lr-events", "cdc/1.parquet", cdc([(1, 1, "I", "a"), (2, 1, "I", "b"), (3, 1, "I", "c")]))
    lake.put("lr-events", "exp/a.parquet", parquet(pa.table({"n": [1, 2, 3]})))
    assert lake.invoke(lake.receive()) == {"batchItemFailures": []}
    lake.put("lr-events", "cdc/2.parquet", cdc([(1, 0, "U", "stale"), (2, 2, "D", None), (3, 2, "U", "c2")]))
    lake.put("lr-events", "exp/a.parquet", parquet(pa.table({"n": [9]})))  # a corrected re-export
    event = lake.receive()
    assert lake.invoke(event) == {"batchItemFailures": []}
    assert lake.invoke(event) == {"batchItemFailures": []}  # redelivered: nothing changes
    assert [(r["id"], r["v"]) for r in lake.rows("web.contacts")] == [(1, "a"), (3, "c2")]
    assert [(r["n"], r["_lakeroute_object"]) for r in lake.rows("web.items")] == [(9, "lr-events/exp/a.parquet")]
    assert len(lake.snapshots("web.contacts")) == 2 and len(lake.snapshots("web.items")) == 2
    # id 2's update of ts 1 arrives after its delete (ts 2): the tombstone, a file in the
    # table's storage named by a table property, keeps it out; ts 3 brings it back
    contacts = lake.table("web.contacts")
    tombstones = contacts.properties["lakeroute.tombstones"]
    assert tombstones.startswith(contacts.location() + "/metadata/") and tombstones.endswith(".parquet")
    if lake.deployment.catalog == "glue":
        assert tombstones.startswith("s3://lr-warehouse/")
    bucket, _, key = tombstones.removeprefix("s3://").partition("/")
    assert pq.read_table(io.BytesIO(lake.s3.get_object(Bucket=bucket, Key=key)["Body"].read())).num_rows == 1
    lake.put("lr-events", "cdc/3.parquet", cdc([(2, 1, "U", "late")]))
    assert lake.invoke(lake.receive()) == {"batchItemFailures": []}
    assert [(r["id"], r["v"]) for r in lake.rows("web.contacts")] == [(1, "a"), (3, "c2")]
    lake.put("lr-events", "cdc/4.parquet", cdc([(2, 3, "I", "back")]))
    assert lake.invoke(lake.receive()) == {"batchItemFailures": []}
    assert [(r["id"], r["v"]) for r in lake.rows("web.contacts")] == [(1, "a"), (2, "back"), (3, "c2")]
    assert "lakeroute.tombstones" not in lake.table("web.contacts").properties


@CATALOGS
def test_the_latest_upload_of_a_key_wins_and_a_redelivered_event_is_skipped(lake: Lake) -> None:
    """Unversioned bucket: v1 -> v2 -> v1 (the same bytes, so the same ETag) in mode replace
    lands v1 again, named by its LastModified; the same event delivered again, or an older
    event of the key, changes nothing; append skips identical content uploaded again."""
    (lake.routes_dir / "items-export.yaml").write_text(textwrap.dedent("""
        name: items-export
        source: {bucket: lr-events, prefix: exp/, format: parquet}
        target: {table: web.items, mode: replace}
        """), encoding="utf-8")
    lake.sync()
    v1, v2 = parquet(pa.table({"n": [1, 2]})), parquet(pa.table({"n": [7]}))
    events, modified = [], []
    for body in (v1, v2, v1):
        while True:  # each upload in its own second: LastModified has no finer grain
            lake.put("lr-events", "exp/a.parquet", body)
            head = lake.s3.head_object(Bucket="lr-events", Key="exp/a.parquet")
            if not modified or head["LastModified"] != modified[-1]:
                break
            time.sleep(0.3)
        modified.append(head["LastModified"])
        events.append(lake.receive())
        assert lake.invoke(events[-1]) == {"batchItemFailures": []}
    assert [r["n"] for r in lake.rows("web.items")] == [1, 2]
    sources = [json.loads(s.summary.additional_properties["lakeroute.sources"])[0] for s in lake.snapshots("web.items")]
    etag = head["ETag"].strip('"')
    assert sources[0].startswith(f"lr-events/exp/a.parquet@{etag}#") and sources[2].startswith(
        f"lr-events/exp/a.parquet@{etag}#") and sources[0] != sources[2], sources
    for again in (events[2], events[0]):  # the same event redelivered; a stale one of v1's first upload
        assert lake.invoke(again) == {"batchItemFailures": []}
    assert len(lake.snapshots("web.items")) == 3 and [r["n"] for r in lake.rows("web.items")] == [1, 2]

    line = b'{"event_id": "e1", "user_id": 1}\n'
    for _ in range(2):  # append: identical content uploaded twice
        lake.put("lr-events", "e.json", line)
        assert lake.invoke(lake.receive()) == {"batchItemFailures": []}
    assert [r["event_id"] for r in lake.rows("web.events")] == ["e1"]
