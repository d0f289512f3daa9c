"""The commit lane on moto's server: S3 -> SQS -> ingest handler (stages, hands off) -> SQS FIFO
(message group = table) -> commit handler (one snapshot per table), exactly once across crashes."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute import lane_handler
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment
from tests.support.catalogs import CATALOGS
from tests.support.moto_server import MotoServer

LANDING = ("lr-lane-land",)
DEPLOYMENT = Deployment(routes_table="lr-lane-routes", ledger_table="lr-lane-ledger",
                        warehouse_bucket="lr-lane-warehouse", quarantine_bucket="lr-lane-quarantine",
                        metrics_namespace="lakeroute-test")
ROUTES = {
    "orders.yaml": """
        name: orders
        source: {bucket: lr-lane-land, prefix: orders/}
        target: {table: lane.orders, columns: {order_id: long, amount: double, _source_key: string}}
        sql: SELECT order_id, amount, getvariable('source_key') AS _source_key FROM source
        """,
    "mor.yaml": """
        name: mor
        source: {bucket: lr-lane-land, prefix: mor/}
        target: {table: lane.mor, mode: upsert, key: [id], order_by: ts,
                 properties: {write.merge.mode: merge-on-read}}
        sql: SELECT id, ts, v FROM source
        """,
    "events.yaml": """
        name: events
        source: {bucket: lr-lane-land, prefix: events/}
        target: {table: lane.events, mode: upsert, key: [id], order_by: ts}
        sql: SELECT id, ts, v FROM source
        """,
}



class Lake(MotoLake):
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, deployment: Deployment = DEPLOYMENT) -> None:
        super().__init__(tmp, deployment, LANDING)
        self.ingest_url, arn = self.queue("lr-lane-ingest")
        self.notify(LANDING[0], arn)
        self.lane_url, _ = self.queue("lr-lane-commit.fifo", FifoQueue="true")
        self.lane_root = f"s3://{DEPLOYMENT.warehouse_bucket}/lane"
        monkeypatch.setenv("LAKEROUTE_LANE", self.lane_root)
        monkeypatch.setenv("LAKEROUTE_LANE_QUEUE", self.lane_url)
        monkeypatch.setenv("LAKEROUTE_COMMIT_DEFAULTS", json.dumps({"max_seconds": 0}))
        lambda_handler.reset_runtime()
        routes = tmp / "routes"
        routes.mkdir()
        for name, text in ROUTES.items():
            (routes / name).write_text(textwrap.dedent(text), encoding="utf-8")
        sync_aws(load_routes(routes), deployment.routes_table, deployment.warehouse)
        self.drain(self.ingest_url)  # moto's s3:TestEvent

    def put_orders(self, n: int, start: int = 0) -> None:
        for i in range(start, start + n):
            buf = io.BytesIO()
            pq.write_table(pa.table({"order_id": [i], "amount": [i * 1.5]}), buf)
            self.s3.put_object(Bucket=LANDING[0], Key=f"orders/{i}.parquet", Body=buf.getvalue())

    def ingest(self) -> dict[str, Any]:
        event = {"Records": self.drain(self.ingest_url, visibility=300)}
        return lambda_handler.handler(event, LambdaContext("ingest", 120_000))

    def lane_messages(self) -> list[dict[str, Any]]:
        return self.drain(self.lane_url, visibility=300)

    def commit(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        records = self.lane_messages() if records is None else records
        return lane_handler.handler({"Records": records}, LambdaContext("commit", 300_000))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.table(table).scan().to_arrow().to_pylist()

    def lane_keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=DEPLOYMENT.warehouse_bucket,
                                                          Prefix="lane/").get("Contents", [])]


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_kind: str) -> Iterator[Lake]:
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path, monkeypatch, deployment)


@CATALOGS
def test_ingest_stages_and_hands_off_then_one_commit_per_table(lake: Lake) -> None:
    lake.put_orders(12)
    assert lake.ingest() == {"batchItemFailures": []}
    assert lake.rows("lane.orders") == [], "staged, not yet visible"
    messages = lake.lane_messages()
    assert messages and all(m["attributes"]["MessageGroupId"] == "lane.orders" for m in messages)
    assert lake.commit(messages) == {"batchItemFailures": []}
    rows = lake.rows("lane.orders")
    assert sorted(r["order_id"] for r in rows) == list(range(12))
    assert len(list(lake.table("lane.orders").snapshots())) == 1
    assert lake.lane_keys() == [], "records and blobs removed after the commit"
    lake.put_orders(12)  # the same objects again: skipped at staging, nothing handed off
    assert lake.ingest() == {"batchItemFailures": []}
    assert lake.lane_messages() == [] and len(lake.rows("lane.orders")) == 12


def test_a_lost_signal_is_committed_with_the_next_one_and_a_duplicate_signal_is_harmless(lake: Lake) -> None:
    lake.put_orders(3)
    lake.ingest()
    lost = lake.lane_messages()  # as if never sent (a crash between the record and the message)
    assert lost
    for m in lost:
        lake.sqs.delete_message(QueueUrl=lake.lane_url, ReceiptHandle=m["receiptHandle"])
    lake.put_orders(2, start=100)
    lake.ingest()
    assert lake.commit() == {"batchItemFailures": []}
    assert sorted(r["order_id"] for r in lake.rows("lane.orders")) == [0, 1, 2, 100, 101]
    assert lake.commit(lost) == {"batchItemFailures": []}, "a late signal finds nothing to do"
    assert len(lake.rows("lane.orders")) == 5 and len(list(lake.table("lane.orders").snapshots())) == 1


@CATALOGS
def test_redelivered_ingest_message_is_staged_twice_and_committed_once(lake: Lake) -> None:
    lake.put_orders(4)
    event = {"Records": lake.drain(lake.ingest_url, visibility=300)}
    assert lambda_handler.handler(event, LambdaContext("a", 120_000)) == {"batchItemFailures": []}
    assert lambda_handler.handler(event, LambdaContext("b", 120_000)) == {"batchItemFailures": []}
    assert lake.commit() == {"batchItemFailures": []}
    assert sorted(r["order_id"] for r in lake.rows("lane.orders")) == [0, 1, 2, 3]
    if lake.deployment.catalog == "s3tables":
        return  # its storage lists and deletes nothing: S3 Tables remove the unreferenced files
    referenced = {t.file.file_path for t in lake.table("lane.orders").scan().plan_files()}
    listed = {f"s3://{DEPLOYMENT.warehouse_bucket}/{o['Key']}" for o in lake.s3.list_objects_v2(
        Bucket=DEPLOYMENT.warehouse_bucket).get("Contents", []) if o["Key"].endswith(".parquet")}
    assert listed == referenced, "the second staging's data files were deleted"


@CATALOGS
def test_committer_killed_after_its_catalog_commit_commits_nothing_twice(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakeroute.aws.lane import S3Lane

    lake.put_orders(5)
    lake.ingest()
    messages = lake.lane_messages()

    real_remove, crash = S3Lane.remove, [True]

    def remove(self: S3Lane, table: str, handoff_id: str) -> None:
        if crash[0]:
            raise RuntimeError("killed after the catalog commit")
        real_remove(self, table, handoff_id)

    monkeypatch.setattr(S3Lane, "remove", remove)
    monkeypatch.setattr(lane_handler, "RETRY_SECONDS", 0)
    assert lake.commit(messages)["batchItemFailures"], "the invocation failed: SQS redelivers"
    assert len(lake.rows("lane.orders")) == 5
    again = lake.lane_messages()
    assert {m["messageId"] for m in again} == {m["messageId"] for m in messages}, \
        "back after RETRY_SECONDS, not after the queue's visibility timeout"
    crash[0] = False
    assert lake.commit(again) == {"batchItemFailures": []}
    assert sorted(r["order_id"] for r in lake.rows("lane.orders")) == [0, 1, 2, 3, 4]
    assert lake.lane_keys() == []
    assert len(lake.table("lane.orders").scan().to_arrow()) == 5, "every data file still readable"


@CATALOGS
def test_upsert_through_the_lane_keeps_the_newest_row_per_key(lake: Lake) -> None:
    for i, ts in enumerate([3, 1, 2]):
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": [1, 2], "ts": [ts, ts], "v": [f"v{ts}", f"v{ts}"]}), buf)
        lake.s3.put_object(Bucket=LANDING[0], Key=f"events/{i}.parquet", Body=buf.getvalue())
    assert lake.ingest() == {"batchItemFailures": []}
    assert lake.commit() == {"batchItemFailures": []}
    assert sorted((r["id"], r["v"]) for r in lake.rows("lane.events")) == [(1, "v3"), (2, "v3")]


@CATALOGS
def test_merge_on_read_upsert_through_the_lane_writes_position_deletes_to_s3(lake: Lake) -> None:
    """Merge-on-read on the AWS path: the delete files land in the warehouse bucket through the
    catalog's FileIO, and the catalog's reader applies them."""
    signals: list[dict[str, Any]] = []
    for i, (ids, ts) in enumerate([(range(100), 1), (range(0, 100, 3), 2)]):
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": list(ids), "ts": [ts] * len(ids), "v": [f"v{ts}"] * len(ids)}), buf)
        lake.s3.put_object(Bucket=LANDING[0], Key=f"mor/{i}.parquet", Body=buf.getvalue())
        assert lake.ingest() == {"batchItemFailures": []}
        # the FIFO queue may drop the second signal as a duplicate: a signal only wakes the
        # committer, which commits whatever waits for the table
        signals = lake.lane_messages() or signals
        assert lake.commit(signals) == {"batchItemFailures": []}
        assert lake.lane_keys() == []
    want = sorted((i, "v2" if i % 3 == 0 else "v1") for i in range(100))
    assert sorted((r["id"], r["v"]) for r in lake.rows("lane.mor")) == want
    deletes = lake.table("lane.mor").inspect.delete_files().to_pylist()
    assert len(deletes) == 1 and deletes[0]["file_path"].startswith("s3://")
    assert deletes[0]["record_count"] == 34
