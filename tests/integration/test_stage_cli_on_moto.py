"""`--stage NAME` on a moto server: the CLI finds a deployed stage through its stack's outputs
(CloudFormation DescribeStacks) and works on its S3 quarantine, ingest queue and catalog (Glue, or
S3 Tables: the outputs ``StageCatalog``, ``TableBucketArn`` and ``Namespaces``)."""

from __future__ import annotations

import datetime as dt
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
from lakeroute.aws.events import parse_event
from lakeroute.aws.s3_quarantine import S3Quarantine
from lakeroute.cli import app
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws
from typer.testing import CliRunner

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment
from tests.support.catalogs import CATALOGS
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

STAGE = "qa"
LANDING = "qa-landing-physical"  # the logical bucket `landing` of the route files
DATABASE = "qa_sales"  # the namespace `sales`
DEPLOYMENT = Deployment(routes_table="qa-routes", ledger_table="qa-ledger", warehouse_bucket="qa-wh",
                        quarantine_bucket="qa-quarantine", metrics_namespace="lakeroute-qa")
ROUTE = """
    name: orders
    source: {bucket: landing, prefix: orders/}
    target: {table: sales.orders}
    sql: SELECT id, name FROM source
    """



def template(queue: str, deployment: Deployment = DEPLOYMENT) -> str:
    """A stack with the ingest queue and, as literal values, the outputs `--stage` reads."""
    catalog = ({"GlueDatabases": json.dumps({"sales": DATABASE})} if deployment.catalog == "glue" else
               {"StageCatalog": deployment.catalog, "TableBucketArn": deployment.table_bucket_arn,
                "Namespaces": json.dumps({"sales": DATABASE})})
    outputs = {
        "Stage": STAGE,
        "LandingBuckets": json.dumps({"landing": LANDING}),
        **catalog,
        "RoutesTableName": DEPLOYMENT.routes_table,
        "LedgerTableName": DEPLOYMENT.ledger_table,
        "WarehouseUri": DEPLOYMENT.warehouse,
        "QuarantineUri": f"s3://{DEPLOYMENT.quarantine_bucket}/quarantine",
    }
    return json.dumps({
        "Resources": {"IngestQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}}},
        "Outputs": {"IngestQueueUrl": {"Value": {"Ref": "IngestQueue"}},
                    **{k: {"Value": v} for k, v in outputs.items()}},
    })


class Stage(MotoLake):
    def __init__(self, tmp: Path, deployment: Deployment = DEPLOYMENT) -> None:
        super().__init__(tmp, deployment, [LANDING])
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName=f"lakeroute-{STAGE}", TemplateBody=template("qa-ingest", deployment))
        outputs = cfn.describe_stacks(StackName=f"lakeroute-{STAGE}")["Stacks"][0]["Outputs"]
        self.queue_url = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "IngestQueueUrl")
        routes = tmp / "routes"
        routes.mkdir()
        (routes / "orders.yaml").write_text(textwrap.dedent(ROUTE), encoding="utf-8")
        sync_aws(load_routes(routes), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse,
                 buckets={"landing": LANDING}, namespaces={"sales": DATABASE})

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        return dict(self.s3.put_object(Bucket=LANDING, Key=key, Body=body))

    def messages(self) -> list[dict[str, Any]]:
        return self.drain(self.queue_url, visibility=300)

    def announced(self) -> list[tuple[str, str, str | None]]:
        """(bucket, key, version) of every message on the queue, as the handler parses them."""
        messages = self.messages()
        if not messages:
            return []
        parsed = parse_event({"Records": messages})
        assert not parsed.malformed, parsed.malformed
        return sorted((r.bucket, r.key, r.version) for r in parsed.refs)

    def ingest(self, *keys: str) -> dict[str, Any]:
        """Announce the objects on the queue, hand the messages to the handler."""
        for key in keys:
            head = self.s3.head_object(Bucket=LANDING, Key=key)
            body = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                 "s3": {"bucket": {"name": LANDING},
                                        "object": {"key": key, "eTag": head["ETag"].strip('"'),
                                                   "size": head["ContentLength"]}}}]}
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
        result: dict[str, Any] = lambda_handler.handler({"Records": self.messages()},
                                                        LambdaContext("req", 120_000))
        return result


