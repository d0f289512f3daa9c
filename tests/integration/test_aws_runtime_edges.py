"""The handler at the edges of a deployment, on a moto server: the batch deadline, the
large-object tier (hand-off, the task, its stop handler), path-dependent reader options."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute import task as lambda_task
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment
from tests.support.moto_server import MotoServer
from tests.support.patience import patience
from tests.support.workspace import Workspace

pytestmark = pytest.mark.slow

LANDING = "edge-landing"
DEPLOYMENT = Deployment(routes_table="edge-routes", ledger_table="edge-ledger", warehouse_bucket="edge-wh",
                        quarantine_bucket="edge-quarantine", metrics_namespace="lakeroute-edges")
ROUTES = {
    "orders.yaml": """
        name: orders
        source: {bucket: edge-landing, prefix: orders/}
        target: {table: edge.orders}
        sql: SELECT id, payload, getvariable('source_key') AS _source_key FROM source
        """,
    "shapes.yaml": """
        name: shapes
        source: {bucket: edge-landing, prefix: shapes/}
        target: {table: edge.shapes}
        sql: SELECT id, json_structure(payload)::VARCHAR AS shape FROM source
        """,
    "events.yaml": """
        name: events
        source: {bucket: edge-landing, prefix: events/, format: csv,
                 options: {hive_partitioning: true, filename: true}}
        target: {table: edge.events}
        sql: SELECT id, name, dt, filename FROM source
        """,
}


class Lake(MotoLake):
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        super().__init__(tmp, DEPLOYMENT, [LANDING])
        self.env = env
        self.queue_url, self.queue_arn = self.queue("edge-ingest")
        self.notify(LANDING, self.queue_arn)
        self.routes_dir = tmp / "routes"
        self.routes_dir.mkdir()
        for name, text in ROUTES.items():
            (self.routes_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")
        sync_aws(load_routes(self.routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)
        self.sqs.purge_queue(QueueUrl=self.queue_url)  # the s3:TestEvent

    def receive(self) -> dict[str, Any]:
        return {"Records": self.drain(self.queue_url, visibility=300)}

    def rows(self, table: str) -> list[dict[str, Any]]:
        return sorted(self.table(table).scan().to_arrow().to_pylist(), key=lambda r: str(r))

    def warehouse_files(self) -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=DEPLOYMENT.warehouse_bucket)
        return {f"s3://{DEPLOYMENT.warehouse_bucket}/{o['Key']}" for p in pages for o in p.get("Contents", [])
                if o["Key"].endswith(".parquet")}

    def quarantined_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=DEPLOYMENT.quarantine_bucket).get("Contents", [])
        return [o["Key"] for o in listing]

    def referenced_files(self, table: str) -> set[str]:
        return {t.file.file_path for t in self.table(table).scan().plan_files()}


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    with handler_environment(DEPLOYMENT, clean_aws, tmp_path, monkeypatch) as env:
        yield Lake(tmp_path, env)


def parquet(start: int, rows: int, payload_bytes: int = 8) -> bytes:
    table = pa.table({"id": pa.array(range(start, start + rows), pa.int64()),
                      "payload": pa.array([os.urandom(payload_bytes) for _ in range(rows)], pa.binary())})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")
    return buf.getvalue()


def message_keys(event: dict[str, Any]) -> dict[str, str]:
    out = {}
    for r in event["Records"]:
        body = json.loads(r["body"])
        out[r["messageId"]] = unquote_plus(body["Records"][0]["s3"]["object"]["key"])
    return out


# ---------------------------------------------------------------- deadline


def test_deadline_commits_what_fits_and_fails_back_the_rest(lake: Lake) -> None:
    small = [f"orders/small-{i}.parquet" for i in range(5)]
    big = [f"orders/big-{i}.parquet" for i in range(2)]
    for i, key in enumerate(small):
        lake.s3.put_object(Bucket=LANDING, Key=key, Body=parquet(100 * i, 10))
    for i, key in enumerate(big):
        lake.s3.put_object(Bucket=LANDING, Key=key, Body=parquet(10_000 * (i + 1), 1_000, 1_000))  # ~1 MB
    event = lake.receive()
    keys = message_keys(event)
    # 8 s left: deadline 6 s, 2 s kept for the commit: ~4 s for objects. The estimate starts
    # from a throughput of 150 kB/s here (a slow store), so a 1 MB object (~7 s) cannot fit.
    # On a busy machine both stretch alike (``slow``): the small ones still fit, the big not.
    slow = patience(1) / 3
    runtime = lambda_handler.get_runtime()
    runtime.prepare([], None)
    from lakeroute.core.pipeline.budget import Budget

    runtime.budget = Budget(deadline=0, default_rate=150e3 / slow)
    response = lambda_handler.handler(event, LambdaContext("req-deadline", int(8_000 * slow)))
    failed = {keys[f["itemIdentifier"]] for f in response["batchItemFailures"]}
    rows = lake.rows("edge.orders")
    landed = {r["_source_key"] for r in rows}
    print(f"deadline batch: {len(keys)} messages, committed {sorted(landed)}, failed back {sorted(failed)}")
    assert failed == set(big) and landed == set(small), "committed + failed back = the batch"
    assert lake.warehouse_files() == lake.referenced_files("edge.orders"), "no staged file left behind"
    assert not lake.quarantined_keys(), "nothing quarantined: the big files were not at fault"
    # SQS returns them; with time enough (a new container: no slow rate measured) they land, exactly once
    runtime.budget = None
    again = {"Records": [r for r in event["Records"] if keys[r["messageId"]] in failed]}
    assert lambda_handler.handler(again, LambdaContext("req-2", 120_000)) == {"batchItemFailures": []}
    assert {r["_source_key"] for r in lake.rows("edge.orders")} == set(small) | set(big)
    assert len(lake.rows("edge.orders")) == 5 * 10 + 2 * 1_000


# ---------------------------------------------------------------- large-object tier


def _tier(monkeypatch: pytest.MonkeyPatch, threshold: int) -> dict[str, str]:
    ec2, ecs = boto3.client("ec2"), boto3.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="lakeroute-task", Description="egress", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="lakeroute-large")["cluster"]["clusterArn"]
    definition = ecs.register_task_definition(
        family="lakeroute-large-object", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="2048", memory="8192", containerDefinitions=[{
            "name": "lakeroute", "image": "lakeroute:latest", "essential": True, "cpu": 2048, "memory": 8192,
            "entryPoint": ["python", "-m", "lakeroute.task"]}])["taskDefinition"]["taskDefinitionArn"]
    env = {"LAKEROUTE_TASK_CLUSTER": cluster, "LAKEROUTE_TASK_DEFINITION": definition,
           "LAKEROUTE_TASK_SUBNETS": subnet, "LAKEROUTE_TASK_SECURITY_GROUPS": group,
           "LAKEROUTE_LARGE_OBJECT_BYTES": str(threshold), "LAKEROUTE_TASK_MAX_ATTEMPTS": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    lambda_handler.reset_runtime()
    return env


def _task_object(task: dict[str, Any]) -> str:
    [override] = task["overrides"]["containerOverrides"]
    return next(v["value"] for v in override["environment"] if v["name"] == "LAKEROUTE_TASK_OBJECT")


def test_large_object_is_handed_to_a_fargate_task_which_ingests_it(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    tier = _tier(monkeypatch, threshold=500_000)
    lake.s3.put_object(Bucket=LANDING, Key="orders/small.parquet", Body=parquet(0, 10))
    response = lambda_handler.handler(lake.receive(), LambdaContext("req-small", 120_000))
    runtime_tier = lambda_handler.get_runtime().tier
    assert response == {"batchItemFailures": []} and runtime_tier is not None
    assert runtime_tier._ecs is None, "a batch that hands nothing off makes no ECS client (cold start)"
    big = parquet(1_000, 600, 2_000)  # ~1.2 MB: above this stage's threshold
    lake.s3.put_object(Bucket=LANDING, Key="orders/huge.parquet", Body=big)
    response = lambda_handler.handler(lake.receive(), LambdaContext("req-tier", 120_000))
    assert response == {"batchItemFailures": []}, "a handed-off object's message is done"
    assert runtime_tier._ecs is not None
    assert {r["_source_key"] for r in lake.rows("edge.orders")} == {"orders/small.parquet"}
    ecs = boto3.client("ecs")
    arns = ecs.list_tasks(cluster=tier["LAKEROUTE_TASK_CLUSTER"])["taskArns"]
    [task] = ecs.describe_tasks(cluster=tier["LAKEROUTE_TASK_CLUSTER"], tasks=arns)["tasks"]
    described = json.loads(_task_object(task))
    print("RunTask:", task["taskDefinitionArn"], task.get("launchType"), described)
    assert task["taskDefinitionArn"] == tier["LAKEROUTE_TASK_DEFINITION"] and task.get("launchType") == "FARGATE"
    assert (described["bucket"], described["key"], described["size"], described["attempt"]) == (
        LANDING, "orders/huge.parquet", len(big), 1)

    # The task's entry point, as the container runs it, against the same moto server
    env = {**os.environ, "LAKEROUTE_TASK_OBJECT": _task_object(task)}
    proc = subprocess.run([sys.executable, "-m", "lakeroute.task"], env=env, capture_output=True, text=True,
                          timeout=patience(300))
    print("task exit", proc.returncode, proc.stderr[-300:])
    assert proc.returncode == 0, proc.stderr
    rows = lake.rows("edge.orders")
    assert len(rows) == 610 and {r["_source_key"] for r in rows} == {"orders/small.parquet", "orders/huge.parquet"}
    # a retried task (e.g. after a lost stop event) changes nothing: exactly once
    again = subprocess.run([sys.executable, "-m", "lakeroute.task"], env=env, capture_output=True, text=True,
                           timeout=patience(300))
    assert again.returncode == 0 and len(lake.rows("edge.orders")) == 610


def _stopped(task_object: str, exit_code: int | None, reason: str) -> dict[str, Any]:
    return {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": {
        "lastStatus": "STOPPED", "stoppedReason": reason,
        "containers": [{"name": "lakeroute", "exitCode": exit_code, "reason": "OutOfMemoryError"}],
        "overrides": {"containerOverrides": [{"name": "lakeroute", "environment": [
            {"name": "LAKEROUTE_TASK_OBJECT", "value": task_object}]}]}}}


def test_a_failed_task_is_retried_then_quarantined(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    tier = _tier(monkeypatch, threshold=1_000)
    lake.s3.put_object(Bucket=LANDING, Key="orders/oom.parquet", Body=parquet(0, 50))
    obj = json.dumps({"bucket": LANDING, "key": "orders/oom.parquet", "version": None, "size": 5000,
                      "id": "m1", "attempt": 1})
    assert lambda_task.on_stopped(_stopped(obj, 0, "Essential container exited"), None) == {"action": "none"}
    first = lambda_task.on_stopped(_stopped(obj, 137, "Essential container exited"), None)
    assert first["action"] == "retried" and first["attempt"] == 2
    ecs = boto3.client("ecs")
    [task] = ecs.describe_tasks(cluster=tier["LAKEROUTE_TASK_CLUSTER"],
                                tasks=ecs.list_tasks(cluster=tier["LAKEROUTE_TASK_CLUSTER"])["taskArns"])["tasks"]
    last = lambda_task.on_stopped(_stopped(_task_object(task), 137, "Essential container exited"), None)
    print("stop handler:", first, last)
    assert last["action"] == "quarantined"
    [record] = [json.loads(lake.s3.get_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=k)["Body"].read())
                for k in lake.quarantined_keys() if k.endswith("/error.json")]
    assert (record["key"], record["stage"]) == ("orders/oom.parquet", "task")
    assert "failed 2 time(s)" in record["message"] and "OutOfMemoryError" in record["message"]
    assert record["object_copied"] is True


# ---------------------------------------------------------------- same route, same result


def test_hive_partitioned_route_gives_the_same_rows_locally_and_in_aws(lake: Lake, tmp_path: Path) -> None:
    key = "events/dt=2026-11-02/region=eu/part 1.csv"
    body = b"id,name\n1,a\n2,b\n"
    lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
    assert lambda_handler.handler(lake.receive(), LambdaContext("req-hive", 120_000)) == {"batchItemFailures": []}
    aws_rows = lake.rows("edge.events")

    ws = Workspace(tmp_path / "local")
    ws.paths.routes.mkdir(parents=True)
    (ws.paths.routes / "events.yaml").write_text(textwrap.dedent(ROUTES["events.yaml"]), encoding="utf-8")
    ws.put(LANDING, key, body)
    assert ws.ingest((LANDING, key)).count("committed") == 1
    local_rows = sorted(ws.rows("edge.events"), key=lambda r: str(r))
    print("aws:", aws_rows, "\nlocal:", local_rows)
    assert aws_rows == local_rows
    assert {str(r["dt"]) for r in aws_rows} == {"2026-11-02"}
    assert {r["filename"] for r in aws_rows} == {f"s3://{LANDING}/{key}"}


# ---------------------------------------------------------------- the ledger never outranks the table


def test_dynamodb_ledger_after_drop_and_recreate_ingests_again_once(lake: Lake) -> None:
    from lakeroute.aws.catalog import glue_catalog

    keys = [f"orders/l-{i}.parquet" for i in range(3)]
    for i, key in enumerate(keys):
        lake.s3.put_object(Bucket=LANDING, Key=key, Body=parquet(10 * i, 4))
    event = lake.receive()
    assert lambda_handler.handler(event, LambdaContext("req-l1", 120_000)) == {"batchItemFailures": []}
    assert len(lake.rows("edge.orders")) == 12
    glue_catalog(DEPLOYMENT.warehouse).drop_table("edge.orders")  # a user fixing a mistake
    lambda_handler.reset_runtime()
    assert lambda_handler.handler(event, LambdaContext("req-l2", 120_000)) == {"batchItemFailures": []}
    again = lake.rows("edge.orders")
    assert lambda_handler.handler(event, LambdaContext("req-l3", 120_000)) == {"batchItemFailures": []}
    print(f"after drop + recreate: {len(again)} rows; redelivered once more: {len(lake.rows('edge.orders'))} rows")
    assert len(again) == 12 and len(lake.rows("edge.orders")) == 12


def test_the_journal_in_dynamodb_keeps_every_attempt(lake: Lake) -> None:
    from lakeroute.aws.journal import DynamoJournal

    lake.s3.put_object(Bucket=LANDING, Key="orders/j.parquet", Body=parquet(0, 3))
    lake.s3.put_object(Bucket=LANDING, Key="orders/bad.parquet", Body=b"not parquet")
    event = lake.receive()
    lambda_handler.handler(event, LambdaContext("req-j1", 120_000))
    lambda_handler.handler(event, LambdaContext("req-j2", 120_000))
    rows = DynamoJournal(DEPLOYMENT.ledger_table).read("edge.orders")
    got = sorted((r["key"], r["status"]) for r in rows)
    print(got)
    assert got == [("orders/bad.parquet", "quarantined"), ("orders/bad.parquet", "quarantined"),
                   ("orders/j.parquet", "committed"), ("orders/j.parquet", "skipped")]


def test_a_replayed_object_that_lands_resolves_its_quarantine_record(lake: Lake) -> None:
    from lakeroute.aws.journal import DynamoJournal
    from lakeroute.cli.stage import notification

    broken = textwrap.dedent(ROUTES["orders.yaml"]).replace("payload,", "payload, no_such_column,")
    (lake.routes_dir / "orders.yaml").write_text(broken, encoding="utf-8")
    sync_aws(load_routes(lake.routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)
    put = lake.s3.put_object(Bucket=LANDING, Key="orders/r.parquet", Body=parquet(0, 2))
    event = lake.receive()
    lambda_handler.handler(event, LambdaContext("req-r1", 120_000))
    [record_key] = [k for k in lake.quarantined_keys() if k.endswith("/error.json")]
    (lake.routes_dir / "orders.yaml").write_text(textwrap.dedent(ROUTES["orders.yaml"]), encoding="utf-8")
    sync_aws(load_routes(lake.routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)
    lambda_handler.reset_runtime()  # the warm route cache
    body = notification(LANDING, "orders/r.parquet", put["ETag"].strip('"'), 0, replay=True)
    replay = {"Records": [{**event["Records"][0], "messageId": "replay-1", "body": body}]}
    assert lambda_handler.handler(replay, LambdaContext("req-r2", 120_000)) == {"batchItemFailures": []}
    record = json.loads(lake.s3.get_object(Bucket=DEPLOYMENT.quarantine_bucket, Key=record_key)["Body"].read())
    statuses = [r["status"] for r in DynamoJournal(DEPLOYMENT.ledger_table).read("edge.orders")]
    print("record:", record.get("resolution"), "journal:", statuses)
    assert record["resolution"] == "replayed: committed" and record["resolved_at"]
    assert statuses == ["quarantined", "replayed"] and len(lake.rows("edge.orders")) == 2


# ---------------------------------------------------------------- crash isolation


def test_a_message_back_for_the_third_time_is_read_in_a_child_where_its_crash_stays(lake: Lake) -> None:
    """Two deliveries died (in other execution environments: no crash marker here); on the
    third, SQS says ApproximateReceiveCount 3 and the object is read in a child process first.
    DuckDB 1.4.4 segfaults on json_structure of this payload (tests/reliability/test_crash_isolation.py)."""
    def shapes(row_id: int, payload: str) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": [row_id], "payload": [payload]}), buf)
        return buf.getvalue()

    lake.s3.put_object(Bucket=LANDING, Key="shapes/good.parquet", Body=shapes(1, '{"a": [1]}'))
    lake.s3.put_object(Bucket=LANDING, Key="shapes/bad.parquet", Body=shapes(2, '{"b": ' * 20_000 + "1" + "}" * 20_000))
    for _ in range(2):  # the deliveries that died elsewhere
        assert len(lake.receive_records(lake.queue_url, visibility=0)) == 2
    event = lake.receive()
    assert {r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]} == {"3"}
    keys = message_keys(event)
    response = lambda_handler.handler(event, LambdaContext("req-crash", 120_000))
    failed = {keys[f["itemIdentifier"]] for f in response["batchItemFailures"]}
    print(f"failed back: {failed}; quarantined: {lake.quarantined_keys()}")
    assert failed == {"shapes/bad.parquet"}, "quarantined (and failed back, for the DLQ alarm), alone"
    assert [(r["id"], r["shape"]) for r in lake.rows("edge.shapes")] == [(1, '{"a":["UBIGINT"]}')]
    assert any("/shapes/bad.parquet/" in k and k.endswith("error.json") for k in lake.quarantined_keys())
