"""The reconcile sweep on a moto server: a notification deliberately dropped is found by the
sweep, enqueued as an S3 notification, landed by the handler, and found no more."""

from __future__ import annotations

import io
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute import sweep as lambda_sweep
from lakeroute.aws.sweep import SWEEP_PK
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment, s3_notification
from tests.support.catalogs import CATALOGS
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

LANDING = "sweep-landing"
DEPLOYMENT = Deployment(routes_table="sweep-routes", ledger_table="sweep-ledger", warehouse_bucket="sweep-wh",
                        quarantine_bucket="sweep-quarantine", metrics_namespace="lakeroute-sweep")
ROUTE = """
    name: orders
    source: {bucket: sweep-landing, prefix: orders/, exclude: ["*.tmp"]}
    target: {table: sweep.orders}
    sql: SELECT id, getvariable('source_key') AS _source_key FROM source
    """


def parquet(start: int, rows: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(range(start, start + rows), pa.int64())}), buf)
    return buf.getvalue()



class Lake(MotoLake):
    def __init__(self, tmp: Path, deployment: Deployment = DEPLOYMENT) -> None:
        super().__init__(tmp, deployment, [LANDING])
        self.queue_url, _ = self.queue("sweep-ingest")
        routes_dir = tmp / "routes"
        routes_dir.mkdir()
        (routes_dir / "orders.yaml").write_text(textwrap.dedent(ROUTE), encoding="utf-8")
        sync_aws(load_routes(routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)

    def keys(self, table: str) -> list[str]:
        return sorted(r["_source_key"] for r in self.table(table).scan().to_arrow().to_pylist())


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_kind: str) -> Iterator[Lake]:
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path, deployment)


@pytest.fixture
def sweep_env(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEROUTE_INGEST_QUEUE_URL", lake.queue_url)
    monkeypatch.setenv("LAKEROUTE_SWEEP_SETTLE_SECONDS", "0")


def run_sweep() -> dict[str, Any]:
    return lambda_sweep.handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                LambdaContext("req-sweep", 120_000))


@CATALOGS
def test_dropped_notification_is_swept_in_once(lake: Lake, sweep_env: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    keys = [f"orders/part-{i}.parquet" for i in range(3)]
    notifications = []
    for i, key in enumerate(keys):
        body = parquet(10 * i, 3)
        put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
        notifications.append(s3_notification(LANDING, key, put, len(body)))
    lake.s3.put_object(Bucket=LANDING, Key="orders/upload.tmp", Body=b"partial")  # excluded
    lake.s3.put_object(Bucket=LANDING, Key="elsewhere/x.parquet", Body=parquet(0, 1))  # no route
    dropped = keys[1]
    for n in (notifications[0], notifications[2]):  # the middle one is lost
        lambda_handler.handler(n, LambdaContext("req-direct", 120_000))
    landed_before = set(lake.keys("sweep.orders"))
    assert landed_before == {keys[0], keys[2]}

    first = run_sweep()
    records = lake.drain(lake.queue_url)
    sent = [json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in records]
    assert (first["swept"], first["enqueued"]) == (3, 1)
    assert sent == [dropped], "exactly the object whose notification was dropped"
    assert lambda_handler.handler({"Records": records}, LambdaContext("req-sqs", 120_000)) == {
        "batchItemFailures": []}
    assert set(lake.keys("sweep.orders")) == set(keys) and len(lake.keys("sweep.orders")) == 9

    watermark = lake.ddb.get_item(TableName=DEPLOYMENT.ledger_table,
                                  Key={"pk": {"S": SWEEP_PK}, "sk": {"S": f"{LANDING}/orders/"}})
    assert "listed_until" in watermark["Item"]
    second = run_sweep()
    assert (second["swept"], second["enqueued"]) == (3, 0), "the overlap lists them again, none is missing"
    assert not lake.drain(lake.queue_url)
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"ObjectsSwept"' in line]
    assert [(d["ObjectsSwept"], d["ObjectsEnqueued"]) for d in emf] == [([3.0], [1.0]), ([3.0], [0.0])]
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in emf} == {lambda_handler.metrics.namespace}
    with capsys.disabled():
        print(f"\nsweep 1: swept {first['swept']}, enqueued {first['enqueued']} ({sent}); "
              f"sweep 2: swept {second['swept']}, enqueued {second['enqueued']}")


def test_versioned_bucket_is_checked_by_version_id(lake: Lake, sweep_env: None) -> None:
    lake.s3.put_bucket_versioning(Bucket=LANDING, VersioningConfiguration={"Status": "Enabled"})
    keys = ["orders/v-0.parquet", "orders/v-1.parquet"]
    notes = []
    for i, key in enumerate(keys):
        body = parquet(100 + i, 2)
        put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
        notes.append(s3_notification(LANDING, key, put, len(body)))
    lambda_handler.handler(notes[0], LambdaContext("req-v", 120_000))
    result = run_sweep()
    records = lake.drain(lake.queue_url)
    obj = json.loads(records[0]["body"])["Records"][0]["s3"]["object"]
    assert (result["swept"], result["enqueued"], obj["key"]) == (2, 1, keys[1])
    assert obj["versionId"] == notes[1]["Records"][0]["s3"]["object"]["versionId"]
    lambda_handler.handler({"Records": records}, LambdaContext("req-v2", 120_000))
    assert run_sweep()["enqueued"] == 0


