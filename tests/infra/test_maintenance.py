"""Scheduled table maintenance (stacks/maintenance.py): in prod every 6 hours, absent in dev,
one run at a time; it enqueues each table's maintenance in its commit lane, with exactly the
permissions that takes (the commit function runs it: tests/infra/test_commit_lane.py)."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import StageConfig, StageConfigError

from .synth import Synth, cdk_context, function_by_cmd

MAINTAIN_CMD = ["lakeroute.maintain.handler"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(s: Synth) -> dict[str, tuple[list[str], Any]]:
    """sid (or the first action) -> (sorted actions, resources) of the maintenance role's policies."""
    _, fn = function_by_cmd(s, MAINTAIN_CMD)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out: dict[str, tuple[list[str], Any]] = {}
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert st["Effect"] == "Allow"
                actions = sorted(as_list(st["Action"]))
                out[st.get("Sid") or actions[0]] = (actions, st["Resource"])
    return out


def test_prod_maintains_every_six_hours_one_run_at_a_time(prod: Synth) -> None:
    fn_id, fn = function_by_cmd(prod, MAINTAIN_CMD)
    rules = [r for r in prod.resources("AWS::Events::Rule").values()
             if r["Properties"].get("Targets", [{}])[0].get("Arn") == {"Fn::GetAtt": [fn_id, "Arn"]}]
    assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(6 hours)"]
    props = fn["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == 300  # it only enqueues: the commit function maintains
    env = props["Environment"]["Variables"]
    _, ingest = function_by_cmd(prod, ["lakeroute.handler.handler"])
    ingest_env = ingest["Properties"]["Environment"]["Variables"]
    for key in ("LAKEROUTE_ROUTES_TABLE", "LAKEROUTE_LEDGER_TABLE", "LAKEROUTE_WAREHOUSE",
                "LAKEROUTE_LANE", "LAKEROUTE_LANE_QUEUE"):
        assert env[key] == ingest_env[key], key
    assert "MaintenanceFunctionName" in prod.json["Outputs"]


def test_dev_has_no_scheduled_maintenance(dev: Synth) -> None:
    cmds = [f["Properties"].get("ImageConfig", {}).get("Command")
            for f in dev.resources("AWS::Lambda::Function").values()]
    assert MAINTAIN_CMD not in cmds
    assert "MaintenanceFunctionName" not in dev.json["Outputs"]


def test_maintenance_role_has_exactly_what_enqueueing_calls(prod: Synth) -> None:
    got = {sid: actions for sid, (actions, _) in statements(prod).items()}
    assert got == {
        "logs:CreateLogStream": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "xray:PutTelemetryRecords": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "dynamodb:Scan": ["dynamodb:Scan"],  # the routes: which tables, with what settings
        "GlueNamespaces": ["glue:GetTable"],  # does the table exist (PyIceberg loads it) ...
        "WarehouseObjectsRead": ["s3:GetObject"],  # ... with its metadata file
        "CommitLaneSend": ["sqs:SendMessage"],  # {"maintain": table} in the table's lane
    }
    lane = prod.stack.resolve(prod.stack.lane.queue.node.default_child.logical_id)
    assert statements(prod)["CommitLaneSend"][1] == {"Fn::GetAtt": [lane, "Arn"]}
    # no Glue table optimizers: maintenance is the scheduled function (docs/operations.md, Maintenance)
    assert not prod.resources("AWS::Glue::TableOptimizer")


def stage(**change: Any) -> dict[str, Any]:
    return {**cdk_context("dev")["lakeroute:stages"]["dev"], **change}


def test_interval_is_optional_and_checked() -> None:
    raw = stage()
    del raw["maintenance_interval_minutes"]  # CDK drops null context values
    assert StageConfig.from_mapping("dev", raw).maintenance_interval_minutes is None
    assert StageConfig.from_mapping("dev", stage(maintenance_interval_minutes=60)).maintenance_interval_minutes == 60
    for bad in (5, 20000):
        with pytest.raises(StageConfigError, match="maintenance_interval_minutes"):
            StageConfig.from_mapping("dev", stage(maintenance_interval_minutes=bad))
