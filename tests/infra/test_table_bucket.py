"""A stage with ``catalog: s3tables``: the table bucket and its namespaces instead of Glue
databases, every function and the large-object task told where the tables are, and least
privilege on S3 Tables (cdk-nag clean: the synth raises on an unacknowledged finding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.config import StageConfig, StageConfigError
from stacks.table_bucket import READ_ACTIONS, WRITE_ACTIONS

from .synth import Synth, synth


@pytest.fixture(scope="module")
def s3t(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(base_routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-s3tables"), {
        "catalog": "s3tables", "sweep_interval_minutes": 60, "maintenance_interval_minutes": 1440})


def bucket_id(s: Synth) -> str:
    (logical,) = s.resources("AWS::S3Tables::TableBucket")
    return logical


def statements_of(s: Synth, role: str) -> list[dict[str, Any]]:
    out = []
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def s3tables_actions(s: Synth, role: str) -> set[str]:
    found: set[str] = set()
    for st in statements_of(s, role):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        found |= {a for a in actions if a.startswith("s3tables:")}
    return found


def role_of_cmd(s: Synth, cmd: str) -> str:
    for fn in s.resources("AWS::Lambda::Function").values():
        if fn["Properties"].get("ImageConfig", {}).get("Command") == [cmd]:
            return str(fn["Properties"]["Role"]["Fn::GetAtt"][0])
    raise AssertionError(f"no function runs {cmd}")


def test_the_table_bucket_and_a_namespace_per_route_namespace_replace_the_glue_databases(s3t: Synth) -> None:
    assert not s3t.resources("AWS::Glue::Database")
    (bucket,) = s3t.resources("AWS::S3Tables::TableBucket").values()
    assert bucket["Properties"]["TableBucketName"] == "lakeroute-dev-tables"
    assert bucket["Properties"]["UnreferencedFileRemoval"] == {
        "Status": "Enabled", "UnreferencedDays": 3, "NoncurrentDays": 10}
    namespaces = s3t.resources("AWS::S3Tables::Namespace")
    assert sorted(n["Properties"]["Namespace"] for n in namespaces.values()) == [
        "partners_dev", "sales_dev", "web_dev"]
    assert all(n["Properties"]["TableBucketARN"] == {"Fn::GetAtt": [bucket_id(s3t), "TableBucketARN"]}
               for n in namespaces.values())
    # the route sync creates the tables inside them: after they exist
    (sync,) = [r for r in s3t.json["Resources"].values() if r["Type"] == "Custom::LakerouteRouteSync"]
    assert set(namespaces) <= set(sync.get("DependsOn", []))


def test_every_function_and_the_task_get_the_catalog_and_the_table_bucket(s3t: Synth) -> None:
    arn = {"Fn::GetAtt": [bucket_id(s3t), "TableBucketARN"]}
    functions = s3t.resources("AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if "LAKEROUTE_ROUTES_TABLE" in
            f["Properties"].get("Environment", {}).get("Variables", {})}
    assert len(ours) >= 5  # ingest, commit, sync, sweep, maintenance, stop handler
    for name, fn in ours.items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["LAKEROUTE_CATALOG"] == "s3tables" and env["LAKEROUTE_TABLE_BUCKET_ARN"] == arn, name
    (task,) = s3t.resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["LAKEROUTE_CATALOG"] == "s3tables" and env["LAKEROUTE_TABLE_BUCKET_ARN"] == arn


def test_s3_tables_grants_are_the_calls_of_each_role_on_this_bucket_only(s3t: Synth) -> None:
    ingest, commit = role_of_cmd(s3t, "lakeroute.handler.handler"), role_of_cmd(s3t, "lakeroute.lane_handler.handler")
    sync, sweep = role_of_cmd(s3t, "lakeroute.sync.on_event"), role_of_cmd(s3t, "lakeroute.sweep.handler")
    maintain = role_of_cmd(s3t, "lakeroute.maintain.handler")
    (task,) = s3t.resources("AWS::ECS::TaskDefinition").values()
    task_role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    for role in (ingest, commit, sync, task_role):
        assert s3tables_actions(s3t, role) == set(WRITE_ACTIONS), role
    for role in (sweep, maintain):
        assert s3tables_actions(s3t, role) == set(READ_ACTIONS), role
    arn = {"Fn::GetAtt": [bucket_id(s3t), "TableBucketARN"]}
    for policy in s3t.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any(a.startswith("glue:") for a in actions), st
            if any(a.startswith("s3tables:") for a in actions):
                assert "s3tables:*" not in actions and not any(a.endswith("*") for a in actions)
                assert st["Resource"] == [arn, {"Fn::Join": ["", [arn, "/table/*"]]}], st
    # nothing that lists, deletes or manages buckets and namespaces: those are the stack's
    every = set().union(*(s3tables_actions(s3t, r) for r in (ingest, commit, sync, sweep, maintain, task_role)))
    assert not {a for a in every if any(w in a for w in ("Delete", "List", "Bucket", "CreateNamespace"))}


def test_outputs_tell_the_stage_commands_the_catalog(s3t: Synth) -> None:
    outputs = s3t.json["Outputs"]
    assert outputs["StageCatalog"]["Value"] == "s3tables"
    assert outputs["TableBucketArn"]["Value"] == {"Fn::GetAtt": [bucket_id(s3t), "TableBucketARN"]}
    assert "Namespaces" in outputs and "GlueDatabases" not in outputs


def test_the_catalog_setting_is_glue_or_s3tables(dev: Synth) -> None:
    assert dev.resources("AWS::Glue::Database") and not dev.resources("AWS::S3Tables::TableBucket")
    ingest = [f for f in dev.resources("AWS::Lambda::Function").values()
              if f["Properties"].get("ImageConfig", {}).get("Command") == ["lakeroute.handler.handler"]]
    assert ingest[0]["Properties"]["Environment"]["Variables"]["LAKEROUTE_CATALOG"] == "glue"
    from .synth import cdk_context

    raw = dict(cdk_context("dev")["lakeroute:stages"]["dev"])
    assert StageConfig.from_mapping("dev", raw).catalog == "glue"  # absent: glue
    with pytest.raises(StageConfigError, match="catalog.*'glue'.*'s3tables'"):
        StageConfig.from_mapping("dev", {**raw, "catalog": "iceberg-rest"})
