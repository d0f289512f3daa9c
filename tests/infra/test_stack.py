"""The synthesized stack: the properties that matter (shared/DESIGN.md §6 and §8).

Each route set is synthesized once (session fixtures in conftest.py), through the same code
path as ``cdk synth`` (stage from context, cdk-nag registered).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Match

from tests.support.patience import patience

from .synth import ACCOUNT, INGEST_CMD, REGION, SYNC_CMD, Synth, function_by_cmd, physical, rendered

SERVICE_PREFIXES = ("s3:", "glue:", "dynamodb:")


# ---------------------------------------------------------------- helpers


def role_statements(s: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(function: dict[str, Any]) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]


def bucket_notifications(s: Synth) -> dict[str, list[dict[str, Any]]]:
    """Physical bucket name -> its queue configurations."""
    result: dict[str, list[dict[str, Any]]] = {}
    logical_to_name = {k: bucket_name(v) for k, v in s.resources("AWS::S3::Bucket").items()}
    for res in s.resources("Custom::S3BucketNotifications").values():
        props = res["Properties"]
        bucket = props["BucketName"]
        name = logical_to_name[bucket["Ref"]] if "Ref" in bucket else rendered(bucket)
        assert isinstance(name, str), bucket
        result[name] = props["NotificationConfiguration"].get("QueueConfigurations", [])
    return result


def bucket_name(resource: dict[str, Any]) -> str | None:
    return rendered(resource["Properties"].get("BucketName"))


def bucket_names(s: Synth) -> set[str | None]:
    return {bucket_name(v) for v in s.resources("AWS::S3::Bucket").values()}


def ingest_queue_id(s: Synth) -> str:
    return str(s.stack.resolve(s.stack.queue.queue.node.default_child.logical_id))


# ---------------------------------------------------------------- queue and event source


def test_queue_has_dlq_after_five_receives(dev: Synth) -> None:
    queues = dev.resources("AWS::SQS::Queue")
    main = [k for k, v in queues.items() if "RedrivePolicy" in v["Properties"]]
    # The ingest queue and its DLQ, the commit lane's FIFO queue and its DLQ
    # (tests/infra/test_commit_lane.py), and the large-object tier's DLQ of stopped-task events.
    assert sorted(main) == sorted([ingest_queue_id(dev), dev.stack.resolve(
        dev.stack.lane.queue.node.default_child.logical_id)]) and len(queues) == 5
    redrive = queues[ingest_queue_id(dev)]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dlq in queues and dlq != main[0]
    assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queues_are_encrypted_and_ssl_only(dev: Synth) -> None:
    queues = dev.resources("AWS::SQS::Queue")
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    for logical_id in queues:
        dev.template.has_resource_properties("AWS::SQS::QueuePolicy", {
            "Queues": Match.array_with([{"Ref": logical_id}]),
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
                "Effect": "Deny",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            })])},
        })


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_visibility_timeout_at_least_six_function_timeouts(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    _, fn = function_by_cmd(s, INGEST_CMD)
    queue = s.resources("AWS::SQS::Queue")[ingest_queue_id(s)]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]


def test_event_source_reports_batch_item_failures(dev: Synth) -> None:
    stage = dev.stack.config
    ingest_id, _ = function_by_cmd(dev, INGEST_CMD)
    # the ingest queue's, and the commit lane's (tests/infra/test_commit_lane.py)
    dev.template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)
    dev.template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": {"Fn::GetAtt": [ingest_queue_id(dev), "Arn"]},
        "FunctionName": {"Ref": ingest_id},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BatchSize": stage.batch_size,
        "MaximumBatchingWindowInSeconds": stage.max_batching_window_seconds,
        "ScalingConfig": {"MaximumConcurrency": stage.max_concurrency},
    })


# ---------------------------------------------------------------- functions


def test_functions_are_one_container_image(dev: Synth) -> None:
    _, ingest = function_by_cmd(dev, INGEST_CMD)
    _, sync = function_by_cmd(dev, SYNC_CMD)
    for fn in (ingest, sync):
        assert fn["Properties"]["PackageType"] == "Image"
        assert "Runtime" not in fn["Properties"]
    # Same image asset: one build, one push; only the CMD differs.
    assert ingest["Properties"]["Code"] == sync["Properties"]["Code"]
    stage = dev.stack.config
    assert ingest["Properties"]["MemorySize"] == stage.memory_mb
    assert ingest["Properties"]["Timeout"] == stage.timeout_seconds
    assert ingest["Properties"]["EphemeralStorage"] == {"Size": stage.ephemeral_storage_mb}
    assert ingest["Properties"]["TracingConfig"] == {"Mode": "Active"}


def test_ingest_environment(dev: Synth) -> None:
    _, ingest = function_by_cmd(dev, INGEST_CMD)
    env = ingest["Properties"]["Environment"]["Variables"]
    tables = dev.resources("AWS::DynamoDB::Table")
    routes = next(k for k, v in tables.items() if v["Properties"]["KeySchema"][0]["AttributeName"] == "bucket")
    ledger = next(k for k in tables if k != routes)
    assert env["LAKEROUTE_ROUTES_TABLE"] == {"Ref": routes}
    assert env["LAKEROUTE_LEDGER_TABLE"] == {"Ref": ledger}
    warehouse = env["LAKEROUTE_WAREHOUSE"]["Fn::Join"][1]
    assert warehouse[0] == "s3://" and warehouse[2] == "/warehouse"
    quarantine = env["LAKEROUTE_QUARANTINE"]["Fn::Join"][1]
    assert quarantine[0] == "s3://" and quarantine[2] == "/quarantine"
    assert warehouse[1] != quarantine[1]
    assert env["LAKEROUTE_CATALOG"] == "glue"
    # The EMF metrics' `service` dimension: one per stage, so alarms never mix stages.
    assert env["POWERTOOLS_SERVICE_NAME"] == "lakeroute-dev"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "lakeroute"
    assert env["LOG_LEVEL"] == dev.stack.config.log_level
    # The sync gets the same environment but for the large-object tier's and the commit lane's
    # (it never hands off).
    _, sync = function_by_cmd(dev, SYNC_CMD)
    assert sync["Properties"]["Environment"]["Variables"] == {
        k: v for k, v in env.items() if not k.startswith(("LAKEROUTE_TASK_", "LAKEROUTE_LARGE_", "LAKEROUTE_LANE"))}


def test_log_groups_have_stage_retention(dev: Synth, prod: Synth) -> None:
    for s in (dev, prod):
        groups = s.resources("AWS::Logs::LogGroup")
        # ingest, commit, sync, provider framework; large-object task, stop handler, VPC flow
        # logs; the reconcile sweep and the table maintenance (prod only)
        assert len(groups) == 7 + (s.stack.sweep is not None) + (s.stack.maintenance is not None)
        for group in groups.values():
            assert group["Properties"]["RetentionInDays"] == s.stack.config.log_retention_days
        for fn in s.resources("AWS::Lambda::Function").values():
            if fn["Properties"].get("PackageType") == "Image":
                assert fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups


# ---------------------------------------------------------------- storage


def test_every_bucket_encrypted_private_and_ssl_only(dev: Synth) -> None:
    buckets = dev.resources("AWS::S3::Bucket")
    assert len(buckets) == 5  # access logs, warehouse, quarantine, 2 created landing buckets
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }
        dev.template.has_resource_properties("AWS::S3::BucketPolicy", {
            "Bucket": {"Ref": logical_id},
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
                "Effect": "Deny",
                "Action": "s3:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            })])},
        })


def test_buckets_log_access_and_clean_up(dev: Synth) -> None:
    buckets = dev.resources("AWS::S3::Bucket")
    logs_bucket = [k for k, v in buckets.items() if "LoggingConfiguration" not in v["Properties"]]
    assert len(logs_bucket) == 1
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        if logical_id != logs_bucket[0]:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_bucket[0]}
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("AbortIncompleteMultipartUpload" in r for r in rules)


def test_warehouse_versioned_and_quarantine_expires(dev: Synth) -> None:
    storage = dev.stack.storage
    by_id = dev.resources("AWS::S3::Bucket")
    warehouse = by_id[dev.stack.resolve(storage.warehouse.node.default_child.logical_id)]
    quarantine = by_id[dev.stack.resolve(storage.quarantine.node.default_child.logical_id)]
    assert warehouse["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert any("NoncurrentVersionExpiration" in r
               for r in warehouse["Properties"]["LifecycleConfiguration"]["Rules"])
    expiry = [r.get("ExpirationInDays") for r in quarantine["Properties"]["LifecycleConfiguration"]["Rules"]]
    assert dev.stack.config.quarantine_expiry_days in expiry


def test_tables_on_demand_with_pitr(dev: Synth) -> None:
    dev.template.resource_count_is("AWS::DynamoDB::Table", 2)
    dev.template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "bucket", "KeyType": "HASH"},
                      {"AttributeName": "name", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    })
    dev.template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    })


def test_glue_database_per_namespace_and_stage(dev: Synth, prod: Synth) -> None:
    for s in (dev, prod):
        stage = s.stack.config.name
        dbs = s.resources("AWS::Glue::Database")
        names = sorted(v["Properties"]["DatabaseInput"]["Name"] for v in dbs.values())
        assert names == [f"partners_{stage}", f"sales_{stage}", f"web_{stage}"]
        for db in dbs.values():
            name = db["Properties"]["DatabaseInput"]["Name"]
            location = db["Properties"]["DatabaseInput"]["LocationUri"]["Fn::Join"][1]
            assert location[2] == f"/warehouse/{name}.db"
    dev.template.resource_count_is("AWS::Glue::Table", 0)  # the route sync creates tables


# ---------------------------------------------------------------- landing buckets


def test_landing_buckets_and_notifications(dev: Synth) -> None:
    sales, events = physical(dev, "lr-test-sales"), physical(dev, "lr-test-events")
    assert (sales, events) == (f"lr-test-sales-dev-{ACCOUNT}-{REGION}",
                               f"lr-test-events-dev-{ACCOUNT}-{REGION}")
    assert {sales, events} <= bucket_names(dev)
    # The logical names are not buckets of the stage.
    assert not {"lr-test-sales", "lr-test-events"} & bucket_names(dev)
    notifications = bucket_notifications(dev)
    queue_id = ingest_queue_id(dev)
    for configs in notifications.values():
        for config in configs:
            assert config["Events"] == ["s3:ObjectCreated:*"]
            assert config["QueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}

    def prefixes(bucket: str) -> list[str | None]:
        out = []
        for config in notifications[bucket]:
            rules = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            out.append(next((r["Value"] for r in rules if r["Name"] == "prefix"), None))
        return sorted(out, key=str)

    # Buckets the stack creates notify on every key (one rule, no filter), although every
    # route of lr-test-sales has a prefix: a misplaced file must reach the function.
    assert prefixes(sales) == [None]
    assert prefixes(events) == [None]
    assert [c.get("Filter") for c in notifications[sales]] == [None]
    # An imported bucket keeps one filtered notification per route prefix.
    assert prefixes("lr-test-partner-drop") == ["feed/"]


def test_existing_bucket_is_imported_not_created(dev: Synth) -> None:
    assert "lr-test-partner-drop" not in bucket_names(dev)
    dev.template.has_resource_properties("Custom::S3BucketNotifications", {
        "BucketName": "lr-test-partner-drop",
        "Managed": False,  # merges with the bucket's own notifications instead of replacing
    })


def test_new_route_file_for_new_bucket_adds_bucket_and_notification(
    dev: Synth, dev_new_bucket: Synth
) -> None:
    clicks = physical(dev_new_bucket, "lr-test-clicks")
    assert "lr-test-clicks" not in dev.stack.names.bucket_map()
    assert clicks not in bucket_names(dev) and clicks not in bucket_notifications(dev)
    assert clicks in bucket_names(dev_new_bucket)
    configs = bucket_notifications(dev_new_bucket)[clicks]
    assert [c.get("Filter") for c in configs] == [None], "a created bucket: every key, not only clicks/"
    # The rest is untouched; removing the file goes back to exactly the base buckets.
    assert bucket_names(dev_new_bucket) - bucket_names(dev) == {clicks}
    assert set(bucket_notifications(dev_new_bucket)) - set(bucket_notifications(dev)) == {clicks}
    # The ingest role may read the new bucket.
    _, fn = function_by_cmd(dev_new_bucket, INGEST_CMD)
    resources = [rendered(r) for st in role_statements(dev_new_bucket, role_of(fn))
                 if "s3:GetObject" in as_list(st["Action"]) for r in as_list(st["Resource"])]
    assert f"arn:aws:s3:::{clicks}/*" in resources


# ---------------------------------------------------------------- route sync


def test_route_sync_custom_resource_carries_the_route_set(dev: Synth, dev_new_bucket: Synth) -> None:
    resources = dev.resources("Custom::LakerouteRouteSync")
    assert len(resources) == 1
    props = next(iter(resources.values()))["Properties"]
    items = json.loads(props["Routes"])
    assert {i["name"] for i in items} == {r.name for r in dev.routes}
    assert sorted(items, key=lambda i: i["name"]) == sorted(
        (r.to_item() for r in dev.routes), key=lambda i: i["name"])
    for route in dev.routes:
        assert route.name in props["Routes"]
    assert props["RoutesHash"] == hashlib.sha256(props["Routes"].encode()).hexdigest()
    # The stage's names, resolved by CloudFormation, for the handler to write physical routes.
    assert rendered(props["Buckets"]) == {
        "lr-test-events": f"lr-test-events-dev-{ACCOUNT}-{REGION}",
        "lr-test-partner-drop": "lr-test-partner-drop",
        "lr-test-sales": f"lr-test-sales-dev-{ACCOUNT}-{REGION}",
    }
    assert props["Namespaces"] == {"partners": "partners_dev", "sales": "sales_dev", "web": "web_dev"}
    # The provider framework's function is the service token, and it calls the sync image.
    token_fn = props["ServiceToken"]["Fn::GetAtt"][0]
    sync_id, _ = function_by_cmd(dev, SYNC_CMD)
    framework = dev.resources("AWS::Lambda::Function")[token_fn]
    assert framework["Properties"]["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"] == {
        "Fn::GetAtt": [sync_id, "Arn"]}
    # A route change changes the hash: CloudFormation reruns the sync.
    more = next(iter(dev_new_bucket.resources("Custom::LakerouteRouteSync").values()))["Properties"]
    assert more["RoutesHash"] != props["RoutesHash"]
    assert "test-clicks" in more["Routes"]


def test_route_sync_runs_after_the_glue_databases(dev: Synth) -> None:
    cr = next(iter(dev.resources("Custom::LakerouteRouteSync").values()))
    assert set(dev.resources("AWS::Glue::Database")) <= set(cr.get("DependsOn", []))


# ---------------------------------------------------------------- IAM


def test_no_wildcard_resource_or_action_on_data_services(dev: Synth) -> None:
    for logical_id, policy in dev.resources("AWS::IAM::Policy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(st["Action"])
            data_actions = [a for a in actions if a.startswith(SERVICE_PREFIXES)]
            if not data_actions:
                continue
            assert "*" not in as_list(st["Resource"]), (logical_id, st)
            assert not any(a.endswith("*") for a in data_actions), (logical_id, st)
    for role in dev.resources("AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            for st in inline["PolicyDocument"]["Statement"]:
                if any(a.startswith(SERVICE_PREFIXES) for a in as_list(st["Action"])):
                    assert "*" not in as_list(st["Resource"])


def _refers_to(resource: Any, needle: str) -> bool:
    return needle in json.dumps(resource)


def test_ingest_role_reads_landing_buckets_only(dev: Synth) -> None:
    _, fn = function_by_cmd(dev, INGEST_CMD)
    statements = role_statements(dev, role_of(fn))
    statements = rendered(statements)
    landing = {physical(dev, b) for b in ("lr-test-sales", "lr-test-events", "lr-test-partner-drop")}
    landing_ids = {k for k, v in dev.resources("AWS::S3::Bucket").items() if bucket_name(v) in landing}
    read_only = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    seen: set[str] = set()
    for st in statements:
        for resource in as_list(st["Resource"]):
            hits = {b for b in landing | landing_ids if _refers_to(resource, b)}
            if hits:
                seen |= hits
                assert set(as_list(st["Action"])) <= read_only, st
    assert landing <= seen
    # Object reads: the whole bucket the stack creates (every key is notified, a key no route
    # takes is read to be quarantined); the imported bucket only under its route prefix.
    by_sid = {st.get("Sid"): st for st in statements}
    sales, events = physical(dev, "lr-test-sales"), physical(dev, "lr-test-events")
    assert sorted(by_sid["LandingObjectsRead"]["Resource"]) == sorted([
        f"arn:aws:s3:::{sales}/*", f"arn:aws:s3:::{events}/*", "arn:aws:s3:::lr-test-partner-drop/feed/*"])
    assert by_sid["LandingObjectsRead"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]


def granted(s: Synth, cmd: list[str]) -> dict[str, list[str]]:
    """What a function's role may do: resource (by what it names) -> sorted actions."""
    _, fn = function_by_cmd(s, cmd)
    return granted_to(s, role_of(fn))