@pytest.fixture
def stage(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_kind: str) -> Iterator[Stage]:
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch):
        yield Stage(tmp_path, deployment)


def parquet(ids: list[int]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "name": [f"n{i}" for i in ids]}), buf)
    return buf.getvalue()


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@CATALOGS
def test_quarantine_ls_show_and_replay_send_the_unresolved_originals(stage: Stage) -> None:
    put = stage.put("orders/broken.parquet", b"not a parquet file")
    stage.ingest("orders/broken.parquet")  # the handler quarantines it in S3
    # an entry already resolved: listed with --all only, never replayed
    quarantine = S3Quarantine(f"s3://{DEPLOYMENT.quarantine_bucket}/quarantine", stage.s3)
    done = quarantine.location(LANDING, "orders/fixed.parquet", "0" * 32)
    stage.s3.put_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=f"{done}/error.json", Body=json.dumps({
        "bucket": LANDING, "key": "orders/fixed.parquet", "version": "0" * 32, "route": "orders",
        "table": f"{DATABASE}.orders", "stage": "read", "message": "old", "attempts": 1,
        "quarantined_at": "2026-01-01T00:00:00+00:00", "resolved_at": "2026-01-02T00:00:00+00:00"}))

    listed = json.loads(cli("quarantine", "ls", "--stage", STAGE, "--format", "json").stdout)
    keys = [r["key"] for r in listed]
    print(f"quarantine ls --stage: {keys} (route {listed[0]['route']}, stage {listed[0]['stage']})")
    assert keys == ["orders/broken.parquet"] and listed[0]["route"] == "orders"
    everything = json.loads(cli("quarantine", "ls", "--stage", STAGE, "--all", "-f", "json").stdout)
    assert sorted(r["key"] for r in everything) == ["orders/broken.parquet", "orders/fixed.parquet"]
    table = cli("quarantine", "ls", "--stage", STAGE)
    assert f"{LANDING}/orders/broken.parquet" in table.stdout and "1 quarantined" in table.stderr

    shown = cli("quarantine", "show", "--stage", STAGE, "landing/orders/broken.parquet")  # logical bucket
    record = json.loads(shown.stdout)
    print(f"quarantine show --stage: entry {record['entry']}")
    assert shown.exit_code == 0 and record["entry"].startswith(f"s3://{DEPLOYMENT.quarantine_bucket}/quarantine/")
    assert cli("quarantine", "show", "--stage", STAGE, f"{LANDING}/orders/nope").exit_code == 1
    purged = cli("quarantine", "purge", "--resolved", "--stage", STAGE)
    left = json.loads(cli("quarantine", "ls", "--stage", STAGE, "--all", "-f", "json").stdout)
    print(f"purge --resolved --stage: {purged.stdout.strip()}; left {[r['key'] for r in left]}")
    assert purged.exit_code == 0 and "removed 1 resolved entry" in purged.stdout
    assert [r["key"] for r in left] == ["orders/broken.parquet"]

    stage.messages()  # the queue is empty before the replay
    replayed = cli("replay", "--stage", STAGE)
    sent = stage.announced()
    print(f"replay --stage: {replayed.stdout.strip()!r}; on the queue {sent}")
    assert replayed.exit_code == 0, replayed.output
    assert sent == [(LANDING, "orders/broken.parquet", put["ETag"].strip('"'))]
    assert f"sent 1 object(s) to {stage.queue_url}" in replayed.stdout
    marked = json.loads(cli("quarantine", "show", "--stage", STAGE, f"{LANDING}/orders/broken.parquet").stdout)
    assert marked["replayed_at"] and not marked.get("resolved_at"), "replayed, not resolved: the handler decides"
    # the filters: another route, or a time after the quarantine, select nothing
    assert "nothing to replay" in cli("replay", "--stage", STAGE, "--route", "other").stdout
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert "nothing to replay" in cli("replay", "--stage", STAGE, "--since", later).stdout
    assert cli("replay", "--stage", STAGE, "--table", "sales.orders").exit_code == 0  # logical table
    assert len(stage.announced()) == 1
    print("replay filters: --route other and --since later send nothing; --table sales.orders sends it")


