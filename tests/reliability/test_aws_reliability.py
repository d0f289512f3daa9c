"""Exactly once on the AWS side: the real handler, Glue, S3, DynamoDB and SQS on a moto server.

One moto server for the module (``tests/support/moto_glue_locking.py``: Glue ``UpdateTable``
enforces ``VersionId`` and honours ``SkipArchive``), reset before every test. Concurrent
writers are separate processes (``tests/reliability/aws_worker.py`` forks them from one
pre-imported parent), each a warm Lambda container with its own clients, catalog and ledger,
calling ``handler(event)`` once; the other tests run the handler in this process. SQS is
real where its behaviour matters (notifications, visibility timeout, redrive to the DLQ).
Each test prints the figures it checked (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute.aws.catalog import glue_catalog
from lakeroute.core.ledger import SOURCES_PROP
from lakeroute.core.routes import Route, parse_route
from lakeroute.sync import sync_aws

from tests.reliability.conftest import percentile
from tests.support.aws_lake import (
    ACCOUNT,
    Deployment,
    LambdaContext,
    MotoLake,
    handler_environment,
    s3_notification,
)
from tests.support.catalogs import CATALOGS
from tests.support.moto_server import REGION, MotoServer
from tests.support.patience import patience

REPO = Path(__file__).resolve().parents[2]
ROUTES_TABLE = "rel-routes"
WAREHOUSE_BUCKET = "rel-warehouse"
QUARANTINE_BUCKET = "rel-quarantine"
DEPLOYMENT = Deployment(routes_table=ROUTES_TABLE, ledger_table="rel-ledger", warehouse_bucket=WAREHOUSE_BUCKET,
                        quarantine_bucket=QUARANTINE_BUCKET, metrics_namespace="lakeroute-reliability",
                        extra_env={"POWERTOOLS_LOG_LEVEL": "WARNING"})
WAREHOUSE = DEPLOYMENT.warehouse
LANDING = "rel-landing"
TABLE = "rel.orders"
COLUMNS = {"id": "long", "amount": "double", "_source_key": "string"}
SQL = "SELECT id, amount, getvariable('source_key') AS _source_key FROM source"


def route(name: str, bucket: str, table: str) -> Route:
    return parse_route({"name": name, "source": {"bucket": bucket, "prefix": "in/", "pattern": "*.parquet"},
                        "target": {"table": table, "columns": COLUMNS}, "sql": SQL}, f"test route {name}")


def parquet(ids: range | list[int]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(list(ids), pa.int64()),
                             "amount": pa.array([i * 1.25 for i in ids], pa.float64())}), buf)
    return buf.getvalue()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_kind: str) -> Iterator[Lake]:
    level = lambda_handler.logger.log_level
    lambda_handler.logger.setLevel("WARNING")  # in-process handler: warnings only, like the workers
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path, deployment)
    lambda_handler.logger.setLevel(level)


class Lake(MotoLake):
    """Buckets, routing and ledger tables, the declared table; helpers to drive the handler."""

    def __init__(self, tmp: Path, deployment: Deployment = DEPLOYMENT) -> None:
        super().__init__(tmp, deployment, (LANDING,))
        self.glue = boto3.client("glue")
        # the stack's warehouse is versioned: deleted metadata files stay as noncurrent versions
        self.s3.put_bucket_versioning(Bucket=WAREHOUSE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.routes = [route("orders", LANDING, TABLE)]

    def sync(self, *extra: Route) -> None:
        self.routes += extra
        sync_aws(self.routes, ROUTES_TABLE, WAREHOUSE)  # creates the declared tables up front

    # -- the handler

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        with contextlib.redirect_stdout(io.StringIO()):  # the EMF metrics lines
            return lambda_handler.handler({"Records": records}, LambdaContext("reliability", 300_000))

    # -- reading back

    def table(self, name: str = TABLE) -> Any:
        return super().table(name)

    def rows(self, name: str = TABLE) -> list[dict[str, Any]]:
        return sorted(self.table(name).scan().to_arrow().to_pylist(), key=lambda r: (r["id"], r["_source_key"]))

    def sources(self, name: str = TABLE) -> list[str]:
        """Every source the table records: retained snapshots' summaries, and the archive of
        the expired ones' (the automatic expiry runs after commits: core.archive)."""
        from lakeroute.core.ledger.archive import archived_entries

        table = self.table(name)
        return [e[0] for e in archived_entries(table)] + [
            s for snap in table.snapshots() if snap.summary
            for s in json.loads(snap.summary.additional_properties.get(SOURCES_PROP, "[]"))]

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def sqs_record(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A Lambda SQS record carrying ``body`` (for events not sent through a real queue)."""
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": json.dumps(body),
            "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:rel-ingest", "awsRegion": REGION}


def key_of(record: dict[str, Any]) -> str | None:
    body = json.loads(record["body"])
    if "Records" not in body:
        return None
    return unquote_plus(body["Records"][0]["s3"]["object"]["key"])


def metadata_files(lake: Lake, name: str = TABLE) -> tuple[int, dict[str, int]]:
    """Files under the table's metadata/ in S3, and those its metadata does not refer to, by kind."""
    table = lake.table(name)
    location = table.metadata.location.removeprefix(f"s3://{WAREHOUSE_BUCKET}/")
    listed = {f"s3://{WAREHOUSE_BUCKET}/{k}" for k in lake.keys(WAREHOUSE_BUCKET, f"{location}/metadata/")
              if not k.endswith("/")}  # not the zero-byte folder marker PyArrow's S3 writes create
    referenced = {table.metadata_location, *(m.metadata_file for m in table.metadata.metadata_log)}
    for snap in table.snapshots():
        referenced.add(snap.manifest_list)
        referenced.update(m.manifest_path for m in snap.manifests(table.io))
    orphans: dict[str, int] = {}
    for path in listed - referenced:
        kind = "metadata.json" if path.endswith(".metadata.json") else path.rsplit(".", 1)[-1]
        orphans[kind] = orphans.get(kind, 0) + 1
    return len(listed), orphans


def assert_exactly_once(lake: Lake, expected_ids: list[int], objects: int, name: str = TABLE) -> None:
    ids = [r["id"] for r in lake.rows(name)]
    assert len(ids) == len(set(ids)), "a row landed twice"
    assert sorted(ids) == sorted(expected_ids), "a row is missing"
    sources = lake.sources(name)
    assert len(sources) == len(set(sources)) == objects, "each object version recorded once"


# ---------------------------------------------------------------- worker processes


def run_workers(lake: Lake, events: list[list[dict[str, Any]]], timeout: float = 180) -> list[dict[str, Any]]:
    """One worker process per event (aws_worker.py), released together once all are ready."""
    run = lake.tmp / f"workers-{time.monotonic_ns()}"
    run.mkdir()
    for i, records in enumerate(events):
        (run / f"event-{i}.json").write_text(json.dumps({"Records": records}), encoding="utf-8")
    env = {**os.environ, "WORKER_LAMBDA_SECONDS": str(int(patience(300)))}
    with open(run / "out", "w") as out, open(run / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.aws_worker", str(run), str(len(events))],
                                cwd=REPO, stdout=out, stderr=err, env=env)
    started = time.monotonic()
    deadline = started + patience(timeout)
    try:
        while not all((run / f"ready-{i}").exists() for i in range(len(events))):
            assert proc.poll() is None, f"workers died before they were ready: {(run / 'err').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "workers did not get ready in time"
            time.sleep(0.02)
        ready = time.monotonic()
        (run / "go").touch()
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results = [json.loads((run / f"result-{i}.json").read_text()) if (run / f"result-{i}.json").exists()
               else {"error": "no result"} for i in range(len(events))]
    errors = [r["error"] for r in results if "error" in r]
    assert proc.returncode == 0 and not errors, (errors or [""])[0][-3000:] + (run / "err").read_text()[-3000:]
    for r in results:
        r["startup"] = round(ready - started, 2)
    return results


# ---------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.timeout(480)  # 32 processes on 2 cores against one moto server: minutes when the machine is busy
def test_32_concurrent_writers_distinct_files_one_table(lake: Lake) -> None:
    lake.sync()
    url, arn = lake.queue("rel-ingest")
    lake.notify(LANDING, arn)
    rows, files = 5, 64
    keys = [f"in/{i:04d}.parquet" for i in range(files)]
    for i, key in enumerate(keys):
        lake.s3.put_object(Bucket=LANDING, Key=key, Body=parquet(range(i * rows, (i + 1) * rows)))
    records = lake.drain(url)  # moto's own notifications
    by_key = {key_of(r): r for r in records}
    assert len(records) == files + 1 and None in by_key, "one notification per put + the s3:TestEvent"
    events = [[by_key[k] for k in keys[i::32]] for i in range(32)]
    events[0].append(by_key[None])

    results = run_workers(lake, events, timeout=420)

    # A commit still conflicted after its bounded attempts is reported (its messages come back
    # from SQS), with nothing of it in the table; the redelivery then lands it.
    failed_ids = {f["itemIdentifier"] for r in results for f in r["response"]["batchItemFailures"]}
    assert all(s in ("committed", "failed") for r in results for s in r["statuses"])
    assert sum(s == "failed" for r in results for s in r["statuses"]) == len(failed_ids)
    failed_keys = {key_of(r) for ev in events for r in ev if r["messageId"] in failed_ids}
    visible = {s.split("@")[0].removeprefix(f"{LANDING}/") for s in lake.sources()}
    assert not failed_keys & visible, "a commit reported failed left nothing behind"
    redelivered = [[r for r in ev if r["messageId"] in failed_ids] for ev in events]
    redelivered = [ev for ev in redelivered if ev]
    for ev in redelivered:
        assert lake.invoke(ev) == {"batchItemFailures": []}

    commits = [c for r in results for c in r["commits"]]
    why = [m.split(":")[0] for r in results for m in r["messages"]]
    retries = sum(c["attempts"] - 1 for c in commits)
    latencies = [c["seconds"] for c in commits]
    handler_p50 = percentile([r["seconds"] for r in results], 0.5)
    listed, orphans = metadata_files(lake)
    print(f"\n[AWS: 32 writer processes x 2 files, one Glue table] commits={len(commits)} retries={retries} "
          f"attempts max={max(c['attempts'] for c in commits)} (limit 12) "
          f"commit latency p50={percentile(latencies, 0.5) * 1000:.0f}ms "
          f"p99={percentile(latencies, 0.99) * 1000:.0f}ms handler p50={handler_p50:.1f}s "
          f"max={max(r['seconds'] for r in results):.1f}s; reported failed={len(failed_ids)} messages, "
          f"redelivered in {len(redelivered)} invocations {sorted(set(why))}; "
          f"workers ready in {results[0]['startup']:.1f}s; rows={len(lake.rows())} "
          f"snapshots={len(list(lake.table().snapshots()))}; metadata/ holds {listed} files, "
          f"unreferenced (left by conflicted attempts): {orphans}")
    assert len(commits) + len(redelivered) == 32, "one group commit per worker"
    assert len(list(lake.table().snapshots())) == 32
    assert_exactly_once(lake, list(range(files * rows)), files)


@pytest.mark.slow
@pytest.mark.timeout(480)
@pytest.mark.parametrize("catalog_kind", ["s3tables"], indirect=True)
def test_8_concurrent_writers_lose_no_commit_on_s3_tables_version_tokens(lake: Lake) -> None:
    """S3 Tables' version token is the only lock between 8 processes committing to one table
    (aws.s3tables; the Glue variant is the 32-writer test above): every commit lands or is
    reported failed and lands on redelivery, each object exactly once."""
    lake.sync()
    rows, files, workers = 5, 16, 8
    records = []
    for i in range(files):
        key, body = f"in/{i:04d}.parquet", parquet(range(i * rows, (i + 1) * rows))
        put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
        records.append(sqs_record(s3_notification(LANDING, key, put, len(body)), f"m-{i}"))
    events = [records[i::workers] for i in range(workers)]
    results = run_workers(lake, events, timeout=420)
    failed_ids = {f["itemIdentifier"] for r in results for f in r["response"]["batchItemFailures"]}
    redelivered = [[r for r in ev if r["messageId"] in failed_ids] for ev in events]
    redelivered = [ev for ev in redelivered if ev]
    for ev in redelivered:
        assert lake.invoke(ev) == {"batchItemFailures": []}
    commits = [c for r in results for c in r["commits"]]
    print(f"\n[AWS: {workers} writer processes x 2 files, one S3 Tables table] commits={len(commits)} "
          f"retries={sum(c['attempts'] - 1 for c in commits)} reported failed={len(failed_ids)} messages")
    assert len(commits) + len(redelivered) == workers
    assert len(list(lake.table().snapshots())) == workers
    assert_exactly_once(lake, list(range(files * rows)), files)


@pytest.mark.slow
@CATALOGS
def test_same_event_to_8_workers_at_once(lake: Lake) -> None:
    lake.sync()
    body = parquet(range(10))
    put = lake.s3.put_object(Bucket=LANDING, Key="in/once.parquet", Body=body)
    event = [sqs_record(s3_notification(LANDING, "in/once.parquet", put, len(body)), "m-once")]
    results = run_workers(lake, [event] * 8)
    statuses = sorted(s for r in results for s in r["statuses"])
    commits = [c for r in results for c in r["commits"]]
    print([m for r in results for m in r.get("messages", [])])
    print(f"\n[AWS: 8 workers, one event] statuses={statuses} commit attempts="
          f"{sorted(c['attempts'] for c in commits)} rows={len(lake.rows())} "
          f"snapshots={len(list(lake.table().snapshots()))}")
    assert all(r["response"] == {"batchItemFailures": []} for r in results)
    assert statuses.count("committed") == 1 and statuses.count("skipped") == 7
    assert len(list(lake.table().snapshots())) == 1
    assert_exactly_once(lake, list(range(10)), 1)


@pytest.mark.slow
def test_poison_file_quarantined_and_dead_lettered_good_files_committed(lake: Lake) -> None:
    lake.sync()
    dlq_url, dlq_arn = lake.queue("rel-ingest-dlq")
    url, arn = lake.queue("rel-ingest", VisibilityTimeout="1", RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))
    lake.notify(LANDING, arn)
    good = [f"in/good-{i}.parquet" for i in range(4)]
    for i, key in enumerate(good):
        lake.s3.put_object(Bucket=LANDING, Key=key, Body=parquet(range(i * 10, i * 10 + 10)))
    poison = "in/poison.parquet"
    lake.s3.put_object(Bucket=LANDING, Key=poison, Body=b"this is not parquet")

    # the Lambda SQS poller: receive -> handler -> delete what did not fail; until the DLQ has it
    invocations: list[tuple[list[str | None], list[str | None]]] = []
    deadline = time.monotonic() + 30
    while True:
        dlq_depth = int(lake.sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"])
        if dlq_depth:
            break
        assert time.monotonic() < deadline, f"the poison message never reached the DLQ: {invocations}"
        records = lake.receive_records(url)  # the queue's 1 s visibility timeout
        if not records:
            time.sleep(0.25)
            continue
        response = lake.invoke(records)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        names = {r["messageId"]: key_of(r) for r in records}
        invocations.append(([names[r["messageId"]] for r in records], [names[m] for m in failed]))
        assert {names[m] for m in failed} <= {poison}, "only the poison message is reported failed"
        if poison in names.values():
            assert [names[m] for m in failed] == [poison], "the poison message is reported failed"
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            lake.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)])

    dead = lake.receive_records(dlq_url)
    left = lake.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    quarantined = set(lake.keys(QUARANTINE_BUCKET, "quarantine/"))
    [entry] = {k.removesuffix("error.json") for k in quarantined if k.endswith("/error.json")}
    record = json.loads(lake.s3.get_object(Bucket=QUARANTINE_BUCKET, Key=entry + "error.json")["Body"].read())
    poison_deliveries = sum(1 for got, _ in invocations if poison in got)
    print(f"\n[AWS: poison in a batch, SQS redrive maxReceiveCount=2] invocations={len(invocations)} "
          f"poison delivered {poison_deliveries}x, failed items per invocation="
          f"{[f for _, f in invocations]} DLQ={[key_of(r) for r in dead]} queue left={left} "
          f"quarantine={sorted(quarantined)} stage={record['stage']} rows={len(lake.rows())}")
    assert [key_of(r) for r in dead] == [poison]
    assert left == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert poison_deliveries == 2, "delivered maxReceiveCount times, then dead-lettered"
    assert entry.startswith(f"quarantine/{LANDING}/{poison}/~v=")
    assert quarantined == {entry + "object.parquet", entry + "error.json"}
    assert lake.s3.get_object(Bucket=QUARANTINE_BUCKET, Key=entry + "object.parquet")[
        "Body"].read() == b"this is not parquet"
    assert (record["bucket"], record["key"], record["route"], record["stage"], record["attempts"]) == (
        LANDING, poison, "orders", "read", 2)
    assert f"{LANDING}/{poison}" in record["message"]
    assert_exactly_once(lake, list(range(40)), len(good))


