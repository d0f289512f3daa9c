"""A removed route is handled once (issue 22, point 7), on a moto server.

- The warm route cache follows the routing table: the sync writes a routes-version item, the
  store reads it once per batch and drops its cached routes when it changed; without that
  item the cache's ttl is the bound (an injected clock, no sleeps).
- Through the real handler on real S3 event JSON: after the route is removed (the sync of a
  route set without it), an in-flight object of that route is quarantined "no route" once,
  acknowledged (not failed back to the queue, so never to the DLQ) and counted; its table
  and its rows are kept.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute.aws.route_store import ROUTES_VERSION_BUCKET, ROUTES_VERSION_NAME, DynamoRouteStore
from lakeroute.aws.route_sync import sync_route_items
from lakeroute.core.errors import NoRouteError
from lakeroute.core.pipeline import ObjectRef
from lakeroute.core.routes import Route, load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, dynamodb_table, handler_environment
from tests.support.moto_server import MotoServer

ROUTES_TABLE = "lr-routes"
DEPLOYMENT = Deployment(routes_table=ROUTES_TABLE, ledger_table="lr-ledger", warehouse_bucket="lr-warehouse",
                        quarantine_bucket="lr-quarantine", metrics_namespace="lakeroute-test")
ORDERS = """
    name: sales-orders
    source: {bucket: lr-sales, prefix: orders/, pattern: "*.parquet"}
    target: {table: sales.orders, columns: {order_id: long}}
    sql: SELECT order_id FROM source
    """
REFUNDS = """
    name: sales-refunds
    source: {bucket: lr-sales, prefix: refunds/, format: csv}
    target: {table: sales.refunds, columns: {refund_id: long}}
    sql: SELECT CAST(refund_id AS BIGINT) AS refund_id FROM source
    """


def _route(name: str, prefix: str) -> Route:
    return Route.model_validate({"name": name, "source": {"bucket": "b-one", "prefix": prefix},
                                 "target": {"table": f"ns.{name}"}})


def _names(store: DynamoRouteStore, refs: list[ObjectRef]) -> list[str]:
    return sorted(r.name for r in store.route_table(refs).routes)


# ---------------------------------------------------------------- the route cache's bound


def test_a_warm_store_stops_using_a_deleted_route_at_its_next_batch(clean_aws: MotoServer) -> None:
    dynamodb_table(ROUTES_TABLE, "bucket", "name")
    a, b = _route("a", "x/"), _route("b", "y/")
    sync_route_items(ROUTES_TABLE, [a.to_item(), b.to_item()])
    now = [0.0]
    store = DynamoRouteStore(ROUTES_TABLE, ttl=30, clock=lambda: now[0])
    refs = [ObjectRef("b-one", "y/1.csv")]
    assert _names(store, refs) == ["a", "b"]
    assert _names(store, refs) == ["a", "b"]
    assert (store.lookups, store.version_checks) == (1, 2), "cached: one version read per batch, no Query"

    # The stage redeployed without route b: the sync deletes its item and writes a new version.
    assert sync_route_items(ROUTES_TABLE, [a.to_item()]) == ["removed route b (bucket b-one)",
                                                             "1 route unchanged in lr-routes"]
    # The clock has not moved: the ttl would still serve b; the version says it is gone.
    table = store.route_table(refs)
    assert [r.name for r in table.routes] == ["a"]
    with pytest.raises(NoRouteError, match=r"no route for b-one/y/1\.csv"):
        table.match("b-one", "y/1.csv")
    assert store.lookups == 2

    # The same route set synced again: the same version, the cache stays.
    sync_route_items(ROUTES_TABLE, [a.to_item()])
    assert _names(store, refs) == ["a"] and store.lookups == 2


def test_without_a_routes_version_the_ttl_bounds_the_cache(clean_aws: MotoServer) -> None:
    """A routing table written by an older release has no version item: the ttl bounds how long
    a deleted route is still used (here 30 s of an injected clock)."""
    dynamodb_table(ROUTES_TABLE, "bucket", "name")
    ddb = boto3.client("dynamodb")
    sync_route_items(ROUTES_TABLE, [_route("a", "x/").to_item(), _route("b", "y/").to_item()])
    ddb.delete_item(TableName=ROUTES_TABLE, Key={"bucket": {"S": ROUTES_VERSION_BUCKET},
                                                 "name": {"S": ROUTES_VERSION_NAME}})
    now = [0.0]
    store = DynamoRouteStore(ROUTES_TABLE, ttl=30, clock=lambda: now[0])
    refs = [ObjectRef("b-one", "y/1.csv")]
    assert _names(store, refs) == ["a", "b"]
    ddb.delete_item(TableName=ROUTES_TABLE, Key={"bucket": {"S": "b-one"}, "name": {"S": "b"}})
    now[0] = 29.9
    assert _names(store, refs) == ["a", "b"], "within the ttl the cached route is used"
    now[0] = 30.0
    assert _names(store, refs) == ["a"]


def test_the_version_item_is_not_a_route_to_the_sync_or_the_sweep(clean_aws: MotoServer) -> None:
    from lakeroute.aws.sweep import scan_routes

    dynamodb_table(ROUTES_TABLE, "bucket", "name")
    ddb = boto3.client("dynamodb")
    sync_route_items(ROUTES_TABLE, [_route("a", "x/").to_item()])
    items = ddb.scan(TableName=ROUTES_TABLE)["Items"]
    assert sorted(i["bucket"]["S"] for i in items) == [ROUTES_VERSION_BUCKET, "b-one"]
    assert [r.name for r in scan_routes(ddb, ROUTES_TABLE)] == ["a"]
    assert sync_route_items(ROUTES_TABLE, []) == ["removed route a (bucket b-one)"]
    (left,) = ddb.scan(TableName=ROUTES_TABLE)["Items"]
    assert left["bucket"]["S"] == ROUTES_VERSION_BUCKET, "an empty route set is a version too"


# ---------------------------------------------------------------- through the handler


class Lake(MotoLake):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, DEPLOYMENT, ["lr-sales"])
        self.queue_url, queue_arn = self.queue("lr-ingest")
        self.notify("lr-sales", queue_arn)
        self.routes_dir = tmp / "routes"
        self.routes_dir.mkdir()

    def sync(self, **routes: str) -> list[str]:
        for old in self.routes_dir.glob("*.yaml"):
            old.unlink()
        for name, text in routes.items():
            (self.routes_dir / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return sync_aws(load_routes(self.routes_dir), ROUTES_TABLE, DEPLOYMENT.warehouse)

    def invoke(self) -> tuple[dict[str, Any], dict[str, Any]]:
        event = {"Records": self.drain(self.queue_url, visibility=300)}
        return event, lambda_handler.handler(event, LambdaContext("req", 120_000))

    def records(self) -> dict[str, dict[str, Any]]:
        listing = self.s3.list_objects_v2(Bucket=DEPLOYMENT.quarantine_bucket).get("Contents", [])
        out = {}
        for o in listing:
            if o["Key"].endswith("/error.json"):
                body = self.s3.get_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=o["Key"])["Body"].read()
                record = json.loads(body)
                out[record["key"]] = record
        return out


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    with handler_environment(DEPLOYMENT, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path)


def orders(*ids: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"order_id": pa.array(ids, pa.int64())}), buf)
    return buf.getvalue()


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_an_in_flight_object_of_a_removed_route_is_quarantined_once_and_its_table_kept(
        lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    lake.sync(orders=ORDERS, refunds=REFUNDS)
    lake.s3.put_object(Bucket="lr-sales", Key="orders/1.parquet", Body=orders(1, 2))
    _, response = lake.invoke()  # warm: the function has the bucket's routes cached
    assert response == {"batchItemFailures": []}
    assert lake.table("sales.orders").scan().to_arrow()["order_id"].to_pylist() == [1, 2]

    # The route file is deleted and the stage redeployed while a file of it is on its way.
    lake.s3.put_object(Bucket="lr-sales", Key="orders/2.parquet", Body=orders(3))
    lines = lake.sync(refunds=REFUNDS)
    assert "removed route sales-orders (bucket lr-sales)" in lines
    assert "table sales.orders no longer has a route; kept — `lakeroute reset sales.orders --yes` to drop" in lines
    capsys.readouterr()
    event, response = lake.invoke()
    assert [r for r in event["Records"] if "2.parquet" in r["body"]], "the in-flight object's message"
    assert response == {"batchItemFailures": []}, "a no-route object is acknowledged, never failed back"
    quarantined = lake.records()["orders/2.parquet"]
    assert quarantined["stage"] == "route" and quarantined["attempts"] == 1
    assert quarantined["message"].startswith("no route for lr-sales/orders/2.parquet; "), quarantined["message"]
    assert "sales-refunds" in quarantined["message"], "names the closest route left"
    (total,) = [d for d in emf(capsys.readouterr().out) if "route" not in d]
    assert (total["ObjectsUnrouted"], total["ObjectsQuarantined"], total["ObjectsCommitted"]) == ([1.0], [1.0], [0.0])

    # The table and its rows are kept; nothing of the quarantined object was committed.
    table = lake.table("sales.orders")
    assert table.scan().to_arrow()["order_id"].to_pylist() == [1, 2]
    assert len(list(table.snapshots())) == 1