def test_a_replace_table_is_checked_by_upload(lake: Lake, sweep_env: None, tmp_path: Path) -> None:
    """Mode replace records the upload (ETag + LastModified): the sweep names it from the
    listing as the handler does from its HEAD, so what landed is not sent again, and a revert
    (v1's bytes uploaded again) whose notification was lost is."""
    (tmp_path / "routes" / "exports.yaml").write_text(textwrap.dedent("""
        name: exports
        source: {bucket: sweep-landing, prefix: exports/}
        target: {table: sweep.exports, mode: replace}
        sql: SELECT id, getvariable('source_key') AS _source_key FROM source
        """), encoding="utf-8")
    sync_aws(load_routes(tmp_path / "routes"), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)
    key, v1, v2 = "exports/a.parquet", parquet(0, 2), parquet(50, 1)
    modified = []
    for body, notify in ((v1, True), (v2, True), (v1, False)):  # the revert's notification is lost
        while True:  # each upload in its own second: LastModified has no finer grain
            put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
            head = lake.s3.head_object(Bucket=LANDING, Key=key)
            if not modified or head["LastModified"] != modified[-1]:
                break
            time.sleep(0.3)
        modified.append(head["LastModified"])
        if notify:
            lambda_handler.handler(s3_notification(LANDING, key, put, len(body)), LambdaContext("req-r", 120_000))
            if body is v2:
                assert run_sweep()["enqueued"] == 0, "landed: held under its upload"
    ids = lambda: sorted(r["id"] for r in lake.table("sweep.exports").scan().to_arrow().to_pylist())  # noqa: E731
    assert ids() == [50]
    result = run_sweep()
    records = lake.drain(lake.queue_url)
    assert result["enqueued"] == 1 and [json.loads(r["body"])["Records"][0]["s3"]["object"]["key"]
                                        for r in records] == [key]
    assert lambda_handler.handler({"Records": records}, LambdaContext("req-r2", 120_000)) == {"batchItemFailures": []}
    assert ids() == [0, 1]
    assert run_sweep()["enqueued"] == 0


def test_missing_queue_url_is_named(lake: Lake) -> None:
    from lakeroute.core.errors import ConfigError

    with pytest.raises(ConfigError, match="LAKEROUTE_INGEST_QUEUE_URL"):
        run_sweep()


def test_a_stack_owned_bucket_is_swept_whole_and_an_unrouted_key_sent_once(
        lake: Lake, sweep_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 (6): a key no route takes in a bucket the stack created is sent once (its
    notification lost too, here), quarantined "no route" by the handler, and not sent again
    while the quarantine holds it; ignored and excluded keys are never sent."""
    monkeypatch.setenv("LAKEROUTE_OWNED_BUCKETS", f" {LANDING} ,")
    lake.s3.put_object(Bucket=LANDING, Key="orders/a.parquet", Body=parquet(0, 2))
    lake.s3.put_object(Bucket=LANDING, Key="order/misplaced.parquet", Body=parquet(5, 1))  # no route
    lake.s3.put_object(Bucket=LANDING, Key="orders/upload.tmp", Body=b"partial")  # excluded
    lake.s3.put_object(Bucket=LANDING, Key="_temporary/0/x.parquet", Body=b"x")  # built-in ignore

    first = run_sweep()
    records = lake.drain(lake.queue_url)
    sent = sorted(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in records)
    assert sent == ["order/misplaced.parquet", "orders/a.parquet"]
    assert (first["swept"], first["enqueued"], first["unrouted"]) == (1, 2, 1)
    assert lambda_handler.handler({"Records": records}, LambdaContext("req-sqs", 120_000)) == {
        "batchItemFailures": []}, "the unrouted key is quarantined and acknowledged"
    quarantined = [o["Key"] for o in lake.s3.list_objects_v2(Bucket=DEPLOYMENT.quarantine_bucket)["Contents"]
                   if o["Key"].endswith("/error.json")]
    (record_key,) = quarantined
    record = json.loads(lake.s3.get_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=record_key)["Body"].read())
    assert record["key"] == "order/misplaced.parquet" and record["message"].startswith(
        f"no route for {LANDING}/order/misplaced.parquet; ")

    watermark = lake.ddb.get_item(TableName=DEPLOYMENT.ledger_table,
                                  Key={"pk": {"S": SWEEP_PK}, "sk": {"S": f"{LANDING}/"}})
    assert "listed_until" in watermark["Item"], "the whole bucket is listed"
    second = run_sweep()
    assert (second["swept"], second["enqueued"], second["unrouted"]) == (1, 0, 0), "held by the quarantine"
    assert not lake.drain(lake.queue_url)