def test_a_newer_version_and_dismiss_close_the_stage_quarantine(stage: Stage) -> None:
    stage.put("orders/broken.parquet", b"not parquet")
    stage.put("orders/stray.parquet", b"not parquet either")
    stage.ingest("orders/broken.parquet", "orders/stray.parquet")  # the handler quarantines both in S3
    opened = json.loads(cli("quarantine", "ls", "--stage", STAGE, "-f", "json").stdout)
    assert sorted(r["key"] for r in opened) == ["orders/broken.parquet", "orders/stray.parquet"]
    # the producer sends broken.parquet again, fixed: the handler lands it and supersedes the entry
    stage.put("orders/broken.parquet", parquet([1, 2]))
    assert stage.ingest("orders/broken.parquet") == {"batchItemFailures": []}
    every = {r["key"]: r for r in json.loads(cli("quarantine", "ls", "--stage", STAGE, "--all", "-f", "json").stdout)}
    print("after the newer version:", {k: (r["state"], r.get("resolution")) for k, r in every.items()})
    assert every["orders/broken.parquet"]["state"] == "superseded"
    assert every["orders/stray.parquet"]["state"] == "open"

    refused = cli("quarantine", "dismiss", "landing/orders/stray.parquet", "--stage", STAGE)  # logical bucket
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    done = cli("quarantine", "dismiss", "landing/orders/stray.parquet", "--stage", STAGE, "--reason",
               "a test upload", "--yes")
    print(f"dismiss --stage: {done.stdout.strip()!r}")
    assert done.exit_code == 0 and done.stdout.startswith("dismissed 1 entry")
    assert json.loads(cli("quarantine", "ls", "--stage", STAGE, "-f", "json").stdout) == []
    replayed = cli("replay", "--stage", STAGE)
    assert replayed.exit_code == 0 and "nothing to replay" in replayed.stdout and not stage.announced()
    history = json.loads(cli("history", "sales.orders", "--stage", STAGE, "-f", "json").stdout)
    closing = [(a["key"], a["status"], a["message"]) for a in history if a["status"] in ("superseded", "dismissed")]
    print(f"history --stage: {closing}")
    assert [(k, s) for k, s, _ in closing] == [("orders/broken.parquet", "superseded"),
                                               ("orders/stray.parquet", "dismissed")]
    assert "a test upload" in closing[1][2]
    purged = cli("quarantine", "purge", "--closed", "--stage", STAGE)
    assert purged.exit_code == 0 and purged.stdout.startswith("removed 2 closed entries")
    assert json.loads(cli("quarantine", "ls", "--stage", STAGE, "--all", "-f", "json").stdout) == []


