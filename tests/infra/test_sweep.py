"""The reconcile sweep (stacks/sweep.py): scheduled in prod, absent in dev, least privilege."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import StageConfig, StageConfigError

from .synth import Synth, cdk_context, function_by_cmd, physical, rendered

SWEEP_CMD = ["lakeroute.sweep.handler"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sweep_statements(s: Synth) -> dict[str, list[str]]:
    """sid (or the first action) -> sorted actions of the sweep role's policies."""
    _, fn = function_by_cmd(s, SWEEP_CMD)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out: dict[str, list[str]] = {}
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert st["Effect"] == "Allow"
                actions = sorted(as_list(st["Action"]))
                out[st.get("Sid") or actions[0]] = actions
    return out


def test_prod_sweeps_every_hour_with_the_ingest_environment(prod: Synth) -> None:
    fn_id, fn = function_by_cmd(prod, SWEEP_CMD)
    rules = [r for r in prod.resources("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]
             and r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}]
    assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(1 hour)"]
    assert rules[0]["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["LAKEROUTE_INGEST_QUEUE_URL"] == prod.stack.resolve(prod.stack.queue.queue.queue_url)
    _, ingest = function_by_cmd(prod, ["lakeroute.handler.handler"])
    ingest_env = ingest["Properties"]["Environment"]["Variables"]
    for key in ("LAKEROUTE_ROUTES_TABLE", "LAKEROUTE_LEDGER_TABLE", "LAKEROUTE_WAREHOUSE",
                "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LAKEROUTE_LANE",
                "LAKEROUTE_LANE_QUEUE"):
        assert env[key] == ingest_env[key], key
    assert "SweepFunctionName" in prod.json["Outputs"]


def test_dev_has_no_sweep(dev: Synth) -> None:
    cmds = [f["Properties"].get("ImageConfig", {}).get("Command")
            for f in dev.resources("AWS::Lambda::Function").values()]
    assert SWEEP_CMD not in cmds
    assert not [r for r in dev.resources("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    assert "SweepFunctionName" not in dev.json["Outputs"]


def test_sweep_role_has_exactly_what_the_sweep_calls(prod: Synth) -> None:
    assert sweep_statements(prod) == {
        "logs:CreateLogStream": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "xray:PutTelemetryRecords": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "IngestQueueSend": ["sqs:SendMessage"],
        "dynamodb:Scan": ["dynamodb:Scan"],
        "dynamodb:BatchGetItem": ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"],
        "GlueNamespaces": ["glue:GetDatabase", "glue:GetTable"],
        "WarehouseObjectsRead": ["s3:GetObject"],
        "LandingObjectsRead": ["s3:GetObject"],
        "LandingList": ["s3:ListBucket"],
        # Tables whose commit-lane hand-offs wait get a signal (a lost one is made up).
        "LaneList": ["s3:ListBucket"],
        "CommitLaneSend": ["sqs:SendMessage"],
        # Is an unrouted key quarantined already? (HEAD of its error.json; 404, not 403)
        "QuarantineRecordsRead": ["s3:GetObject"],
        "QuarantineList": ["s3:ListBucket"],
    }


def test_sweep_lists_created_buckets_whole_and_reads_only_quarantine_records(prod: Synth) -> None:
    """Issue 22 (6): the sweep knows the buckets the stack created (it lists them whole and
    sends their unrouted keys once); it may HEAD the quarantine's error records, nothing else."""
    _, fn = function_by_cmd(prod, SWEEP_CMD)
    owned = rendered(fn["Properties"]["Environment"]["Variables"]["LAKEROUTE_OWNED_BUCKETS"])
    assert sorted(owned.split(",")) == sorted(physical(prod, b) for b in ("lr-test-events", "lr-test-sales"))
    assert "lr-test-partner-drop" not in owned  # imported: its route prefixes only
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [st for p in prod.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for st in p["Properties"]["PolicyDocument"]["Statement"]]
    (records,) = [st for st in statements if st.get("Sid") == "QuarantineRecordsRead"]
    (resource,) = as_list(records["Resource"])
    (_, parts) = rendered(resource)["Fn::Join"]  # the quarantine bucket's Arn + the records' keys
    assert parts[-1] == "/quarantine/*/error.json" and "Fn::GetAtt" in parts[0], parts
    landing = {rendered(r) for st in statements if st.get("Sid") == "LandingObjectsRead"
               for r in as_list(st["Resource"])}
    assert landing == {f"arn:aws:s3:::{physical(prod, 'lr-test-events')}/*",
                       f"arn:aws:s3:::{physical(prod, 'lr-test-sales')}/*", "arn:aws:s3:::lr-test-partner-drop/feed/*"}


def stage(**change: Any) -> dict[str, Any]:
    return {**cdk_context("dev")["lakeroute:stages"]["dev"], **change}


def test_interval_is_optional_and_checked() -> None:
    raw = stage()
    del raw["sweep_interval_minutes"]  # CDK drops null context values
    assert StageConfig.from_mapping("dev", raw).sweep_interval_minutes is None
    assert StageConfig.from_mapping("dev", stage(sweep_interval_minutes=15)).sweep_interval_minutes == 15
    for bad in (1, 2000):
        with pytest.raises(StageConfigError, match="sweep_interval_minutes"):
            StageConfig.from_mapping("dev", stage(sweep_interval_minutes=bad))
    with pytest.raises(StageConfigError, match="expected int"):
        StageConfig.from_mapping("dev", stage(sweep_interval_minutes="hourly"))