def granted_to(s: Synth, role_logical_id: str) -> dict[str, list[str]]:
    """What a role may do: statement (Sid, else the resource by what it names) -> sorted actions."""
    storage, tables = s.stack.storage, s.stack.tables
    names = {
        s.stack.resolve(storage.warehouse.node.default_child.logical_id): "warehouse",
        s.stack.resolve(storage.quarantine.node.default_child.logical_id): "quarantine",
        s.stack.resolve(tables.routes.node.default_child.logical_id): "routes",
        s.stack.resolve(tables.ledger.node.default_child.logical_id): "ledger",
        s.stack.resolve(s.stack.queue.queue.node.default_child.logical_id): "queue",
        s.stack.resolve(s.stack.lane.queue.node.default_child.logical_id): "lane queue",
    }
    result: dict[str, list[str]] = {}
    for st in role_statements(s, role_logical_id):
        key = st.get("Sid") or next((n for lid, n in names.items() if _refers_to(st["Resource"], lid)),
                                    json.dumps(st["Resource"]))
        if any(a.startswith("logs:") for a in as_list(st["Action"])):
            key = "logs"
        elif any(a.startswith("xray:") for a in as_list(st["Action"])):
            key = "xray"
        assert key not in result, key
        result[key] = sorted(as_list(st["Action"]))
    return result