@CATALOGS
def test_backfill_enqueues_the_filtered_objects_and_the_handler_lands_them_once(stage: Stage) -> None:
    stage.put("orders/a.parquet", parquet([1, 2]))
    stage.ingest("orders/a.parquet")
    puts = {k: stage.put(k, parquet([i])) for i, k in enumerate(
        ["orders/b.parquet", "orders/2026/c.parquet", "orders/notes.txt", "other/d.parquet"], start=10)}
    backfilled = cli("backfill", "--stage", STAGE, "landing/orders/", "--pattern", "*.parquet")
    sent = stage.announced()
    print(f"backfill --stage: {backfilled.stdout.strip()!r}; on the queue {[k for _, k, _ in sent]}")
    assert backfilled.exit_code == 0, backfilled.output
    etag = {k: p["ETag"].strip('"') for k, p in puts.items()}
    a_etag = stage.s3.head_object(Bucket=LANDING, Key="orders/a.parquet")["ETag"].strip('"')
    assert sent == sorted([(LANDING, "orders/2026/c.parquet", etag["orders/2026/c.parquet"]),
                           (LANDING, "orders/a.parquet", a_etag),
                           (LANDING, "orders/b.parquet", etag["orders/b.parquet"])])
    assert "4 object(s) listed, 3 matched, sent 3 object(s)" in backfilled.stdout

    # physical bucket name, and a window that holds nothing
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    none = cli("backfill", "--stage", STAGE, f"{LANDING}/orders/", "--since", future)
    assert none.exit_code == 0 and "sent 0 object(s)" in none.stdout and not stage.announced()
    past = cli("backfill", "--stage", STAGE, "landing/orders/", "--until", "2000-01-01")
    assert "sent 0 object(s)" in past.stdout
    assert cli("backfill", "--stage", STAGE, "nosuch/x").exit_code == 2
    print("backfill filters: --since tomorrow / --until 2000 send nothing; an unknown bucket exits 2")

    # the handler lands what it was sent, a.parquet (already in) once
    cli("backfill", "--stage", STAGE, "landing/orders/", "--pattern", "*.parquet")
    assert lambda_handler.handler({"Records": stage.messages()}, LambdaContext("bf", 120_000)) == {
        "batchItemFailures": []}
    ids = sorted(r["id"] for r in stage.table(f"{DATABASE}.orders").scan().to_arrow().to_pylist())
    print(f"after the backfill the table holds ids {ids}")
    assert ids == [1, 2, 10, 11]


@CATALOGS
def test_tables_and_history_read_the_stage_catalog(stage: Stage) -> None:
    stage.put("orders/a.parquet", parquet([1, 2, 3]))
    assert stage.ingest("orders/a.parquet") == {"batchItemFailures": []}
    listed = cli("tables", "--stage", STAGE)
    print(f"tables --stage:\n{listed.stdout}")
    assert listed.exit_code == 0 and f"{DATABASE}.orders" in listed.stdout and " 3 " in listed.stdout
    for name in ("sales.orders", f"{DATABASE}.orders"):  # logical and physical
        history = cli("history", name, "--stage", STAGE, "--commits", "--format", "json")
        entries = json.loads(history.stdout)
        print(f"history {name} --stage: {[(e['rows'], e['sources']) for e in entries]}")
        assert history.exit_code == 0 and [e["rows"] for e in entries] == [3]
        assert [s.split("@")[0] for s in entries[0]["sources"]] == [f"{LANDING}/orders/a.parquet"]
    missing = cli("history", "sales.nope", "--stage", STAGE)
    assert missing.exit_code == 2 and missing.stderr.startswith("error: table")


@pytest.mark.parametrize("command", [["tables"], ["history", "sales.orders"], ["quarantine", "ls"],
                                     ["quarantine", "show", "b/k"], ["replay"], ["backfill", "landing"]])
def test_a_stage_without_a_stack_is_one_error_line_exit_2(clean_aws: MotoServer, command: list[str]) -> None:
    result = cli(*command, "--stage", "nope")
    lines = result.stderr.strip().splitlines()
    print(f"{' '.join(command)} --stage nope: exit {result.exit_code}, {lines}")
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and "lakeroute-nope" in lines[0] and "cdk deploy -c stage=nope" in lines[0]


@CATALOGS
def test_without_stage_the_handler_environment_names_the_stage(stage: Stage,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    stage.put("orders/a.parquet", parquet([7]))
    stage.ingest("orders/a.parquet")
    # handler_environment set LAKEROUTE_ROUTES_TABLE/LEDGER_TABLE/WAREHOUSE/QUARANTINE
    listed = cli("tables")
    print(f"tables without --stage, handler variables set:\n{listed.stdout}")
    assert listed.exit_code == 0 and f"{DATABASE}.orders" in listed.stdout
    assert cli("backfill", f"{LANDING}/orders/").exit_code == 2, "no LAKEROUTE_INGEST_QUEUE_URL"
    monkeypatch.setenv("LAKEROUTE_INGEST_QUEUE_URL", stage.queue_url)
    sent = cli("backfill", f"{LANDING}/orders/")
    assert sent.exit_code == 0 and [k for _, k, _ in stage.announced()] == ["orders/a.parquet"]
    print(f"backfill without --stage: {sent.stdout.strip()!r}")
