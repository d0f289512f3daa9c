"""dev and prod deployed side by side to moto's CloudFormation, in one account and region.

The templates are the synthesized ones (``tests/infra/synth.py``, the path of ``cdk synth``);
the CDK bootstrap is emulated (its SSM version parameter, assets bucket and image repository)
and the stack's file assets are published to it, as ``cdk deploy`` does.

What moto's CloudFormation (5.2) does and does not do (shared/DESIGN.md §7): it creates the
buckets, tables, queues, functions, the event source mapping, the KMS key, the SNS topic and
the dashboard; it skips ``AWS::S3::BucketPolicy``, ``AWS::SQS::QueuePolicy``,
``AWS::Glue::Database``, ``AWS::SNS::TopicPolicy`` and ``AWS::CloudWatch::Alarm``; it runs no
custom resource (their Lambdas need Docker), so the stack stays ``CREATE_IN_PROGRESS``, no S3
notification is put and the route sync does not run. The tests therefore assert on the
resources that exist afterwards, and run the route sync, the ingest handler and the commit
handler (the commit lane) here, with the properties and the environment the deployed stack
gave them. One moto bug is worked
around in the uploaded template (``for_moto``): its KMS key model reads tags as
``TagKey``/``TagValue``.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from lakeroute import handler as lambda_handler
from lakeroute import lane_handler
from lakeroute.aws.catalog import glue_catalog
from lakeroute.aws.route_store import DynamoRouteStore
from lakeroute.sync import on_event

from tests.infra.synth import CREATED_LANDING, Synth, render, synth
from tests.support.aws_lake import ACCOUNT, LambdaContext, s3_notification
from tests.support.moto_server import REGION, MotoServer

STAGES = ("dev", "prod")
# Before stages, the landing buckets had the route files' names in every stage.
VERBATIM = {"buckets": {b: {"name": b} for b in CREATED_LANDING}}
# Resource types moto's CloudFormation has no model for (skipped, with a warning).
MOTO_SKIPS = {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::Glue::Database",
              "AWS::SNS::TopicPolicy", "AWS::CloudWatch::Alarm", "AWS::Lambda::EventInvokeConfig",
              "AWS::Logs::MetricFilter"}


def resolve(value: Any) -> Any:
    return render(value, account=ACCOUNT, region=REGION)


@pytest.fixture(scope="module")
def templates(base_routes_dir: Path, dev: Synth, prod: Synth,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    """dev and prod of BASE_ROUTES (the session's synths, ``tests/infra/fixtures.py``), and
    each stage again with the landing buckets named as before stages."""
    made = {"dev": dev, "prod": prod}
    assert tuple(made) == STAGES
    for stage in STAGES:
        made[f"{stage}-verbatim"] = synth(base_routes_dir, stage, tmp_path_factory.mktemp(f"cdk-{stage}-v"),
                                          VERBATIM)
    return made


# ---------------------------------------------------------------- cdk bootstrap + deploy, emulated


def _sub(text: str) -> str:
    return text.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)


def bootstrap() -> None:
    """What `cdk bootstrap` leaves that a deploy reads: the version parameter (the template's
    BootstrapVersion parameter), the file assets bucket and the image repository."""
    boto3.client("ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30",
                                      Type="String")
    boto3.client("s3").create_bucket(Bucket=f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}")
    boto3.client("ecr").create_repository(
        repositoryName=f"cdk-hnb659fds-container-assets-{ACCOUNT}-{REGION}")


def for_moto(template: dict[str, Any]) -> bytes:
    """The template as synthesized, but for moto 5.2's KMS key model, which takes the key's
    tags as ``TagKey``/``TagValue`` (CloudFormation's ``Key``/``Value`` fail with KeyError)."""
    fixed = json.loads(json.dumps(template))
    keys = [r for r in fixed["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    assert len(keys) == 1  # the alarm topic's
    for key in keys:
        key["Properties"]["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]}
                                     for t in key["Properties"].get("Tags", [])]
    return json.dumps(fixed).encode()


def deploy(s: Synth) -> dict[str, Any]:
    """Publish the stack's assets (file assets zipped, the image as a bare manifest), then
    CreateStack from the published template, as `cdk deploy` does. Returns the stack."""
    s3, ecr = boto3.client("s3"), boto3.client("ecr")
    manifest = json.loads((s.outdir / f"{s.stack.artifact_id}.assets.json").read_text())
    template_url = None
    for asset in manifest["files"].values():
        (dest,) = asset["destinations"].values()
        source = s.outdir / asset["source"]["path"]
        if asset["source"]["packaging"] == "zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for path in sorted(p for p in source.rglob("*") if p.is_file()):
                    archive.write(path, path.relative_to(source))
            body = buffer.getvalue()
        else:
            body = for_moto(s.json) if source == s.template_file else source.read_bytes()
        bucket = _sub(dest["bucketName"])
        s3.put_object(Bucket=bucket, Key=dest["objectKey"], Body=body)
        if source == s.template_file:
            template_url = f"https://{bucket}.s3.amazonaws.com/{dest['objectKey']}"
    for image in manifest["dockerImages"].values():
        (dest,) = image["destinations"].values()
        with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):  # published by a stage before
            ecr.put_image(repositoryName=_sub(dest["repositoryName"]), imageTag=dest["imageTag"],
                          imageManifest=json.dumps({
                              "schemaVersion": 2,
                              "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                              "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                         "size": 2, "digest": "sha256:" + "0" * 64},
                              "layers": []}))
    assert template_url, "the template is a file asset"
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName=s.stack.stack_name, TemplateURL=template_url,
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    (stack,) = cfn.describe_stacks(StackName=s.stack.stack_name)["Stacks"]
    return stack


def stack_resources(name: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource summary of a deployed stack."""
    pages = boto3.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=name)
    return {r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"]}


def physical_id(s: Synth, construct: Any) -> str:
    logical_id = s.stack.resolve(construct.node.default_child.logical_id)
    return str(stack_resources(s.stack.stack_name)[logical_id]["PhysicalResourceId"])


def landing(s: Synth) -> dict[str, str]:
    """Logical -> physical landing bucket of a stage in moto's account and region."""
    return {b: resolve(s.stack.resolve(p)) for b, p in s.stack.names.bucket_map().items()}


# ---------------------------------------------------------------- tests


def test_dev_and_prod_deploy_side_by_side_in_one_account(clean_aws: MotoServer,
                                                         templates: dict[str, Synth]) -> None:
    bootstrap()
    for stage in STAGES:
        stack = deploy(templates[stage])
        # Custom resources never complete on moto; nothing failed or rolled back either.
        assert stack["StackStatus"] == "CREATE_IN_PROGRESS", stack.get("StackStatusReason")
    buckets = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
    per_stack: dict[str, set[str]] = {}
    for stage in STAGES:
        s = templates[stage]
        resources = stack_resources(s.stack.stack_name)
        created = {r["PhysicalResourceId"] for r in resources.values()
                   if r["ResourceType"] == "AWS::S3::Bucket"}
        assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in resources.values()
                   if r["ResourceType"].startswith("AWS::")), stage
        assert len(created) == 5, created  # access logs, warehouse, quarantine, 2 landing
        assert created <= buckets
        for logical in CREATED_LANDING:
            assert landing(s)[logical] == f"{logical}-{stage}-{ACCOUNT}-{REGION}"
            assert landing(s)[logical] in created
        per_stack[stage] = created
        # The stack is complete but for what moto skips.
        missing = set(s.json["Resources"]) - set(resources)
        assert {s.json["Resources"][k]["Type"] for k in missing} == MOTO_SKIPS, missing
    # No bucket is shared, and no landing bucket has the route files' (logical) name.
    assert not per_stack["dev"] & per_stack["prod"]
    assert not set(CREATED_LANDING) & buckets
    assert len({landing(templates[s])[b] for s in STAGES for b in CREATED_LANDING}) == 4
    # Each stage has its own queues, tables and functions.
    for type_ in ("AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Lambda::Function",
                  "AWS::SNS::Topic", "AWS::CloudWatch::Dashboard"):
        ids = [{r["PhysicalResourceId"] for r in stack_resources(f"lakeroute-{s}").values()
                if r["ResourceType"] == type_} for s in STAGES]
        assert ids[0] and ids[1] and not ids[0] & ids[1], type_


def test_before_stages_the_second_stage_collided(clean_aws: MotoServer,
                                                 templates: dict[str, Synth]) -> None:
    """The failure mode this replaces: landing buckets named as in the route files."""
    bootstrap()
    deploy(templates["dev-verbatim"])
    assert {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]} >= set(CREATED_LANDING)
    with pytest.raises(ClientError) as failed:
        deploy(templates["prod-verbatim"])
    error = failed.value.response["Error"]
    assert error["Code"] == "BucketAlreadyExists" and error["BucketName"] in CREATED_LANDING


def test_deployed_stage_syncs_and_ingests_under_physical_names(
    clean_aws: MotoServer, templates: dict[str, Synth], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The route sync, fed the custom resource's properties as CloudFormation resolves them,
    writes physical routes; the ingest handler, with the deployed function's environment,
    stages an S3 event of the physical bucket and hands it off to the stage's commit lane; the
    commit handler, with the commit function's environment, commits it into the stage's Glue
    database."""
    bootstrap()
    for stage in STAGES:
        deploy(templates[stage])
    s = templates["dev"]
    # moto skips AWS::Glue::Database: create the stage's databases as CloudFormation would.
    glue = boto3.client("glue")
    for db in s.resources("AWS::Glue::Database").values():
        props = resolve(db["Properties"]["DatabaseInput"])
        glue.create_database(DatabaseInput={"Name": props["Name"]})
    fn_name = physical_id(s, s.stack.ingest.function)
    env = boto3.client("lambda").get_function_configuration(FunctionName=fn_name)["Environment"]["Variables"]
    for key, value in {**env, "LAKEROUTE_TMP": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)

    (sync,) = s.resources("Custom::LakerouteRouteSync").values()
    properties = resolve({k: v for k, v in sync["Properties"].items() if k != "ServiceToken"})
    assert on_event({"RequestType": "Create", "ResourceProperties": properties}, None)["Data"] == {
        "Routes": "4"}

    sales = landing(s)["lr-test-sales"]
    store = DynamoRouteStore(env["LAKEROUTE_ROUTES_TABLE"])
    assert sorted(r.name for r in store.bucket_routes(sales)) == ["test-orders", "test-refunds"]
    assert store.bucket_routes("lr-test-sales") == ()
    assert {r.target.table for r in store.bucket_routes(sales)} == {"sales_dev.orders", "sales_dev.refunds"}
    assert glue.get_table(DatabaseName="sales_dev", Name="orders")["Table"]["Name"] == "orders"
    # prod's databases were not touched by dev's sync.
    with pytest.raises(ClientError, match="EntityNotFound"):
        glue.get_database(Name="sales_prod")

    data = io.BytesIO()
    pq.write_table(pa.table({"order_id": pa.array([1, 2], pa.int64()),
                             "amount": pa.array(["1.50", "2.25"]).cast(pa.decimal128(12, 2)),
                             "order_ts": pa.array([0, 1], pa.timestamp("us", tz="UTC"))}), data)
    put = boto3.client("s3").put_object(Bucket=sales, Key="orders/a.parquet", Body=data.getvalue())
    event = {"Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "eventSource": "aws:sqs", "awsRegion": REGION,
        "body": json.dumps(s3_notification(sales, "orders/a.parquet", put, len(data.getvalue()))),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical_id(s, s.stack.queue.queue)}"}]}
    # moto's event source mappings would "invoke" the functions (in Docker): the test is the poller.
    for mapping in boto3.client("lambda").list_event_source_mappings(FunctionName=fn_name)["EventSourceMappings"]:
        boto3.client("lambda").update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    commit_name = physical_id(s, s.stack.lane.function)
    for mapping in boto3.client("lambda").list_event_source_mappings(FunctionName=commit_name)["EventSourceMappings"]:
        boto3.client("lambda").update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    lambda_handler.reset_runtime()
    try:
        assert lambda_handler.handler(event, LambdaContext("req-1", 120_000)) == {"batchItemFailures": []}
    finally:
        lambda_handler.reset_runtime()
    table = glue_catalog(env["LAKEROUTE_WAREHOUSE"]).load_table("sales_dev.orders")
    assert table.current_snapshot() is None, "staged and handed off: the commit lane commits"
    # The commit function: its own environment (the lane, not its queue: it commits).
    commit_env = boto3.client("lambda").get_function_configuration(FunctionName=commit_name)["Environment"]["Variables"]
    assert commit_env["LAKEROUTE_LANE"] == env["LAKEROUTE_LANE"] and "LAKEROUTE_LANE_QUEUE" not in commit_env
    monkeypatch.delenv("LAKEROUTE_LANE_QUEUE")
    for key, value in commit_env.items():
        monkeypatch.setenv(key, value)
    signals = boto3.client("sqs").receive_message(QueueUrl=env["LAKEROUTE_LANE_QUEUE"], MaxNumberOfMessages=10,
                                                  AttributeNames=["All"])["Messages"]
    assert [m["Attributes"]["MessageGroupId"] for m in signals] == ["sales_dev.orders"]
    try:
        assert lane_handler.handler({"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in signals]},
                                    LambdaContext("req-2", 300_000)) == {"batchItemFailures": []}
    finally:
        lambda_handler.reset_runtime()
    table = glue_catalog(env["LAKEROUTE_WAREHOUSE"]).load_table("sales_dev.orders")
    assert sorted(table.scan().to_arrow()["order_id"].to_pylist()) == [1, 2]