# What ingesting an object calls (the ingest function and the large-object task).
INGEST_DATA_GRANTS = {
    "LandingObjectsRead": ["s3:GetObject", "s3:GetObjectVersion"],
    "LandingList": ["s3:ListBucket"],
    "WarehouseObjectsReadWrite": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject",
                                  "s3:PutObject"],
    "WarehouseList": ["s3:ListBucket"],
    "QuarantineWrite": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
    "QuarantineList": ["s3:ListBucket"],
    "routes": ["dynamodb:Query"],
    "ledger": ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem",
               "dynamodb:PutItem"],
    "GlueNamespaces": ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"],
}


def test_ingest_role_grants_exactly_the_calls_it_makes(dev: Synth) -> None:
    """Each action is one the runtime calls (lakeroute/aws/, PyIceberg's GlueCatalog, the
    Lambda SQS poller): see stacks/tables.py, catalog.py, functions.py, storage.py."""
    assert granted(dev, INGEST_CMD) == {
        "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "xray": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "IngestQueueConsume": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
        **INGEST_DATA_GRANTS,
        # The large-object hand-off (tests/infra/test_large_objects.py checks resources, conditions).
        "LargeObjectRunTask": ["ecs:RunTask"],
        "LargeObjectPassRole": ["iam:PassRole"],
        # The commit-lane hand-off (tests/infra/test_commit_lane.py checks the resources).
        "LaneHandOff": ["s3:AbortMultipartUpload", "s3:PutObject"],
        "CommitLaneSend": ["sqs:SendMessage"],
    }
    _, fn = function_by_cmd(dev, INGEST_CMD)
    statements = role_statements(dev, role_of(fn))
    by_sid = {st.get("Sid"): st for st in statements}
    # Delete only inside the warehouse prefix (superseded metadata, never-committed staged files).
    deletes = [st for st in statements if "s3:DeleteObject" in as_list(st["Action"])]
    assert [st.get("Sid") for st in deletes] == ["WarehouseObjectsReadWrite"]
    assert "/warehouse/*" in json.dumps(deletes[0]["Resource"])
    assert "/quarantine/*" in json.dumps(by_sid["QuarantineWrite"]["Resource"])
    glue = rendered(by_sid["GlueNamespaces"]["Resource"])
    prefix = f"arn:aws:glue:{REGION}:{ACCOUNT}:"
    expected = [f"{prefix}catalog"]
    for db in ("partners_dev", "sales_dev", "web_dev"):
        expected += [f"{prefix}database/{db}", f"{prefix}table/{db}/*"]
    assert sorted(glue) == sorted(expected)