@pytest.mark.slow
def test_test_event_ignored_and_out_of_order_versions(lake: Lake) -> None:
    a, b = "rel-versioned-a", "rel-versioned-b"
    lake.sync(route("ooo-a", a, "rel.ooo_a"), route("ooo-b", b, "rel.ooo_b"))
    url, arn = lake.queue("rel-ingest")
    for bucket in (a, b):
        lake.s3.create_bucket(Bucket=bucket)
        lake.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    # s3:TestEvent, as S3 sends it when the notification is configured: acknowledged, no commit
    lake.notify(a, arn)
    test_events = lake.drain(url)
    assert [json.loads(r["body"]).get("Event") for r in test_events] == ["s3:TestEvent"]
    response = lake.invoke(test_events)
    test_event_snapshots = len(list(lake.table("rel.ooo_a").snapshots()))
    lake.s3.put_bucket_notification_configuration(Bucket=a, NotificationConfiguration={})
    assert response == {"batchItemFailures": []} and test_event_snapshots == 0

    key = "in/same key.parquet"
    bodies = [parquet(range(0, 3)), parquet(range(100, 105))]  # v1, v2 of one key

    def deliver(bucket: str, order: list[int]) -> tuple[list[dict[str, Any]], list[str]]:
        puts = [lake.s3.put_object(Bucket=bucket, Key=key, Body=body) for body in bodies]
        records = [sqs_record(s3_notification(bucket, key, puts[v], len(bodies[v])), f"{bucket}-v{v + 1}")
                   for v in (0, 1)]
        responses = [lake.invoke([records[v]]) for v in order]  # one invocation per event
        assert responses == [{"batchItemFailures": []}] * 2
        return records, [p["VersionId"] for p in puts]

    records_a, versions_a = deliver(a, [1, 0])  # v2 first, then v1
    _, versions_b = deliver(b, [0, 1])  # in order
    rows_a, rows_b = lake.rows("rel.ooo_a"), lake.rows("rel.ooo_b")
    snapshots_before = len(list(lake.table("rel.ooo_a").snapshots()))
    redelivered = lake.invoke(records_a)  # both again, one batch
    rows_after = lake.rows("rel.ooo_a")
    print(f"\n[AWS: s3:TestEvent + versions delivered v2, v1] test event response={response} "
          f"snapshots after it={test_event_snapshots}; rows out of order={len(rows_a)} in order={len(rows_b)} "
          f"sources={sorted(s.rsplit('@', 1)[1][:8] for s in lake.sources('rel.ooo_a'))} "
          f"redelivery: response={redelivered} snapshots {snapshots_before}->"
          f"{len(list(lake.table('rel.ooo_a').snapshots()))} rows {len(rows_a)}->{len(rows_after)}")
    assert sorted(lake.sources("rel.ooo_a")) == sorted(f"{a}/{key}@{v}" for v in versions_a)
    assert sorted(lake.sources("rel.ooo_b")) == sorted(f"{b}/{key}@{v}" for v in versions_b)
    assert [r["id"] for r in rows_a] == [0, 1, 2, 100, 101, 102, 103, 104]
    assert rows_a == rows_b, "the order of delivery does not change the table"
    assert redelivered == {"batchItemFailures": []}
    assert rows_after == rows_a and len(list(lake.table("rel.ooo_a").snapshots())) == snapshots_before == 2


