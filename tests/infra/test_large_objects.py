"""The large-object tier in the template: network, cluster and task definition, the stop
handler and its rule, the three roles, the ingest function's hand-off settings, per stage
(stacks/large_objects.py, stacks/network.py; the runtime is lakeroute/aws/large_objects.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import MIB, StageConfig, StageConfigError
from stacks.large_objects import LargeObjectTier

from .synth import INGEST_CMD, SYNC_CMD, Synth, cdk_context, function_by_cmd
from .test_stack import INGEST_DATA_GRANTS, as_list, granted_to, role_of, role_statements

STOPPED_CMD = ["lakeroute.task.on_stopped"]
ENTRY_POINT = ["/var/lang/bin/python3", "-m", "lakeroute.task"]
# min(ephemeral storage - 512 MiB, 0.5 x timeout x 20 MiB/s), from cdk.json:
# dev: min(2048 - 512, 0.5 x 300 x 20) = 1536 MiB; prod: min(10240 - 512, 0.5 x 600 x 20) = 6000 MiB.
THRESHOLDS = {"dev": 1536 * MIB, "prod": 6000 * MIB}
SIZES = {"dev": ("1024", "4096", 50), "prod": ("4096", "16384", 200)}
TIER_TYPES = ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::VPCEndpoint", "AWS::EC2::SecurityGroup",
              "AWS::EC2::FlowLog", "AWS::ECS::Cluster", "AWS::ECS::TaskDefinition", "AWS::Events::Rule",
              "AWS::Logs::MetricFilter", "Custom::VpcRestrictDefaultSG")


def tier(s: Synth) -> LargeObjectTier:
    assert s.stack.large_objects is not None
    return s.stack.large_objects


def lid(s: Synth, construct: Any) -> str:
    """Logical id of an L2 construct's resource."""
    return str(s.stack.resolve(construct.node.default_child.logical_id))


def one(s: Synth, type_: str) -> tuple[str, dict[str, Any]]:
    found = s.resources(type_)
    assert len(found) == 1, (type_, list(found))
    return next(iter(found.items()))


def container(s: Synth) -> dict[str, Any]:
    _, td = one(s, "AWS::ECS::TaskDefinition")
    (c,) = td["Properties"]["ContainerDefinitions"]
    return c


def env_of(fn: dict[str, Any]) -> dict[str, Any]:
    return fn["Properties"]["Environment"]["Variables"]