def test_sync_role_grants_exactly_the_calls_it_makes(dev: Synth) -> None:
    assert granted(dev, SYNC_CMD) == {
        "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "routes": ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan"],
        "WarehouseObjectsReadWrite": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject",
                                      "s3:PutObject"],
        "WarehouseList": ["s3:ListBucket"],
        "GlueNamespaces": ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"],
    }


def test_queue_accepts_s3_notifications_of_its_landing_buckets_in_its_account_only(dev: Synth) -> None:
    queue_id = dev.stack.resolve(dev.stack.queue.queue.node.default_child.logical_id)
    (policy,) = [p for p in dev.resources("AWS::SQS::QueuePolicy").values()
                 if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    allows = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert len(allows) == 1
    (st,) = rendered(allows)
    assert st["Principal"] == {"Service": "s3.amazonaws.com"}
    assert st["Action"] == "sqs:SendMessage"
    assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert sorted(st["Condition"]["ArnLike"]["aws:SourceArn"]) == sorted(
        f"arn:aws:s3:::{physical(dev, b)}" for b in ("lr-test-events", "lr-test-partner-drop", "lr-test-sales"))
    # Every notification is put after the policy exists (S3 checks it with a test event).
    policy_id = next(k for k, v in dev.resources("AWS::SQS::QueuePolicy").items() if v is policy)
    for res in dev.resources("Custom::S3BucketNotifications").values():
        assert policy_id in res["DependsOn"]


def test_function_roles_write_their_own_log_group_only(dev: Synth) -> None:
    # The ingest, commit, sync and stop-handler functions and the provider framework: own role,
    # own log group.
    functions = [v for v in dev.resources("AWS::Lambda::Function").values()
                 if "LogGroup" in v["Properties"].get("LoggingConfig", {})]
    assert len(functions) == 5
    for fn in functions:
        role = dev.resources("AWS::IAM::Role")[role_of(fn)]
        assert "ManagedPolicyArns" not in role["Properties"]
        log_group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        logs = [st for st in role_statements(dev, role_of(fn))
                if any(a.startswith("logs:") for a in as_list(st["Action"]))]
        assert logs == [{"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Effect": "Allow",
                         "Resource": {"Fn::GetAtt": [log_group, "Arn"]}}]


# ---------------------------------------------------------------- stages


def test_stages_differ(dev: Synth, prod: Synth) -> None:
    assert dev.stack.stack_name == "lakeroute-dev" and prod.stack.stack_name == "lakeroute-prod"
    for s, policy in ((dev, "Delete"), (prod, "Retain")):
        for type_ in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Glue::Database"):
            for res in s.resources(type_).values():
                assert res["DeletionPolicy"] == policy, (s.stack.stack_name, type_)
    for table in prod.resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] is True
    # dev empties its own buckets on deletion; prod never does.
    assert dev.resources("Custom::S3AutoDeleteObjects")
    assert not prod.resources("Custom::S3AutoDeleteObjects")
    _, dev_fn = function_by_cmd(dev, INGEST_CMD)
    _, prod_fn = function_by_cmd(prod, INGEST_CMD)
    assert dev_fn["Properties"]["MemorySize"] != prod_fn["Properties"]["MemorySize"]
    assert prod_fn["Properties"]["Timeout"] == prod.stack.config.timeout_seconds