@pytest.mark.slow
def test_many_small_commits_keep_metadata_bounded(lake: Lake) -> None:
    lake.sync()
    runtime = lambda_handler.get_runtime()
    update_tables: list[dict[str, Any]] = []

    def record_update_table(params: dict[str, Any], **_: Any) -> None:
        update_tables.append({k: params.get(k) for k in ("SkipArchive", "VersionId")})

    runtime.pipeline.catalog.glue.meta.events.register(  # type: ignore[attr-defined]
        "provide-client-params.glue.UpdateTable", record_update_table)

    # 1,000 commits take ~5 min on moto (~0.33 s each on 2 cores): as many as fit in the
    # budget, and never fewer than `least` (past the merge and retention thresholds of 50).
    budget, least, most = 60.0, 120, 1000
    start = time.monotonic()
    took: list[float] = []
    while len(took) < least or (len(took) < most and time.monotonic() - start < budget):
        n = len(took)
        key = f"in/small-{n:05d}.parquet"
        body = parquet([n])
        put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=body)
        t = time.monotonic()
        response = lake.invoke([sqs_record(s3_notification(LANDING, key, put, len(body)), f"m{n}")])
        took.append(time.monotonic() - t)
        assert response == {"batchItemFailures": []}
    seconds = time.monotonic() - start
    commits = len(took)

    table = lake.table()
    manifests = table.current_snapshot().manifests(table.io)
    location = table.metadata.location.removeprefix(f"s3://{WAREHOUSE_BUCKET}/")
    metadata_files = [k for k in lake.keys(WAREHOUSE_BUCKET, f"{location}/metadata/") if k.endswith(".metadata.json")]
    versions = lake.s3.get_paginator("list_object_versions").paginate(
        Bucket=WAREHOUSE_BUCKET, Prefix=f"{location}/metadata/")
    noncurrent = sum(1 for page in versions for v in page.get("Versions", [])
                     if v["Key"].endswith(".metadata.json") and not v["IsLatest"])
    database, name = TABLE.split(".")
    glue_versions = lake.glue.get_table_versions(DatabaseName=database, TableName=name)["TableVersions"]
    skip = sorted({str(u["SkipArchive"]) for u in update_tables})
    print(f"\n[AWS: {commits} small commits in {seconds:.1f}s"
          f"{'' if commits == most else f' (the {budget:.0f}s budget; not {most})'}: handler "
          f"{sum(took[:20]) / 20 * 1000:.0f} ms per call over the first 20, {sum(took[-20:]) / 20 * 1000:.0f} ms "
          f"over the last 20] "
          f"UpdateTable calls={len(update_tables)} SkipArchive={skip} Glue table versions={len(glue_versions)} "
          f"(VersionId now {lake.glue.get_table(DatabaseName=database, Name=name)['Table']['VersionId']}) "
          f"manifests in current snapshot={len(manifests)} metadata.json kept={len(metadata_files)} "
          f"(+{noncurrent} noncurrent versions in the versioned bucket) snapshots={len(table.snapshots())}")
    from lakeroute.core.ledger.archive import chain

    expiries = len(list(chain(table)))  # each automatic expiry is one more UpdateTable
    assert expiries >= 1 and len(table.snapshots()) <= 26, "the automatic expiry keeps ~20 snapshots"
    assert len(update_tables) == commits + expiries and skip == ["True"], \
        "every UpdateTable asks Glue to skip the archive"
    assert len(glue_versions) <= 2, "Glue keeps no archived table version per commit"
    assert len(manifests) <= 60, "manifest merge keeps the manifest list bounded"
    assert len(metadata_files) <= 52, "old metadata files are deleted after commit"
    assert_exactly_once(lake, list(range(commits)), commits)


