"""Stages side by side: physical names, stack outputs, alarms and dashboard, `-c routes=DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lakeroute.aws.route_sync import physical_items
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import Route

from stacks.config import StageConfigError

from .conftest import RETAINED_EVENTS_BUCKET
from .synth import (
    BASE_ROUTES,
    CREATED_LANDING,
    INGEST_CMD,
    REGION,
    Synth,
    cdk_context,
    function_by_cmd,
    physical,
    rendered,
    write_routes,
)

# ---------------------------------------------------------------- physical names


def explicit_names(s: Synth) -> dict[str, set[str]]:
    """Every name the stack fixes itself (what can collide in one account), by kind."""
    props = {k: v["Properties"] for k, v in s.json["Resources"].items()}
    kinds = {
        "bucket": ("AWS::S3::Bucket", lambda p: p.get("BucketName")),
        "database": ("AWS::Glue::Database", lambda p: p["DatabaseInput"]["Name"]),
        "alarm": ("AWS::CloudWatch::Alarm", lambda p: p.get("AlarmName")),
        "dashboard": ("AWS::CloudWatch::Dashboard", lambda p: p.get("DashboardName")),
    }
    result: dict[str, set[str]] = {}
    for kind, (type_, get) in kinds.items():
        values = [rendered(get(props[k])) for k in s.resources(type_)]
        assert None not in values or kind == "bucket", kind
        result[kind] = {v for v in values if v is not None}
    result["export"] = {o["Export"]["Name"] for o in s.json["Outputs"].values()}
    return result


def test_dev_and_prod_in_one_account_share_no_physical_name(dev: Synth, prod: Synth) -> None:
    dev_names, prod_names = explicit_names(dev), explicit_names(prod)
    for kind in dev_names:
        assert dev_names[kind], kind
        assert not dev_names[kind] & prod_names[kind], kind
    # The landing buckets are all there, each under its stage's name: before stages, both
    # stacks created "lr-test-sales" and the second failed with BucketAlreadyExists.
    for logical in CREATED_LANDING:
        assert physical(dev, logical) in dev_names["bucket"]
        assert physical(prod, logical) in prod_names["bucket"]
        assert logical not in dev_names["bucket"] | prod_names["bucket"]
    assert dev_names["database"] == {"partners_dev", "sales_dev", "web_dev"}
    assert prod_names["database"] == {"partners_prod", "sales_prod", "web_prod"}
    # Other buckets (warehouse, quarantine, logs) get CloudFormation-generated names.
    assert len(dev.resources("AWS::S3::Bucket")) - len(dev_names["bucket"]) == 3


def test_imported_buckets_keep_their_name_in_every_stage(dev: Synth, prod: Synth) -> None:
    for s in (dev, prod):
        assert physical(s, "lr-test-partner-drop") == "lr-test-partner-drop"
        assert "lr-test-partner-drop" not in explicit_names(s)["bucket"]


def test_stage_overrides_exact_names_imports_and_generation(prod_overridden: Synth) -> None:
    s = prod_overridden
    assert physical(s, "lr-test-sales") == "acme-sales-uploads"
    assert physical(s, "lr-test-events") == RETAINED_EVENTS_BUCKET
    created = explicit_names(s)["bucket"]
    assert created == {"acme-sales-uploads"}  # the retained bucket is imported, not created
    s.template.has_resource_properties("Custom::S3BucketNotifications", {
        "BucketName": RETAINED_EVENTS_BUCKET, "Managed": False})
    # databases: account, generation 2.
    assert explicit_names(s)["database"] == {"partners_g2", "sales_g2", "web_g2"}
    sync = next(iter(s.resources("Custom::LakerouteRouteSync").values()))["Properties"]
    assert sync["Namespaces"] == {"partners": "partners_g2", "sales": "sales_g2", "web": "web_g2"}
    assert rendered(sync["Buckets"])["lr-test-events"] == RETAINED_EVENTS_BUCKET
    # alarm_email: one e-mail subscription to the alarm topic.
    topic_id = s.stack.resolve(s.stack.monitoring.topic.node.default_child.logical_id)
    subs = list(s.resources("AWS::SNS::Subscription").values())
    assert [(x["Properties"]["Protocol"], x["Properties"]["Endpoint"], x["Properties"]["TopicArn"])
            for x in subs] == [("email", "data-oncall@example.com", {"Ref": topic_id})]


def test_the_route_sync_writes_routes_under_physical_names(dev: Synth) -> None:
    """What on_event does with the custom resource's properties once CloudFormation resolved
    them: the routing table gets physical buckets and the stage's databases."""
    props = rendered(next(iter(dev.resources("Custom::LakerouteRouteSync").values()))["Properties"])
    logical = json.loads(props["Routes"])
    items = physical_items(logical, buckets=props["Buckets"], namespaces=props["Namespaces"])
    got = {i["name"]: (i["bucket"], i["route"]["source"]["bucket"], i["route"]["target"]["table"])
           for i in items}
    sales, events = physical(dev, "lr-test-sales"), physical(dev, "lr-test-events")
    assert got == {
        "test-orders": (sales, sales, "sales_dev.orders"),
        "test-refunds": (sales, sales, "sales_dev.refunds"),
        "test-events": (events, events, "web_dev.events"),
        "test-partner-feed": ("lr-test-partner-drop", "lr-test-partner-drop", "partners_dev.feed"),
    }
    # Still the item shape of Route.to_item(), everything else unchanged.
    for item, original in zip(items, logical, strict=True):
        assert item == Route.from_item(item).to_item()
        assert {k: v for k, v in item["route"].items() if k not in ("source", "target")} == {
            k: v for k, v in original["route"].items() if k not in ("source", "target")}
    # Without a mapping (`lakeroute sync --routes-table`), logical names stay.
    assert physical_items(logical) == logical
    # A mapping that misses a name is an error, never a silently logical route in AWS.
    with pytest.raises(ConfigError, match="bucket 'lr-test-[a-z-]+' has no physical name"):
        physical_items(logical, buckets={"lr-test-events": events})