# ---------------------------------------------------------------- cdk-nag, assets


@pytest.mark.parametrize("name", ["dev", "prod", "dev_new_bucket", "prod_overridden", "dev_tier_off",
                                  "prod_pinned"])
def test_cdk_nag_has_no_unacknowledged_findings(name: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(name)
    reports = {r["pluginName"]: r for r in s.report["pluginReports"]}
    assert "AwsSolutions" in reports, "cdk-nag AwsSolutions did not run"
    nag = reports["AwsSolutions"]
    assert nag["violations"] == [], json.dumps(nag["violations"], indent=1)[:4000]
    assert nag["conclusion"] == "success"
    for finding in nag["suppressedViolations"]:
        assert len(finding["reason"]) >= 30, finding["ruleName"]
    # Every acknowledgment in the code answers a finding (none stale, none blanket). Only
    # cdk-nag's: CDK itself acknowledges CloudFormation-Validate rules (on the VPC flow log).
    used = {(f["acknowledgedAt"], f["acknowledgedId"]) for f in nag["suppressedViolations"]}
    declared = {
        (c.node.path, rule)
        for c in s.stack.node.find_all()
        for m in c.node.metadata if m.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in m.data if rule.startswith("AwsSolutions::")
    }
    assert declared == used


def test_image_build_context_is_allow_listed(dev: Synth) -> None:
    assets = json.loads((dev.outdir / f"{dev.stack.artifact_id}.assets.json").read_text())
    images = assets["dockerImages"]
    assert len(images) == 1  # shared by the ingest, commit, sync and stop functions and the Fargate task
    source = next(iter(images.values()))["source"]
    assert source["dockerFile"] == "lambda_src/Dockerfile"
    assert source.get("platform") == "linux/amd64"
    staged = dev.outdir / source["directory"]
    for path in ("pyproject.toml", "uv.lock", "lambda_src/Dockerfile",
                 "lambda_src/lakeroute/__init__.py", "lambda_src/lakeroute/core/routes/model.py",
                 "lambda_src/lakeroute/aws/runtime.py", "lambda_src/lakeroute/handler.py"):
        assert (staged / path).is_file(), path
    top = {p.name for p in staged.iterdir()}
    assert top - {".dockerignore"} == {"pyproject.toml", "uv.lock", "lambda_src"}
    assert {p.name for p in (staged / "lambda_src").iterdir()} == {"Dockerfile", "lakeroute"}
    assert not list(staged.rglob("__pycache__"))


@pytest.mark.parametrize("stage", ["dev", "prod", "prod_overridden", "dev_tier_off"])
def test_cfn_lint_passes(stage: str, request: Any) -> None:
    """cfn-lint on the synthesized template (what `make synth` runs)."""
    import subprocess
    import sys

    s: Synth = request.getfixturevalue(stage)
    templates = sorted(str(p) for p in s.outdir.glob("*.template.json"))
    assert templates, "synth wrote a template"
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    proc = subprocess.run([cfn_lint, *templates], capture_output=True, text=True,
                          timeout=patience(240))
    assert proc.returncode == 0, proc.stdout + proc.stderr