# ---------------------------------------------------------------- task definition


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_task_definition_is_fargate_sized_by_the_stage(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    _, td = one(s, "AWS::ECS::TaskDefinition")
    props = td["Properties"]
    cpu, memory, storage = SIZES[stage]
    assert props["RequiresCompatibilities"] == ["FARGATE"]
    assert props["NetworkMode"] == "awsvpc"
    assert (props["Cpu"], props["Memory"], props["EphemeralStorage"]) == (cpu, memory, {"SizeInGiB": storage})
    assert props["RuntimePlatform"] == {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"}
    assert props["Family"] == f"lakeroute-{stage}-large-object"
    t = tier(s)
    assert props["TaskRoleArn"] == {"Fn::GetAtt": [lid(s, t.task_role), "Arn"]}
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": [lid(s, t.execution_role), "Arn"]}
    # Container Insights is a stage choice: off in dev, on in prod.
    _, cluster = one(s, "AWS::ECS::Cluster")
    assert cluster["Properties"]["ClusterSettings"] == [
        {"Name": "containerInsights", "Value": {"dev": "disabled", "prod": "enabled"}[stage]}]


def test_task_runs_the_functions_image_with_the_task_entry_point(dev: Synth) -> None:
    c = container(dev)
    assert c["Name"] == "lakeroute"  # LAKEROUTE_TASK_CONTAINER
    assert c["EntryPoint"] == ENTRY_POINT
    assert "Command" not in c  # the image's CMD (the Lambda handler) does not apply
    assert c["WorkingDirectory"] == "/var/task"
    assert c["Essential"] is True
    # Read-only like Lambda: only /tmp (on the task's ephemeral storage) is writable.
    assert c["ReadonlyRootFilesystem"] is True
    assert c["MountPoints"] == [{"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "tmp"}]
    _, td = one(dev, "AWS::ECS::TaskDefinition")
    assert td["Properties"]["Volumes"] == [{"Name": "tmp"}]
    # The very image of the functions: one asset (one build, one push), the same ECR tag.
    _, ingest = function_by_cmd(dev, INGEST_CMD)
    assert c["Image"] == ingest["Properties"]["Code"]["ImageUri"]
    assets = json.loads((dev.outdir / f"{dev.stack.artifact_id}.assets.json").read_text())
    ((asset_hash, image),) = assets["dockerImages"].items()
    (dest,) = image["destinations"].values()
    assert c["Image"]["Fn::Sub"].endswith(f":{dest['imageTag']}")
    assert dest["imageTag"] == asset_hash


def test_task_environment_is_the_functions_with_home_and_memory(dev: Synth, prod: Synth) -> None:
    for s in (dev, prod):
        env = {e["Name"]: e["Value"] for e in container(s)["Environment"]}
        _, sync = function_by_cmd(s, SYNC_CMD)  # the base environment, without the tier's
        assert env == {**env_of(sync), "HOME": "/tmp",
                       "LAKEROUTE_DUCKDB_MEMORY": f"{s.stack.config.task_memory_mb // 2}MB"}
        assert not [k for k in env if k.startswith("LAKEROUTE_TASK_")]


def test_task_logs_to_its_own_log_group(dev: Synth) -> None:
    c = container(dev)
    group = lid(dev, tier(dev).log_group)
    assert c["LogConfiguration"] == {"LogDriver": "awslogs", "Options": {
        "awslogs-group": {"Ref": group}, "awslogs-stream-prefix": "task",
        "awslogs-region": {"Ref": "AWS::Region"}}}
    assert dev.resources("AWS::Logs::LogGroup")[group]["Properties"]["RetentionInDays"] == 14


def test_task_outcomes_are_counted_from_its_emf_lines(dev: Synth) -> None:
    """awslogs does not extract EMF: metric filters count the task's outcomes into the
    handler's metrics (same namespace and service dimension), so the quarantine alarm sees it."""
    group = lid(dev, tier(dev).log_group)
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
               for f in dev.resources("AWS::Logs::MetricFilter").values()}
    assert set(filters) == {"ObjectsCommitted", "ObjectsSkipped", "ObjectsQuarantined", "ObjectsFailed"}
    for name, f in filters.items():
        assert f["LogGroupName"] == {"Ref": group}
        assert f["FilterPattern"] == f'{{ ($.service = "*") && ($.route NOT EXISTS) && ($.{name}[0] > 0) }}'
        assert f["MetricTransformations"] == [{
            "MetricName": name, "MetricNamespace": "lakeroute", "MetricValue": "1",
            "Dimensions": [{"Key": "service", "Value": "$.service"}]}]


# ---------------------------------------------------------------- the stop handler


def test_stopped_tasks_of_the_cluster_go_to_the_stop_handler(dev: Synth) -> None:
    t = tier(dev)
    rule_id, rule = one(dev, "AWS::Events::Rule")
    stop_id, _ = function_by_cmd(dev, STOPPED_CMD)
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [{"Fn::GetAtt": [lid(dev, t.cluster), "Arn"]}], "lastStatus": ["STOPPED"]},
    }
    dlq = lid(dev, t.dead_letter_queue)
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [stop_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 6 * 3600}
    (permission,) = dev.resources("AWS::Lambda::Permission").values()
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction", "FunctionName": {"Fn::GetAtt": [stop_id, "Arn"]},
        "Principal": "events.amazonaws.com", "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}
    # The DLQ takes EventBridge's undeliverable events of this rule only, over TLS only.
    (policy,) = [p for p in dev.resources("AWS::SQS::QueuePolicy").values()
                 if p["Properties"]["Queues"] == [{"Ref": dlq}]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allow = [st for st in statements if st["Effect"] == "Allow"]
    assert [(st["Principal"], st["Action"], st["Condition"]) for st in allow] == [
        ({"Service": "events.amazonaws.com"}, "sqs:SendMessage",
         {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}})]
    assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for st in statements)
    queue = dev.resources("AWS::SQS::Queue")[dlq]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 86400


