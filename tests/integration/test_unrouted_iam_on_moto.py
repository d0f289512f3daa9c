"""Unrouted files are never silent in AWS (issue 22, point 6), with IAM enforced on moto.

The dev stage's template deployed to moto's CloudFormation, its roles readied for moto's
authorization, the function run in a subprocess with the ingest role's credentials
(``tests/support/iam.py``, as in ``test_iam_on_moto.py``). The notifications are those the
stack's custom resource would put (a bucket the stack creates: every key, no filter), so a
file an ``uploader`` puts outside every route prefix reaches the queue; the ingest handler
quarantines it "no route" (HEAD and copy of the original: the landing read grant must cover
the whole bucket), acknowledges it (not a batch item failure) and counts it. With the grant
narrowed back to the route prefixes (what the stack granted before), the same run is denied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.infra.synth import Synth
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
    summary,
)
from tests.support.iam import Audit, as_list, iam_enforced, start_audited_moto_server
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

MISPLACED = "order/2026/misplaced.parquet"  # the route reads orders/


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


def ingest_once(run: Run, clean_aws: MotoServer) -> tuple[list[dict[str, Any]], Any]:
    with iam_enforced(clean_aws.endpoint):
        assert run.sync().error is None
        run.upload({GOOD_KEY: parquet(2), MISPLACED: parquet(1, first=9)})
        fn, poller, logs = run.ingest()
        with fn:
            batch = poller.receive({GOOD_KEY, MISPLACED})
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
