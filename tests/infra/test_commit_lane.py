"""The commit lane in the stack (stacks/commit_lane.py): the FIFO queue and its DLQ, the commit
function from the ingest function's image, its event source, the lane's environment on every
function, least privilege, the freshness alarm and the stage settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.commit_lane import LANE_CMD
from stacks.config import StageConfig, StageConfigError

from .synth import ACCOUNT, INGEST_CMD, REGION, SYNC_CMD, Synth, cdk_context, function_by_cmd, physical, rendered
from .test_stack import INGEST_DATA_GRANTS, as_list, granted, role_of, role_statements

COMMIT_CMD = list(LANE_CMD)
SWEEP_CMD = ["lakeroute.sweep.handler"]
MAINTAIN_CMD = ["lakeroute.maintain.handler"]
STOPPED_CMD = ["lakeroute.task.on_stopped"]


def lid(s: Synth, construct: Any) -> str:
    return str(s.stack.resolve(construct.node.default_child.logical_id))


def env_of(s: Synth, cmd: list[str]) -> dict[str, Any]:
    return dict(function_by_cmd(s, cmd)[1]["Properties"]["Environment"]["Variables"])


def lane_uri(s: Synth) -> dict[str, Any]:
    return {"Fn::Join": ["", ["s3://", {"Ref": lid(s, s.stack.storage.warehouse)}, "/lane"]]}


# ---------------------------------------------------------------- queue, DLQ, event source


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_lane_is_a_high_throughput_fifo_queue_with_a_fifo_dlq(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    queues = s.resources("AWS::SQS::Queue")
    queue, dlq = queues[lid(s, s.stack.lane.queue)]["Properties"], lid(s, s.stack.lane.dead_letter_queue)
    # The sender sets the deduplication id (the hand-off id): two hand-offs with the same body
    # are two messages; dedup and throughput limits per message group (= table).
    assert (queue["FifoQueue"], queue["ContentBasedDeduplication"]) == (True, False)
    assert (queue["DeduplicationScope"], queue["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5}
    assert queues[dlq]["Properties"]["FifoQueue"] is True  # a FIFO queue's DLQ must be FIFO
    # FIFO names end in .fifo; per stage (and generation), so stages never share a lane.
    assert queue["QueueName"] == f"lakeroute-{stage}-commit-lane.fifo"
    assert queues[dlq]["Properties"]["QueueName"] == f"lakeroute-{stage}-commit-lane-dlq.fifo"
    assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    for logical in (lid(s, s.stack.lane.queue), dlq):
        assert queues[logical]["Properties"]["SqsManagedSseEnabled"] is True
        (policy,) = [p for p in s.resources("AWS::SQS::QueuePolicy").values()
                     if p["Properties"]["Queues"] == [{"Ref": logical}]]
        # SSL only, and no principal may send but through its own role (no resource policy Allow).
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert [(st["Effect"], st["Condition"]) for st in statements] == [
            ("Deny", {"Bool": {"aws:SecureTransport": "false"}})]
    # Never visible again while an invocation may still hold it: 6x the commit timeout.
    _, fn = function_by_cmd(s, COMMIT_CMD)
    assert fn["Properties"]["Timeout"] == s.stack.config.commit_timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] == {"dev": 1800, "prod": 5400}[stage]


def test_a_new_generation_gets_new_lane_queue_names(prod_overridden: Synth) -> None:
    """Redeployed next to what a deleted prod stack retained (generation 2): no name clash."""
    s = prod_overridden
    names = {q["Properties"].get("QueueName") for q in s.resources("AWS::SQS::Queue").values()}
    assert {"lakeroute-prod-g2-commit-lane.fifo", "lakeroute-prod-g2-commit-lane-dlq.fifo"} <= names


def test_commit_function_is_fed_by_the_fifo_queue_in_batches_of_ten(dev: Synth) -> None:
    commit_id, _ = function_by_cmd(dev, COMMIT_CMD)
    (mapping,) = [m["Properties"] for m in dev.resources("AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["FunctionName"] == {"Ref": commit_id}]
    assert mapping == {
        "BatchSize": 10,
        "EventSourceArn": {"Fn::GetAtt": [lid(dev, dev.stack.lane.queue), "Arn"]},
        "FunctionName": {"Ref": commit_id},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],  # a failed table alone is retried
        "Tags": mapping["Tags"],
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_commit_function_is_the_ingest_image_with_the_lane_handler(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    config = s.stack.config
    _, commit = function_by_cmd(s, COMMIT_CMD)
    _, ingest = function_by_cmd(s, INGEST_CMD)
    props = commit["Properties"]
    assert props["Code"] == ingest["Properties"]["Code"]  # one image asset: one build, one push
    assert props["ImageConfig"] == {"Command": ["lakeroute.lane_handler.handler"]}
    assert (props["MemorySize"], props["Timeout"]) == (config.commit_memory_mb, config.commit_timeout_seconds)
    assert props["EphemeralStorage"] == {"Size": config.ephemeral_storage_mb}
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert (config.commit_timeout_seconds, config.commit_memory_mb) == {"dev": (300, 2048), "prod": (900, 4096)}[stage]


# ---------------------------------------------------------------- environment


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_lane_environment_on_each_function(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    queue = {"Ref": lid(s, s.stack.lane.queue)}
    ingest, commit = env_of(s, INGEST_CMD), env_of(s, COMMIT_CMD)
    # Ingest: stages and hands off (records under the lane, a signal to the FIFO queue).
    assert (ingest["LAKEROUTE_LANE"], ingest["LAKEROUTE_LANE_QUEUE"]) == (lane_uri(s), queue)
    assert "LAKEROUTE_COMMIT_DEFAULTS" not in ingest
    # Commit: the lane and the stage's triggers, never the queue (it would hand off again).
    assert commit["LAKEROUTE_LANE"] == lane_uri(s) and "LAKEROUTE_LANE_QUEUE" not in commit
    raw = cdk_context(stage)["lakeroute:stages"][stage]
    assert json.loads(commit["LAKEROUTE_COMMIT_DEFAULTS"]) == {
        "max_files": raw["commit_max_files"], "max_mb": raw["commit_max_mb"], "max_seconds": raw["commit_max_seconds"]}
    assert json.loads(commit["LAKEROUTE_COMMIT_DEFAULTS"]) == {"max_files": 1000, "max_mb": 512, "max_seconds": 5}
    # Otherwise the ingest function's runtime: tables, warehouse, quarantine, metrics' service
    # (its per-table metrics join the stage's), but not the large-object tier (it never hands off).
    assert {k: v for k, v in commit.items() if not k.startswith(("LAKEROUTE_LANE", "LAKEROUTE_COMMIT_"))} == {
        k: v for k, v in ingest.items() if not k.startswith(("LAKEROUTE_LANE", "LAKEROUTE_TASK_", "LAKEROUTE_LARGE_"))}
    # The route sync and the stop handler have no lane.
    for cmd in (SYNC_CMD, STOPPED_CMD):
        assert not [k for k in env_of(s, cmd) if k.startswith("LAKEROUTE_LANE")], cmd
    # The large-object task commits what it ingests itself: no lane either.
    (definition,) = s.resources("AWS::ECS::TaskDefinition").values()
    (container,) = definition["Properties"]["ContainerDefinitions"]
    assert not [v for v in container["Environment"] if v["Name"].startswith("LAKEROUTE_LANE")]
    # The sweep (signals tables with waiting hand-offs) and the maintenance (enqueues
    # {"maintain": table}): prod has both.
    if stage == "prod":
        for cmd in (SWEEP_CMD, MAINTAIN_CMD):
            env = env_of(s, cmd)
            assert (env["LAKEROUTE_LANE"], env["LAKEROUTE_LANE_QUEUE"]) == (lane_uri(s), queue), cmd


# ---------------------------------------------------------------- IAM


def statements_by_sid(s: Synth, cmd: list[str]) -> dict[str, dict[str, Any]]:
    return {st.get("Sid") or as_list(st["Action"])[0]: rendered(st)
            for st in role_statements(s, role_of(function_by_cmd(s, cmd)[1]))}


def warehouse_bucket(s: Synth) -> str:
    return lid(s, s.stack.storage.warehouse)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_commit_role_has_exactly_what_committing_calls(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    maintains = s.stack.maintenance is not None  # prod: each table's maintenance runs in its lane
    assert granted(s, COMMIT_CMD) == {
        "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "xray": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "CommitLaneConsume": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                              "sqs:ReceiveMessage"],
        # What ingest calls: it commits, re-reads objects whose staged files no longer fit the
        # table (landing), quarantines objects whose rows cannot be written, creates a table on
        # its first commit; routes Scan: the routes' maintenance settings.
        **INGEST_DATA_GRANTS,
        **({"routes": ["dynamodb:Query", "dynamodb:Scan"]} if maintains else {}),
        # The lane's records and blobs: read, and removed once committed.
        "LaneReadWrite": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
    }


def test_commit_role_reaches_only_the_stacks_buckets_and_the_lane_queue(dev: Synth) -> None:
    by_sid = statements_by_sid(dev, COMMIT_CMD)
    every = [st for st in by_sid.values()]
    actions = [a for st in every for a in as_list(st["Action"])]
    assert not [a for a in actions if a.endswith("*")], "no wildcard action (s3:*, sqs:*, ...)"
    warehouse, quarantine = warehouse_bucket(dev), lid(dev, dev.stack.storage.quarantine)
    landing = {physical(dev, b) for b in ("lr-test-sales", "lr-test-events", "lr-test-partner-drop")}
    for st in every:
        if not any(a.startswith("s3:") for a in as_list(st["Action"])):
            continue
        for resource in as_list(st["Resource"]):
            text = json.dumps(resource)
            assert warehouse in text or quarantine in text or any(b in text for b in landing), st
    # Objects: the warehouse prefix, the lane prefix (delete there too), the quarantine prefix.
    assert by_sid["LaneReadWrite"]["Resource"] == {"Fn::Join": ["", [
        {"Fn::GetAtt": [warehouse, "Arn"]}, "/lane/*"]]}
    assert by_sid["WarehouseObjectsReadWrite"]["Resource"] == {"Fn::Join": ["", [
        {"Fn::GetAtt": [warehouse, "Arn"]}, "/warehouse/*"]]}
    deletes = [sid for sid, st in by_sid.items() if "s3:DeleteObject" in as_list(st["Action"])]
    assert sorted(deletes) == ["LaneReadWrite", "WarehouseObjectsReadWrite"]
    # The lane queue only: consume, never send.
    assert by_sid["CommitLaneConsume"]["Resource"] == {"Fn::GetAtt": [lid(dev, dev.stack.lane.queue), "Arn"]}
    assert not [a for a in actions if a == "sqs:SendMessage"]
    glue = sorted(by_sid["GlueNamespaces"]["Resource"])
    prefix = f"arn:aws:glue:{REGION}:{ACCOUNT}:"
    assert glue == sorted([f"{prefix}catalog"] + [f"{prefix}{kind}/{db}{suffix}" for db in (
        "partners_dev", "sales_dev", "web_dev") for kind, suffix in (("database", ""), ("table", "/*"))])


def test_ingest_sweep_and_maintenance_may_only_send_to_the_lane(prod: Synth) -> None:
    queue = {"Fn::GetAtt": [lid(prod, prod.stack.lane.queue), "Arn"]}
    warehouse = warehouse_bucket(prod)
    for cmd in (INGEST_CMD, SWEEP_CMD, MAINTAIN_CMD):
        by_sid = statements_by_sid(prod, cmd)
        assert by_sid["CommitLaneSend"]["Action"] == "sqs:SendMessage", cmd
        assert by_sid["CommitLaneSend"]["Resource"] == queue, cmd
    # Ingest writes hand-offs (never reads or deletes them) under the lane prefix only.
    hand_off = statements_by_sid(prod, INGEST_CMD)["LaneHandOff"]
    assert sorted(hand_off["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert hand_off["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [warehouse, "Arn"]}, "/lane/*"]]}
    # The sweep lists the lane prefix only (which tables have waiting hand-offs).
    listing = statements_by_sid(prod, SWEEP_CMD)["LaneList"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == {"Fn::GetAtt": [warehouse, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["lane/*"]}}
    # Nothing else may consume the lane.
    consumers = [sid for cmd in (INGEST_CMD, SWEEP_CMD, MAINTAIN_CMD, SYNC_CMD, STOPPED_CMD)
                 for sid, st in statements_by_sid(prod, cmd).items() if "sqs:ReceiveMessage" in as_list(st["Action"])
                 and st["Resource"] == queue]
    assert consumers == []


# ---------------------------------------------------------------- alarms


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_freshness_alarm_threshold_comes_from_cdk_json(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    raw = cdk_context(stage)["lakeroute:stages"][stage]
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in s.resources("AWS::CloudWatch::Alarm").values()}
    fresh = alarms[f"lakeroute-{stage}-freshness"]
    assert fresh["Threshold"] == raw["freshness_alarm_seconds"] == {"dev": 300, "prod": 120}[stage]
    assert (fresh["MetricName"], fresh["Statistic"], fresh["Period"]) == ("FreshnessMaxSeconds", "Maximum", 300)
    # The stage-wide figure: the commit function's namespace and `service` dimension.
    env = env_of(s, COMMIT_CMD)
    assert fresh["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert fresh["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert fresh["AlarmActions"] == [{"Ref": lid(s, s.stack.monitoring.topic)}]
    assert alarms[f"lakeroute-{stage}-commit-lane-stuck"]["Threshold"] == 2 * raw["commit_timeout_seconds"]


# ---------------------------------------------------------------- stage settings


def stage(**change: Any) -> dict[str, Any]:
    return {**cdk_context("dev")["lakeroute:stages"]["dev"], **change}


def test_commit_settings_are_read_from_the_stage() -> None:
    config = StageConfig.from_mapping("dev", stage(commit_max_files=50, commit_max_mb=64, commit_max_seconds=30,
                                                   commit_timeout_seconds=120, freshness_alarm_seconds=90))
    assert config.commit_defaults == {"max_files": 50, "max_mb": 64, "max_seconds": 30}


@pytest.mark.parametrize(("change", "message"), [
    ({"commit_max_files": 0}, r"commit_max_files: objects per commit-lane snapshot: 1\.\.100000"),
    ({"commit_max_mb": 0}, "commit_max_mb"),
    ({"commit_timeout_seconds": 901}, r"commit_timeout_seconds: the commit function's Lambda timeout"),
    ({"commit_timeout_seconds": 20}, "commit_timeout_seconds"),
    ({"commit_max_seconds": 200}, r"commit_max_seconds: 0\.\.half of commit_timeout_seconds \(150 s\)"),
    ({"commit_memory_mb": 256}, "commit_memory_mb"),
    ({"freshness_alarm_seconds": 5}, r"freshness_alarm_seconds: above commit_max_seconds \(5 s"),
    ({"commit_max_mb": 1.5}, "commit_max_mb: expected int"),
    ({"commit_max_seconds": "5s"}, "commit_max_seconds: expected int"),
])
def test_bad_commit_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StageConfigError, match=rf"lakeroute:stages\.dev\.{message}"):
        StageConfig.from_mapping("dev", stage(**change))


def test_a_missing_commit_setting_is_named() -> None:
    raw = stage()
    del raw["freshness_alarm_seconds"]
    with pytest.raises(StageConfigError, match="missing key.*freshness_alarm_seconds"):
        StageConfig.from_mapping("dev", raw)


def test_commit_function_never_gets_the_lane_queue() -> None:
    """The guard of stacks/commit_lane.py: a committer with LAKEROUTE_LANE_QUEUE would hand its
    work off to itself instead of committing."""
    from aws_cdk import App, Duration, RemovalPolicy, Stack
    from aws_cdk import aws_logs as logs

    from stacks.commit_lane import CommitLane
    from stacks.functions import FunctionSettings

    def settings(env: dict[str, str]) -> FunctionSettings:
        return FunctionSettings(memory_mb=1024, timeout=Duration.seconds(60), ephemeral_storage_mb=512,
                                environment=env, log_retention=logs.RetentionDays.ONE_DAY,
                                removal_policy=RemovalPolicy.DESTROY)

    stack = Stack(App(), "guard")
    for env in ({"LAKEROUTE_LANE": "s3://b/lane", "LAKEROUTE_LANE_QUEUE": "https://q"}, {}):
        with pytest.raises(ValueError, match="LAKEROUTE_LANE_QUEUE"):
            CommitLane(stack, f"Lane{len(env)}", name="guard", settings=settings(env),
                       removal_policy=RemovalPolicy.DESTROY)
