"""Unrouted files are never silent in AWS (issue 22, point 6), with IAM enforced on moto.

The dev stage's template deployed to moto's CloudFormation, its roles readied for moto's
authorization, the function run in a subprocess with the ingest role's credentials
(``tests/support/iam.py``, as in ``test_iam_on_moto.py``). The notifications are those the
stack's custom resource would put (a bucket the stack creates: every key, no filter), so a
file an ``uploader`` puts outside every route prefix reaches the queue; the ingest handler
quarantines it "no route" (HEAD and copy of the original: the landing read grant must cover
the whole bucket), acknowledges it (not a batch item failure) and counts it. With the grant
narrowed back to the route prefixes (what the stack granted before), the same run is denied.

The reconcile sweep (prod: it has one) with its deployed role: a misplaced file already in the
quarantine is not sent again, one whose notification was lost is; without the role's
quarantine-records read the sweep is denied and fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.infra.synth import Synth, function_by_cmd
from tests.integration.test_iam_on_moto import (
    GOOD_KEY,
    SALES,
    Run,
    Stage,
    assert_nothing_denied,
    by_key,
    denied,
    failures,
    parquet,
    report,
    runtime_env,
    summary,
)
from tests.support.iam import (
    Audit,
    FunctionProcess,
    as_list,
    iam_enforced,
    ready_for_moto,
    start_audited_moto_server,
    without_resource,
)
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

MISPLACED = "order/2026/misplaced.parquet"  # the route reads orders/
LOST = "order/2026/lost.parquet"  # misplaced too, and its notification lost
SWEEP_CMD = ["lakeroute.sweep.handler"]


@pytest.fixture(scope="module")
def audit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("iam-audit-unrouted") / "audit.jsonl"


@pytest.fixture(scope="module")
def moto(audit_file: Path) -> Iterator[MotoServer]:
    with start_audited_moto_server(audit_file) as server:
        yield server


@pytest.fixture
def audit(clean_aws: MotoServer, audit_file: Path) -> Audit:
    found = Audit(audit_file)
    found.mark()
    return found


def route_prefixes_only(bucket: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A document edit: the landing read of ``bucket`` narrowed to its route prefixes again."""
    whole = f"arn:aws:s3:::{bucket}/*"

    def edit(document: dict[str, Any]) -> dict[str, Any]:
        statements = []
        for st in as_list(document["Statement"]):
            resources = as_list(st.get("Resource"))
            if whole in resources:
                st = {**st, "Resource": [r for r in resources if r != whole] + [
                    f"arn:aws:s3:::{bucket}/orders/*", f"arn:aws:s3:::{bucket}/refunds/*"]}
            statements.append(st)
        return {**document, "Statement": statements}

    return edit


def ingest_once(run: Run, clean_aws: MotoServer, *, lost: bool = False) -> tuple[list[dict[str, Any]], Any]:
    """The sync, the uploads, one ingest batch (IAM enforced). ``lost``: one more misplaced
    file whose notification is deleted before the batch (for the sweep to find)."""
    with iam_enforced(clean_aws.endpoint):
        assert run.sync().error is None
        lost_file = {LOST: parquet(1, first=7)} if lost else {}
        run.upload({GOOD_KEY: parquet(2), MISPLACED: parquet(1, first=9), **lost_file})
        fn, poller, logs = run.ingest()
        with fn:
            batch = poller.receive({GOOD_KEY, MISPLACED, *([LOST] if lost else [])})
            if lost:
                poller.delete([by_key(batch, LOST)])
                batch = [r for r in batch if r is not by_key(batch, LOST)]
            invocation = logs.invocation(fn.invoke({"Records": batch}))
            poller.delete([r for r in batch if r["messageId"] not in failures(invocation)])
            run.record("ingest", fn, invocation)
    return batch, invocation


def test_an_unrouted_file_is_quarantined_once_under_the_deployed_grants(
        clean_aws: MotoServer, dev: Synth, audit: Audit, tmp_path: Path) -> None:
    stage = Stage.deploy(dev)
    (notification,) = boto3.client("s3").get_bucket_notification_configuration(
        Bucket=stage.landing[SALES])["QueueConfigurations"]
    assert "Filter" not in notification, notification  # every key of the created bucket
    run = Run.prepare(stage, clean_aws, tmp_path)
    batch, invocation = ingest_once(run, clean_aws)
    checks = audit.checks()
    print("\n" + report(run, checks))
    assert_nothing_denied(run, checks)

    assert failures(invocation) == set(), "the unrouted file is acknowledged, not failed back"
    assert {k: summary(invocation)[k] for k in ("quarantined", "failed")} == {"quarantined": 1, "failed": 0}
    (logged,) = [log for log in invocation.logs() if log["message"] == "quarantined"]
    assert (logged["key"], logged["unrouted"]) == (MISPLACED, True)
    assert logged["reason"].startswith(f"no route for {stage.landing[SALES]}/{MISPLACED}; "), logged["reason"]
    assert "orders/" in logged["reason"], "names the closest route's folder"
    emf = [json.loads(line) for line in invocation.output if line.startswith('{"_aws"')]
    (total,) = [d for d in emf if "route" not in d]
    assert (total["ObjectsUnrouted"], total["ObjectsQuarantined"]) == ([1.0], [1.0])
    s3 = boto3.client("s3")
    records = [o["Key"] for o in s3.list_objects_v2(Bucket=stage.quarantine_bucket)["Contents"]
               if o["Key"].endswith("/error.json")]
    (record_key,) = records
    record = json.loads(s3.get_object(Bucket=stage.quarantine_bucket, Key=record_key)["Body"].read())
    assert (record["key"], record["attempts"], record["object_copied"]) == (MISPLACED, 1, True), record
    assert by_key(batch, MISPLACED)["attributes"]["ApproximateReceiveCount"] == "1"


