"""Schema drift end to end on a moto server: S3 put -> SQS -> handler -> Iceberg on Glue.

Routes travel through the DynamoDB routing table (sync), so the new fields (schema, expect,
on_error, nested hints) survive the item round trip; rejects land in the S3 quarantine beside
the entry layout; counts reach the snapshot summary, the journal and the EMF metrics.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lakeroute import handler as lambda_handler
from lakeroute.aws.journal import DynamoJournal
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

DEPLOYMENT = Deployment(routes_table="sd-routes", ledger_table="sd-ledger", warehouse_bucket="sd-warehouse",
                        quarantine_bucket="sd-quarantine", metrics_namespace="lakeroute-drift")
LANDING = ("sd-events",)
ROUTES = {
    "events.yaml": """
        name: events
        source:
          bucket: sd-events
          prefix: rows/
          format: json
          on_error: rows
          columns: {event_id: string, experiment: "struct<variant: string>"}
        target:
          table: web.events
          columns: {event_id: string, variant: string}
          expect: {not_null: [event_id]}
        sql: SELECT event_id, experiment.variant AS variant FROM source
        """,
    "clicks.yaml": """
        name: clicks
        source: {bucket: sd-events, prefix: rescue/, format: json}
        target: {table: web.clicks, schema: rescue, columns: {id: long, user_id: long}}
        sql: SELECT id, u.id AS user_id FROM source
        """,
    "orders.yaml": """
        name: orders
        source: {bucket: sd-events, prefix: orders/, format: csv}
        target: {table: web.orders, expect: {unique: [order_id]}}
        """,
}


class Lake(MotoLake):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, DEPLOYMENT, LANDING)
        self.queue_url, arn = self.queue("sd-ingest")
        self.notify("sd-events", arn)
        self.routes_dir = tmp / "routes"
        self.routes_dir.mkdir()
        for name, text in ROUTES.items():
            (self.routes_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")

    def invoke(self) -> dict[str, Any]:
        event = {"Records": self.drain(self.queue_url, visibility=300)}
        self.event = event
        return lambda_handler.handler(event, LambdaContext("req-1", 120_000))

    def quarantine(self) -> dict[str, bytes]:
        listing = self.s3.list_objects_v2(Bucket=DEPLOYMENT.quarantine_bucket).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=o["Key"])["Body"].read()
                for o in listing}


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    with handler_environment(DEPLOYMENT, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path)


def test_rejects_rescue_and_expectations_through_the_handler(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    sync_aws(load_routes(lake.routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)
    lake.s3.put_object(Bucket="sd-events", Key="rows/1.json", Body=(
        b'{"event_id": "e1"}\n'                                  # no experiment yet: NULL
        b'{"event_id": "e2", "experiment": {"variant": "B"}}\n'
        b'{"event_id": "e3", "experiment": \n'                   # line 3: cut
        b'{"event_id": "e4"}\n'))
    lake.s3.put_object(Bucket="sd-events", Key="rescue/1.json",
                       Body=b'{"id": 1, "u": {"id": 7}}\n{"id": 2, "u": {"id": "u-9"}}\n')
    lake.s3.put_object(Bucket="sd-events", Key="orders/dup.csv", Body=b"order_id,amount\n1,2.5\n1,3.5\n")
    capsys.readouterr()

    response = lake.invoke()

    dup = next(r["messageId"] for r in lake.event["Records"] if "dup.csv" in r["body"])
    assert response == {"batchItemFailures": [{"itemIdentifier": dup}]}, "only the failed expectation fails back"
    events = sorted(lake.table("web.events").scan().to_arrow().to_pylist(), key=lambda r: r["event_id"])
    assert [(r["event_id"], r["variant"]) for r in events] == [("e1", None), ("e2", "B"), ("e4", None)]
    props = lake.table("web.events").current_snapshot().summary.additional_properties
    assert props["lakeroute.rejected_rows"] == "1"

    clicks = sorted(lake.table("web.clicks").scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["user_id"], r["_rescued_data"]) for r in clicks] == [
        (1, 7, None), (2, None, json.dumps({"user_id": "u-9"}))]
    assert lake.table("web.clicks").current_snapshot().summary.additional_properties[
        "lakeroute.rescued_rows"] == "1"

    stored = lake.quarantine()
    [rejects_key] = [k for k in stored if k.endswith("/rejects.web.events.jsonl")]
    assert rejects_key.startswith("quarantine/sd-events/rows/1.json/~v=")
    [reject] = [json.loads(line) for line in stored[rejects_key].splitlines()]
    assert reject["line"] == 3 and reject["text"] == '{"event_id": "e3", "experiment": '
    [error_key] = [k for k in stored if k.endswith("/error.json")]
    error = json.loads(stored[error_key])
    assert error["key"] == "orders/dup.csv" and error["stage"] == "expect"
    assert "unique(order_id) failed" in error["message"] and '"order_id": 1, "rows": 2' in error["message"]
    assert not lake.s3.list_objects_v2(Bucket=DEPLOYMENT.warehouse_bucket, Prefix="wh/web.db/orders").get(
        "Contents"), "no table, no data file for the quarantined object"

    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    totals = next(m for m in metrics if "route" not in m and "RowsRejected" in m)
    assert totals["RowsRejected"] == [1.0] and totals["RowsRescued"] == [1.0]
    per_route = {m["route"]: m for m in metrics if "route" in m}
    assert per_route["events"]["RowsRejected"] == [1.0] and per_route["clicks"]["RowsRescued"] == [1.0]

    attempts = {a["key"]: a for a in DynamoJournal(DEPLOYMENT.ledger_table).read("web.events")}
    assert attempts["rows/1.json"]["rejected"] == 1 and attempts["rows/1.json"]["rows"] == 3

    # Redelivery of the same batch: nothing lands twice; the rejects stay one file per version.
    again = lambda_handler.handler(lake.event, LambdaContext("req-2", 120_000))
    assert again == {"batchItemFailures": [{"itemIdentifier": dup}]}
    events = lake.table("web.events").scan().to_arrow().to_pylist()
    assert sorted(r["event_id"] for r in events) == ["e1", "e2", "e4"]
    assert len(lake.table("web.events").history()) == 1
    summary_key = rejects_key.replace("rejects.web.events.jsonl", "rejects.json")
    assert sorted(k for k in lake.quarantine() if "rejects" in k) == sorted([rejects_key, summary_key])