# ---------------------------------------------------------------- outputs

OUTPUT_IDS = {
    "Stage", "LandingBuckets", "LandingBucketLrTestEvents", "LandingBucketLrTestPartnerDrop",
    "LandingBucketLrTestSales", "GlueDatabases", "GlueDatabasePartners", "GlueDatabaseSales",
    "GlueDatabaseWeb", "IngestQueueUrl", "DeadLetterQueueUrl", "RoutesTableName", "LedgerTableName",
    "WarehouseUri", "QuarantineUri", "IngestFunctionName", "AlarmTopicArn", "DashboardName",
    "CommitLaneQueueUrl", "CommitLaneDeadLetterQueueUrl", "CommitLaneUri", "CommitFunctionName",
    "LargeObjectClusterName", "LargeObjectTaskFamily", "StoppedTaskFunctionName",
    "ProducerPolicyArnLrTestEvents", "ProducerPolicyArnLrTestPartnerDrop", "ProducerPolicyArnLrTestSales",
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_outputs_have_stable_names_exported_per_stage(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    outputs = s.json["Outputs"]
    # the sweep and the table maintenance: prod only
    assert set(outputs) == OUTPUT_IDS | ({"SweepFunctionName", "MaintenanceFunctionName"} if stage == "prod" else set())
    for key, output in outputs.items():
        assert output["Export"]["Name"] == f"lakeroute-{stage}-{key}"
        assert output["Description"]
    value = {k: rendered(v["Value"]) for k, v in outputs.items()}
    assert value["Stage"] == stage
    assert json.loads(value["LandingBuckets"]) == {
        b: physical(s, b) for b in ("lr-test-events", "lr-test-partner-drop", "lr-test-sales")}
    assert value["LandingBucketLrTestSales"] == physical(s, "lr-test-sales")
    assert json.loads(value["GlueDatabases"]) == {
        "partners": f"partners_{stage}", "sales": f"sales_{stage}", "web": f"web_{stage}"}
    assert value["GlueDatabaseWeb"] == f"web_{stage}"
    stack = s.stack
    ref = {"Ref": stack.resolve(stack.queue.queue.node.default_child.logical_id)}
    assert value["IngestQueueUrl"] == ref
    assert value["DeadLetterQueueUrl"] == {
        "Ref": stack.resolve(stack.queue.dead_letter_queue.node.default_child.logical_id)}
    assert value["RoutesTableName"] == {"Ref": stack.resolve(stack.tables.routes.node.default_child.logical_id)}
    assert value["LedgerTableName"] == {"Ref": stack.resolve(stack.tables.ledger.node.default_child.logical_id)}
    _, fn = function_by_cmd(s, INGEST_CMD)
    env = fn["Properties"]["Environment"]["Variables"]
    assert outputs["WarehouseUri"]["Value"] == env["LAKEROUTE_WAREHOUSE"]
    assert outputs["QuarantineUri"]["Value"] == env["LAKEROUTE_QUARANTINE"]
    assert value["AlarmTopicArn"] == {
        "Ref": stack.resolve(stack.monitoring.topic.node.default_child.logical_id)}
    assert value["DashboardName"] == {
        "Ref": stack.resolve(stack.monitoring.dashboard.node.default_child.logical_id)}
    tier = stack.large_objects
    assert tier is not None
    assert value["LargeObjectClusterName"] == {"Ref": stack.resolve(tier.cluster.node.default_child.logical_id)}
    assert value["LargeObjectTaskFamily"] == f"lakeroute-{stage}-large-object"
    assert value["StoppedTaskFunctionName"] == {
        "Ref": stack.resolve(tier.stop_function.node.default_child.logical_id)}
    lane = stack.lane
    assert value["CommitLaneQueueUrl"] == {"Ref": stack.resolve(lane.queue.node.default_child.logical_id)}
    assert value["CommitLaneDeadLetterQueueUrl"] == {
        "Ref": stack.resolve(lane.dead_letter_queue.node.default_child.logical_id)}
    assert outputs["CommitLaneUri"]["Value"] == env["LAKEROUTE_LANE"]
    assert value["CommitFunctionName"] == {"Ref": stack.resolve(lane.function.node.default_child.logical_id)}


# ---------------------------------------------------------------- alarms and dashboard


def flat(value: Any) -> str:
    """A rendered string value; references to resources become ``<ref>``."""
    v = rendered(value)
    if isinstance(v, str):
        return v
    sep, parts = v["Fn::Join"]
    return sep.join(p if isinstance(p, str) else "<ref>" for p in parts)


def alarms(s: Synth) -> dict[str, dict[str, Any]]:
    return {v["Properties"]["AlarmName"]: v["Properties"]
            for v in s.resources("AWS::CloudWatch::Alarm").values()}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_alarms_watch_the_right_metrics_and_notify_one_topic(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    stack, config = s.stack, s.stack.config
    ref = lambda c: {"Ref": stack.resolve(c.node.default_child.logical_id)}  # noqa: E731
    ingest_id, fn = function_by_cmd(s, INGEST_CMD)
    env = fn["Properties"]["Environment"]["Variables"]
    queue = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [ref(stack.queue.queue)["Ref"], "QueueName"]}}]
    dlq = [{"Name": "QueueName",
            "Value": {"Fn::GetAtt": [ref(stack.queue.dead_letter_queue)["Ref"], "QueueName"]}}]
    function = [{"Name": "FunctionName", "Value": {"Ref": ingest_id}}]
    tier = stack.large_objects
    assert tier is not None
    stop_function = [{"Name": "FunctionName", "Value": ref(tier.stop_function)}]
    stop_dlq = [{"Name": "QueueName",
                 "Value": {"Fn::GetAtt": [ref(tier.dead_letter_queue)["Ref"], "QueueName"]}}]
    lane_queue = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [ref(stack.lane.queue)["Ref"], "QueueName"]}}]
    lane_dlq = [{"Name": "QueueName",
                 "Value": {"Fn::GetAtt": [ref(stack.lane.dead_letter_queue)["Ref"], "QueueName"]}}]
    commit_function = [{"Name": "FunctionName", "Value": ref(stack.lane.function)}]
    # The handler's EMF metrics: Powertools namespace and `service` from the function's env.
    emf = [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    expected = {  # name: (namespace, metric, statistic, threshold, dimensions)
        "dlq-messages": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, dlq),
        "queue-oldest-message": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                                 config.oldest_message_alarm_seconds, queue),
        "ingest-errors": ("AWS/Lambda", "Errors", "Sum", 0, function),
        "ingest-throttles": ("AWS/Lambda", "Throttles", "Sum", 0, function),
        "objects-quarantined": (env["POWERTOOLS_METRICS_NAMESPACE"], "ObjectsQuarantined", "Sum", 0, emf),
        # The large-object tier: the stop handler's EMF metric (same namespace and service).
        "large-object-tasks-failed": (env["POWERTOOLS_METRICS_NAMESPACE"], "LargeObjectTasksFailed",
                                      "Sum", 0, emf),
        "stopped-task-errors": ("AWS/Lambda", "Errors", "Sum", 0, stop_function),
        "stopped-task-dlq": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, stop_dlq),
        # The commit lane: the commit function's stage-wide EMF metric (Powertools adds the
        # `service` dimension to it), the lane's DLQ and age, the function's errors.
        "freshness": (env["POWERTOOLS_METRICS_NAMESPACE"], "FreshnessMaxSeconds", "Maximum",
                      config.freshness_alarm_seconds, emf),
        "commit-lane-dlq": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, lane_dlq),
        "commit-errors": ("AWS/Lambda", "Errors", "Sum", 0, commit_function),
        "commit-lane-stuck": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                              2 * config.commit_timeout_seconds, lane_queue),
    }
    got = alarms(s)
    assert set(got) == {f"lakeroute-{stage}-{name}" for name in expected}
    topic = ref(stack.monitoring.topic)
    for name, (namespace, metric, statistic, threshold, dimensions) in expected.items():
        a = got[f"lakeroute-{stage}-{name}"]
        assert (a["Namespace"], a["MetricName"], a["Statistic"], a["Threshold"]) == (
            namespace, metric, statistic, threshold), name
        assert a["Dimensions"] == dimensions, name
        assert a["ComparisonOperator"] == "GreaterThanThreshold", name
        assert (a["Period"], a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (300, 1, 1), name
        assert a["TreatMissingData"] == "notBreaching", name
        assert a["AlarmActions"] == [topic] and a["OKActions"] == [topic], name
        assert a["AlarmDescription"], name
    # Objects no route takes are quarantined and counted in ObjectsQuarantined: this alarm says so.
    assert "no route" in got[f"lakeroute-{stage}-objects-quarantined"]["AlarmDescription"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "lakeroute"
    assert env["POWERTOOLS_SERVICE_NAME"] == f"lakeroute-{stage}"
    assert config.oldest_message_alarm_seconds == {"dev": 3600, "prod": 1800}[stage]


def test_alarm_topic_is_encrypted_ssl_only_and_usable_by_cloudwatch(dev: Synth) -> None:
    (topic,) = dev.resources("AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = dev.resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [st for st in key["KeyPolicy"]["Statement"]
                  if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert [sorted(st["Action"]) for st in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey*"]]
    (policy,) = dev.resources("AWS::SNS::TopicPolicy").values()
    assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for st in policy["Properties"]["PolicyDocument"]["Statement"])
    assert not dev.resources("AWS::SNS::Subscription")  # alarm_email: null


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_dashboard_has_the_stage_widgets(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    (dashboard,) = s.resources("AWS::CloudWatch::Dashboard").values()
    assert rendered(dashboard["Properties"]["DashboardName"]) == f"lakeroute-{stage}-{REGION}"
    body = json.loads(flat(dashboard["Properties"]["DashboardBody"]))
    text = json.dumps(body, separators=(",", ":"))
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert titles[1:] == [
        "Alarms", "Files", "Rows committed", "Iceberg commits", "Ingest duration",
        "Ingest invocations, errors, throttles", "Ingest concurrency", "Ingest queue depth",
        "Ingest queue: oldest message (s)", "DLQ depth",
        "Rows committed by route", "Objects committed by route",
        "Objects quarantined and failed by route", "Objects skipped by route", "Bytes read by route",
        "Seconds per object by route (max)", "Commit retries by route",
        "Large objects: handed off, tasks failed", "Stopped-task handler", "Stopped-task DLQ depth",
        "Freshness: pick-up to visible (s, max)", "Lane commits and objects by table",
        "Hand-offs waiting, commit retries by table", "Commit function", "Commit lane queue",
        "Commit lane DLQ depth"]
    for metric in ("ObjectsCommitted", "ObjectsSkipped", "ObjectsQuarantined", "ObjectsFailed", "ObjectsUnrouted",
                   "RowsCommitted", "Commits", "Duration", "Errors", "Throttles",
                   "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage",
                   "ObjectsHandedOff", "LargeObjectTasksFailed", "Invocations"):
        assert f'"{metric}"' in text, metric
    assert f'"lakeroute","ObjectsQuarantined","service","lakeroute-{stage}"' in text
    # Per route: a SEARCH over the {service, route, table} EMF metrics of this stage only.
    expressions = [m[0]["expression"] for w in body["widgets"] if w["type"] == "metric"
                   for m in w["properties"].get("metrics", []) if isinstance(m[0], dict)]
    assert expressions == [
        f"SEARCH('{{lakeroute,service,route,table}} service=\"lakeroute-{stage}\" "
        f"MetricName=\"{name}\"', '{statistic}', 300)"
        for name, statistic in (("RowsCommitted", "Sum"), ("ObjectsCommitted", "Sum"),
                                ("ObjectsQuarantined", "Sum"), ("ObjectsFailed", "Sum"),
                                ("ObjectsSkipped", "Sum"), ("BytesRead", "Sum"),
                                ("ObjectSeconds", "Maximum"), ("CommitRetries", "Sum"))] + [
        # Per table: the commit function's {service, table} metrics.
        f"SEARCH('{{lakeroute,service,table}} service=\"lakeroute-{stage}\" "
        f"MetricName=\"{name}\"', '{statistic}', 300)"
        for name, statistic in (("FreshnessMaxSeconds", "Maximum"), ("FreshnessP50Seconds", "Maximum"),
                                ("LaneCommits", "Sum"), ("LaneObjects", "Sum"),
                                ("LaneWaiting", "Maximum"), ("CommitRetries", "Sum"))]


# ---------------------------------------------------------------- -c routes=DIR


def test_routes_folder_from_context_is_relative_to_the_cwd(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import App

    from stacks.application import build

    write_routes(tmp_path / "other" / "routes", {"events.yaml": BASE_ROUTES["events.yaml"]})
    monkeypatch.chdir(tmp_path / "other")
    stack = build(App(context={**cdk_context("dev"), "routes": "routes"}))
    assert [r.name for r in stack.routes] == ["test-events"]
    with pytest.raises(StageConfigError, match="-c routes=missing: .* is not a folder"):
        build(App(context={**cdk_context("dev"), "routes": "missing"}))


def test_logical_names_that_give_one_output_id_fail_the_synth(tmp_path: Path) -> None:
    from aws_cdk import App

    from stacks.application import build
    from stacks.route_plan import RoutePlanError

    routes = write_routes(tmp_path / "routes", {
        "a.yaml": "name: a\nsource: {bucket: ab-cd}\ntarget: {table: ns.a}\n",
        "b.yaml": "name: b\nsource: {bucket: ab.cd}\ntarget: {table: ns.b}\n",
    })
    with pytest.raises(RoutePlanError, match="stack output id LandingBucketAbCd"):
        build(App(context=cdk_context("dev")), routes_dir=routes)