def test_with_the_read_grant_narrowed_to_route_prefixes_the_unrouted_file_is_denied(
        clean_aws: MotoServer, dev: Synth, audit: Audit, tmp_path: Path) -> None:
    stage = Stage.deploy(dev)
    run = Run.prepare(stage, clean_aws, tmp_path, edits={"ingest": route_prefixes_only(stage.landing[SALES])})
    batch, invocation = ingest_once(run, clean_aws)
    checks = audit.checks()
    print("\n" + report(run, checks))
    refused = denied(checks)
    assert refused and {(c.action, c.resource.rsplit("/", 1)[0]) for c in refused} == {
        ("s3:GetObject", f"arn:aws:s3:::{stage.landing[SALES]}/order/2026")}, refused
    # Not silently dropped: the object fails (it is retried, then dead-lettered) with the denial.
    assert failures(invocation) == {by_key(batch, MISPLACED)["messageId"]}


def with_send_batch(document: dict[str, Any]) -> dict[str, Any]:
    """AWS authorizes SendMessageBatch as ``sqs:SendMessage``; moto 5.2 as its own action: the
    statements granting the one get the other, for moto only (the template is unchanged)."""
    statements = []
    for st in as_list(document["Statement"]):
        actions = as_list(st.get("Action", []))
        if "sqs:SendMessage" in actions:
            st = {**st, "Action": [*actions, "sqs:SendMessageBatch"]}
        statements.append(st)
    return {**document, "Statement": statements}


def sweep_run(run: Run, stage: Stage, clean_aws: MotoServer, tmp_path: Path,
              edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Any:
    """The sweep function once, with its deployed role (readied for moto, ``edit``ed) and
    environment (settle 0: the objects were just put)."""
    # The imported bucket exists in a real account (the stack never creates it); the sweep lists it.
    boto3.client("s3").create_bucket(Bucket="lr-test-partner-drop")
    logical, _ = function_by_cmd(stage.s, SWEEP_CMD)
    role_id = stage.s.json["Resources"][logical]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = stage.role(role_id)
    run.roles["sweep"] = role
    run.notes["sweep"] = ready_for_moto(boto3.client("iam"), role, trusted=run.tester_arn,
                                       edit=lambda d: with_send_batch(edit(d) if edit else d))
    config = stage.function(SWEEP_CMD)
    with iam_enforced(clean_aws.endpoint):
        env = runtime_env(config["Environment"]["Variables"], run.credentials("sweep"), clean_aws.endpoint,
                          tmp_path / "sweep", AWS_LAMBDA_FUNCTION_NAME=config["FunctionName"],
                          LAKEROUTE_SWEEP_SETTLE_SECONDS="0")
        with FunctionProcess(SWEEP_CMD[0], env, stderr=tmp_path / "sweep.stderr", function_name=config["FunctionName"],
                             memory_mb=config["MemorySize"]) as fn:
            invocation = fn.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
            run.record("sweep", fn, invocation)
    return invocation


def test_the_sweep_sends_a_lost_unrouted_file_once_under_its_deployed_grants(
        clean_aws: MotoServer, prod: Synth, audit: Audit, tmp_path: Path) -> None:
    """prod (it has the sweep): a misplaced file quarantined by its notification is held by the
    quarantine (not sent again); one whose notification was lost is sent, once."""
    stage = Stage.deploy(prod)
    run = Run.prepare(stage, clean_aws, tmp_path)
    _, invocation = ingest_once(run, clean_aws, lost=True)
    assert failures(invocation) == set() and summary(invocation)["quarantined"] == 1
    swept = sweep_run(run, stage, clean_aws, tmp_path)
    checks = audit.checks()
    print("\n" + report(run, checks))
    assert_nothing_denied(run, checks)
    assert swept.error is None, swept.error
    assert (swept.result["unrouted"], swept.result["swept"]) == (1, 1), swept.result  # LOST; GOOD_KEY is a candidate
    sent = [json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in boto3.client("sqs").receive_message(
        QueueUrl=stage.queue_url, MaxNumberOfMessages=10).get("Messages", []) if "Records" in json.loads(m["Body"])]
    # GOOD_KEY too: it was handed off to the commit lane, not committed (no commit runs here).
    assert sorted(sent) == sorted([LOST, GOOD_KEY]), "the quarantined misplaced file is not sent again"
    used = {c.action for c in checks if c.role == run.roles["sweep"].name and c.allowed}
    assert {"s3:GetObject", "s3:ListBucket"} <= used


def test_the_sweep_without_the_quarantine_records_grant_is_denied(
        clean_aws: MotoServer, prod: Synth, audit: Audit, tmp_path: Path) -> None:
    stage = Stage.deploy(prod)
    run = Run.prepare(stage, clean_aws, tmp_path)
    ingest_once(run, clean_aws, lost=True)
    records = f"arn:aws:s3:::{stage.quarantine_bucket}/quarantine/*/error.json"
    swept = sweep_run(run, stage, clean_aws, tmp_path, edit=without_resource("s3:GetObject", records))
    refused = denied(audit.checks())
    assert refused and {(c.role, c.action) for c in refused} == {(run.roles["sweep"].name, "s3:GetObject")}, refused
    assert all(c.resource.startswith(f"arn:aws:s3:::{stage.quarantine_bucket}/quarantine/") for c in refused)
    assert swept.error is not None and "quarantine" in swept.error, swept.error  # the run fails, loudly