def test_stop_handler_is_the_image_with_the_ingest_environment(dev: Synth) -> None:
    stop_id, stop = function_by_cmd(dev, STOPPED_CMD)
    _, ingest = function_by_cmd(dev, INGEST_CMD)
    props = stop["Properties"]
    assert props["Code"] == ingest["Properties"]["Code"]
    assert props["PackageType"] == "Image"
    # the whole runtime (get_runtime) and the tier; not the commit lane (it never stages)
    assert env_of(stop) == {k: v for k, v in env_of(ingest).items() if not k.startswith("LAKEROUTE_LANE")}
    assert (props["MemorySize"], props["Timeout"]) == (1024, 900)
    dlq = lid(dev, tier(dev).dead_letter_queue)
    assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}
    (config,) = dev.resources("AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"] == {"FunctionName": {"Ref": stop_id}, "Qualifier": "$LATEST",
                                    "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 6 * 3600}


# ---------------------------------------------------------------- the ingest function


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_ingest_function_hands_off_from_the_stage_threshold(stage: str, request: Any) -> None:
    s: Synth = request.getfixturevalue(stage)
    t = tier(s)
    env = env_of(function_by_cmd(s, INGEST_CMD)[1])
    subnets = sorted(s.resources("AWS::EC2::Subnet"))
    assert {k: v for k, v in env.items() if k.startswith(("LAKEROUTE_TASK_", "LAKEROUTE_LARGE_"))} == {
        "LAKEROUTE_LARGE_OBJECT_BYTES": str(THRESHOLDS[stage]),
        "LAKEROUTE_TASK_CLUSTER": {"Ref": lid(s, t.cluster)},
        "LAKEROUTE_TASK_DEFINITION": {"Ref": lid(s, t.task_definition)},  # this deploy's revision
        "LAKEROUTE_TASK_CONTAINER": "lakeroute",
        "LAKEROUTE_TASK_SUBNETS": {"Fn::Join": [",", [{"Ref": k} for k in subnets]]},
        "LAKEROUTE_TASK_SECURITY_GROUPS": {"Fn::GetAtt": [lid(s, t.network.security_group), "GroupId"]},
        "LAKEROUTE_TASK_PUBLIC_IP": "true",
        "LAKEROUTE_TASK_MAX_ATTEMPTS": "3",
    }
    assert s.stack.config.large_object_threshold == THRESHOLDS[stage]


def test_explicit_threshold_overrides_the_derived_one(prod_pinned: Synth) -> None:
    env = env_of(function_by_cmd(prod_pinned, INGEST_CMD)[1])
    assert env["LAKEROUTE_LARGE_OBJECT_BYTES"] == str(2 * 1024**3)


# ---------------------------------------------------------------- IAM


def test_task_role_has_exactly_the_ingest_functions_data_permissions(dev: Synth) -> None:
    t = tier(dev)
    task_role = lid(dev, t.task_role)
    ingest_role = role_of(function_by_cmd(dev, INGEST_CMD)[1])
    assert granted_to(dev, task_role) == INGEST_DATA_GRANTS
    # Statement for statement what the function has (resources included), minus its own
    # logs, tracing, queue and hand-offs (the task commits what it ingests itself).
    ingest = [st for st in role_statements(dev, ingest_role)
              if not as_list(st["Action"])[0].startswith(("logs:", "xray:", "sqs:", "ecs:", "iam:"))
              and st.get("Sid") != "LaneHandOff"]
    assert role_statements(dev, task_role) == ingest
    # Only ECS tasks of this account and region may assume it.
    (trust,) = dev.resources("AWS::IAM::Role")[task_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "aws:SourceArn" in trust["Condition"]["ArnLike"]
    assert "ManagedPolicyArns" not in dev.resources("AWS::IAM::Role")[task_role]["Properties"]


def test_execution_role_pulls_the_image_and_writes_the_task_logs(dev: Synth) -> None:
    t = tier(dev)
    statements = role_statements(dev, lid(dev, t.execution_role))
    by_actions = {tuple(sorted(as_list(st["Action"]))): st["Resource"] for st in statements}
    assert set(by_actions) == {
        ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
        ("ecr:GetAuthorizationToken",),
        ("logs:CreateLogStream", "logs:PutLogEvents"),
    }
    assert "cdk-hnb659fds-container-assets" in json.dumps(
        by_actions[("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")])
    assert by_actions[("ecr:GetAuthorizationToken",)] == "*"  # no resource-level permissions
    assert by_actions[("logs:CreateLogStream", "logs:PutLogEvents")] == {
        "Fn::GetAtt": [lid(dev, t.log_group), "Arn"]}


def test_stop_handler_role_restarts_and_quarantines_only(dev: Synth) -> None:
    """RunTask + PassRole (restart), landing read (HEAD, the copy's source) and quarantine
    writes; no table or Glue access: on_stopped builds the runtime but never calls them."""
    stop_role = role_of(function_by_cmd(dev, STOPPED_CMD)[1])
    dlq = json.dumps({"Fn::GetAtt": [lid(dev, tier(dev).dead_letter_queue), "Arn"]})
    assert granted_to(dev, stop_role) == {
        "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        dlq: ["sqs:SendMessage"],  # its DLQ (asynchronous invocations that failed every retry)
        "LargeObjectRunTask": ["ecs:RunTask"],
        "LargeObjectPassRole": ["iam:PassRole"],
        "LandingObjectsRead": ["s3:GetObject", "s3:GetObjectVersion"],
        "LandingList": ["s3:ListBucket"],
        "QuarantineWrite": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
        "QuarantineList": ["s3:ListBucket"],
    }


@pytest.mark.parametrize("cmd", [INGEST_CMD, STOPPED_CMD])
def test_run_task_is_limited_to_the_task_definition_cluster_and_roles(cmd: list[str], dev: Synth) -> None:
    t = tier(dev)
    by_sid = {st.get("Sid"): st for st in role_statements(dev, role_of(function_by_cmd(dev, cmd)[1]))}
    assert by_sid["LargeObjectRunTask"] == {
        "Sid": "LargeObjectRunTask", "Effect": "Allow", "Action": "ecs:RunTask",
        "Resource": {"Ref": lid(dev, t.task_definition)},
        "Condition": {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [lid(dev, t.cluster), "Arn"]}}},
    }
    assert by_sid["LargeObjectPassRole"] == {
        "Sid": "LargeObjectPassRole", "Effect": "Allow", "Action": "iam:PassRole",
        "Resource": sorted([{"Fn::GetAtt": [lid(dev, t.task_role), "Arn"]},
                            {"Fn::GetAtt": [lid(dev, t.execution_role), "Arn"]}], key=json.dumps),
        "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    }


# ---------------------------------------------------------------- network


def test_task_network_has_no_nat_and_gateway_endpoints(dev: Synth) -> None:
    t = tier(dev)
    assert not dev.resources("AWS::EC2::NatGateway") and not dev.resources("AWS::EC2::EIP")
    subnets = dev.resources("AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert sorted(v["Properties"]["AvailabilityZone"]["Fn::Select"][0] for v in subnets.values()) == [0, 1]
    assert all(v["Properties"]["MapPublicIpOnLaunch"] is False for v in subnets.values())
    # Public: the default route of each subnet is the internet gateway.
    (igw,) = dev.resources("AWS::EC2::InternetGateway")
    routes = [r["Properties"] for r in dev.resources("AWS::EC2::Route").values()]
    assert len(routes) == 2
    assert all(r["DestinationCidrBlock"] == "0.0.0.0/0" and r["GatewayId"] == {"Ref": igw} for r in routes)
    endpoints = {e["Properties"]["ServiceName"]["Fn::Join"][1][-1]: e["Properties"]
                 for e in dev.resources("AWS::EC2::VPCEndpoint").values()}
    assert set(endpoints) == {".s3", ".dynamodb"}
    tables = sorted(k for k in dev.resources("AWS::EC2::RouteTable"))
    for e in endpoints.values():
        assert e["VpcEndpointType"] == "Gateway"
        assert sorted(r["Ref"] for r in e["RouteTableIds"]) == tables
    # No ingress; egress HTTPS only.
    sg = dev.resources("AWS::EC2::SecurityGroup")[lid(dev, t.network.security_group)]["Properties"]
    assert "SecurityGroupIngress" not in sg
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"]) for r in sg["SecurityGroupEgress"]] == [
        ("tcp", 443, 443, "0.0.0.0/0")]
    assert not dev.resources("AWS::EC2::SecurityGroupIngress")
    # Every flow, accepted or rejected, to a log group with the stage's retention.
    _, flow_log = one(dev, "AWS::EC2::FlowLog")
    group = lid(dev, t.network.flow_log_group)
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["LogGroupName"] == {"Ref": group}
    assert dev.resources("AWS::Logs::LogGroup")[group]["Properties"]["RetentionInDays"] == 14
    # The default security group is emptied.
    assert dev.resources("Custom::VpcRestrictDefaultSG")


def test_pinned_account_and_region_synthesize_offline(prod_pinned: Synth) -> None:
    """CDK would look the AZs up for a stack with a concrete environment; the stack answers
    with Fn::GetAZs, so nothing is missing from the context (no lookup, no credentials)."""
    assert prod_pinned.stack.account == "111122223333"
    for subnet in prod_pinned.resources("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["AvailabilityZone"]["Fn::Select"][1] == {"Fn::GetAZs": ""}
    manifest = json.loads((prod_pinned.outdir / "manifest.json").read_text())
    assert not manifest.get("missing")


# ---------------------------------------------------------------- the tier switched off


def test_tier_off_builds_no_network_cluster_or_handler(dev_tier_off: Synth, dev: Synth) -> None:
    s = dev_tier_off
    assert s.stack.large_objects is None and s.stack.network is None
    for type_ in TIER_TYPES:
        assert not s.resources(type_), type_
    env = env_of(function_by_cmd(s, INGEST_CMD)[1])
    assert not [k for k in env if k.startswith(("LAKEROUTE_TASK_", "LAKEROUTE_LARGE_"))]
    assert {k: v for k, v in env.items() if not k.startswith("LAKEROUTE_LANE")} == env_of(
        function_by_cmd(s, SYNC_CMD)[1])
    # ingest, commit, sync
    assert len([f for f in s.resources("AWS::Lambda::Function").values()
                if f["Properties"].get("PackageType") == "Image"]) == 3
    alarms = {a["Properties"]["AlarmName"] for a in s.resources("AWS::CloudWatch::Alarm").values()}
    assert alarms == {f"lakeroute-dev-{n}" for n in (
        "dlq-messages", "queue-oldest-message", "ingest-errors", "ingest-throttles", "objects-quarantined",
        "freshness", "commit-lane-dlq", "commit-errors", "commit-lane-stuck")}
    assert not {"LargeObjectClusterName", "LargeObjectTaskFamily", "StoppedTaskFunctionName"} & set(s.json["Outputs"])
    # The rest of the stack is the same.
    assert set(s.json["Outputs"]) | {"LargeObjectClusterName", "LargeObjectTaskFamily",
                                     "StoppedTaskFunctionName"} == set(dev.json["Outputs"])


# ---------------------------------------------------------------- stage settings


def stage(**change: Any) -> dict[str, Any]:
    return {**cdk_context("dev")["lakeroute:stages"]["dev"], **change}


def test_threshold_is_derived_from_the_function_unless_set() -> None:
    config = StageConfig.from_mapping("dev", stage())
    assert config.large_object_bytes is None
    assert config.large_object_threshold == 1536 * MIB  # storage-bound: 2048 - 512 MiB
    # Time-bound: 0.5 x 60 s x 20 MiB/s = 600 MiB < 10240 - 512 MiB.
    assert StageConfig.from_mapping("dev", stage(timeout_seconds=60, ephemeral_storage_mb=10240)
                                    ).large_object_threshold == 600 * MIB
    assert StageConfig.from_mapping("dev", stage(large_object_bytes=123 * MIB)).large_object_threshold == 123 * MIB
    # null in cdk.json arrives as a missing key (CDK drops null context values).
    raw = stage()
    del raw["large_object_bytes"]
    assert StageConfig.from_mapping("dev", raw).large_object_threshold == 1536 * MIB


@pytest.mark.parametrize(("change", "message"), [
    ({"task_cpu": 3000}, "task_cpu"),
    ({"task_cpu": 256, "task_memory_mb": 4096}, "task_memory_mb"),
    ({"task_cpu": 256, "task_memory_mb": 1536}, "task_memory_mb"),
    ({"task_cpu": 4096, "task_memory_mb": 8500}, "task_memory_mb"),
    ({"task_ephemeral_storage_gb": 201}, "task_ephemeral_storage_gb"),
    ({"task_ephemeral_storage_gb": 20}, "task_ephemeral_storage_gb"),
    ({"task_max_attempts": 0}, "task_max_attempts"),
    ({"large_object_bytes": 1000}, "large_object_bytes"),
    ({"large_object_bytes": "1GB"}, "expected int"),
    ({"large_object_tier": "yes"}, "expected bool"),
])
def test_bad_tier_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StageConfigError, match=message):
        StageConfig.from_mapping("dev", stage(**change))


@pytest.mark.parametrize(("cpu", "memory"), [(256, 512), (256, 2048), (1024, 8192), (4096, 30720),
                                             (8192, 61440), (16384, 122880)])
def test_valid_fargate_sizes_are_accepted(cpu: int, memory: int) -> None:
    config = StageConfig.from_mapping("dev", stage(task_cpu=cpu, task_memory_mb=memory))
    assert (config.task_cpu, config.task_memory_mb) == (cpu, memory)
