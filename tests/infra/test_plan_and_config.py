"""Route set -> infrastructure plan, and stage settings from cdk.json (no synth needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import Route, parse_route

from stacks.config import StageConfig, StageConfigError
from stacks.route_plan import (
    RoutePlanError,
    landing_buckets,
    load_route_set,
    namespaces,
    notification_prefixes,
    routes_hash,
    routes_payload,
)

from .synth import REPO_ROOT, cdk_context, write_routes


def route(name: str, bucket: str, prefix: str = "", table: str = "ns.t", **source: Any) -> Route:
    return parse_route({"name": name, "source": {"bucket": bucket, "prefix": prefix, **source},
                        "target": {"table": table}}, name)


@pytest.mark.parametrize(("prefixes", "expected"), [
    ([], ("",)),
    (["a/"], ("a/",)),
    (["b/", "a/"], ("a/", "b/")),
    (["a/", "a/b/"], ("a/",)),          # S3 rejects overlapping filters: keep the outer one
    (["a/b/", "a/", "a/c/", "ab/"], ("a/", "ab/")),
    (["a/", ""], ("",)),                # a route without prefix needs the whole bucket
    (["a/", "a/"], ("a/",)),
])
def test_notification_prefixes(prefixes: list[str], expected: tuple[str, ...]) -> None:
    assert notification_prefixes(prefixes) == expected


def test_landing_buckets_group_routes_by_bucket() -> None:
    plans = landing_buckets([
        route("b1", "bucket-b", "x/"), route("a1", "bucket-a"), route("b2", "bucket-b", "y/"),
        route("c1", "bucket-c", "in/", existing=True),
    ])
    assert [(p.name, p.existing, p.notification_prefixes, p.routes) for p in plans] == [
        ("bucket-a", False, ("",), ("a1",)),
        ("bucket-b", False, ("x/", "y/"), ("b1", "b2")),
        ("bucket-c", True, ("in/",), ("c1",)),
    ]


def test_routes_of_one_bucket_must_agree_on_existing() -> None:
    with pytest.raises(RoutePlanError, match="bucket-a.*existing"):
        landing_buckets([route("a1", "bucket-a", "x/", existing=True), route("a2", "bucket-a", "y/")])


def test_payload_is_canonical_and_hashed() -> None:
    r1, r2 = route("one", "bucket-a", table="x.t1"), route("two", "bucket-b", table="y.t2")
    assert routes_payload([r1, r2]) == routes_payload([r2, r1])
    items = json.loads(routes_payload([r1, r2]))
    assert items == [r1.to_item(), r2.to_item()]
    assert routes_hash(routes_payload([r1])) != routes_hash(routes_payload([r1, r2]))
    assert namespaces([r1, r2, route("three", "bucket-b", "z/", table="x.t3")]) == ["x", "y"]


def test_missing_routes_dir_is_an_empty_route_set(tmp_path: Path) -> None:
    assert load_route_set(tmp_path / "absent") == []
    assert load_route_set(write_routes(tmp_path / "empty", {})) == []


def test_bad_route_file_fails_the_synth(tmp_path: Path) -> None:
    from aws_cdk import App

    from stacks.application import build

    routes_dir = write_routes(tmp_path / "bad", {"x.yaml": "name: Bad Name\nsource: {bucket: b}\n"})
    with pytest.raises(ConfigError, match="x.yaml"):
        build(App(context=cdk_context("dev")), routes_dir=routes_dir)


# ---------------------------------------------------------------- stages


def stages() -> dict[str, dict]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["lakeroute:stages"]


def test_cdk_json_defines_dev_and_prod() -> None:
    raw = stages()
    assert {"dev", "prod"} <= set(raw)
    dev, prod = (StageConfig.from_mapping(n, raw[n]) for n in ("dev", "prod"))
    assert not dev.retain and prod.retain
    assert not prod.auto_delete_objects
    assert dev.queue_visibility_timeout_seconds >= 6 * dev.timeout_seconds
    assert prod.queue_visibility_timeout_seconds >= 6 * prod.timeout_seconds
    # Physical names and operations: written for both stages (alarm_email as null).
    for name in ("dev", "prod"):
        assert {"buckets", "databases", "generation", "oldest_message_alarm_seconds",
                "alarm_email"} <= set(raw[name]), name
        assert raw[name]["alarm_email"] is None and raw[name]["buckets"] == {}
    assert (dev.databases, dev.generation, prod.databases, prod.generation) == ("stage", 1, "stage", 1)


def test_stage_selection_from_context() -> None:
    class Node:
        def __init__(self, ctx: dict) -> None:
            self.ctx = ctx

        def try_get_context(self, key: str) -> object:
            return self.ctx.get(key)

    ctx = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    assert StageConfig.from_context(Node(ctx)).name == "dev"
    assert StageConfig.from_context(Node({**ctx, "stage": "prod"})).name == "prod"
    with pytest.raises(StageConfigError, match="unknown stage 'qa'"):
        StageConfig.from_context(Node({**ctx, "stage": "qa"}))


@pytest.mark.parametrize(("change", "message"), [
    ({"memroy_mb": 1}, "unknown key"),
    ({"timeout_seconds": None}, "expected int"),
    ({"timeout_seconds": 901}, "timeout_seconds"),
    ({"batch_size": 50, "max_batching_window_seconds": 0}, "batch size above 10"),
    ({"log_retention_days": 10}, "log_retention_days"),
    ({"removal_policy": "keep"}, "removal_policy"),
    ({"removal_policy": "retain", "auto_delete_objects": True}, "auto_delete_objects"),
])
def test_bad_stage_settings_are_named(change: dict, message: str) -> None:
    raw = {**stages()["dev"], **change}
    with pytest.raises(StageConfigError, match=message):
        StageConfig.from_mapping("dev", raw)


def test_missing_stage_setting_is_named() -> None:
    raw = dict(stages()["dev"])
    del raw["max_concurrency"]
    with pytest.raises(StageConfigError, match="missing key.*max_concurrency"):
        StageConfig.from_mapping("dev", raw)