def test_conflicted_commit_leaves_no_orphan_metadata_file(lake: Lake) -> None:
    """Another writer commits between our GetTable and UpdateTable: we retry and land, cleanly."""
    lake.sync()
    catalog = lambda_handler.get_runtime().pipeline.catalog
    update_glue_table = catalog._update_glue_table  # type: ignore[attr-defined]
    raced: list[int] = []

    def another_writer_first(**kwargs: Any) -> None:
        if not raced:  # once: a plain PyIceberg append through its own catalog wins the race
            other = glue_catalog(WAREHOUSE).load_table(TABLE)
            other.append(pa.table({"id": pa.array([999], pa.int64()), "amount": [0.0],
                                   "_source_key": ["another writer"]}))
            raced.append(len(list(other.refresh().snapshots())))
        update_glue_table(**kwargs)

    catalog._update_glue_table = another_writer_first  # type: ignore[attr-defined]
    body = parquet(range(10))
    put = lake.s3.put_object(Bucket=LANDING, Key="in/raced.parquet", Body=body)
    response = lake.invoke([sqs_record(s3_notification(LANDING, "in/raced.parquet", put, len(body)), "m-raced")])
    listed, orphans = metadata_files(lake)
    print(f"\n[AWS: commit raced between GetTable and UpdateTable] response={response} "
          f"snapshots={len(list(lake.table().snapshots()))} rows={len(lake.rows())} metadata/ holds {listed} "
          f"files, unreferenced: {orphans}")
    assert response == {"batchItemFailures": []} and raced == [1]
    assert sorted(r["id"] for r in lake.rows()) == [*range(10), 999]
    assert len(lake.sources()) == 1
    assert orphans == {}, "the conflicted attempt's metadata.json is left behind"
