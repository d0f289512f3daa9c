"""Infra test fixtures: route sets written to temp dirs, each synthesized once per module.

A synth runs the whole app path (``stacks.application.build``: stage from context, cdk-nag
registered) into a temp ``outdir`` and returns the template plus cdk-nag's validation report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Node 20 is past its end of life for jsii: keep the test output quiet.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

BASE_ROUTES: dict[str, str] = {
    "orders.yaml": """
name: test-orders
source: {bucket: lr-test-sales, prefix: orders/, pattern: "*.parquet"}
target:
  table: sales.orders
  partition_by: ["day(order_ts)"]
  columns: {order_id: long, amount: "decimal(12,2)", order_ts: timestamptz}
sql: SELECT order_id, amount, order_ts FROM source
""",
    "refunds.yaml": """
name: test-refunds
source: {bucket: lr-test-sales, prefix: refunds/, format: csv}
target: {table: sales.refunds}
""",
    "events.yaml": """
name: test-events
source: {bucket: lr-test-events, format: json}
target: {table: web.events}
""",
    "partner.yaml": """
name: test-partner-feed
source: {bucket: lr-test-partner-drop, prefix: feed/, existing: true}
target: {table: partners.feed}
""",
}
NEW_BUCKET_ROUTE = {
    "clicks.yaml": """
name: test-clicks
source: {bucket: lr-test-clicks, prefix: clicks/}
target: {table: web.clicks}
""",
}


@dataclass
class Synth:
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    json: dict[str, Any]
    report: dict[str, Any]
    outdir: Path
    routes: list[Any]

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == type_}


def write_routes(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text.lstrip(), encoding="utf-8")
    return directory


def cdk_context(stage: str) -> dict[str, Any]:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {**context, "stage": stage}


def synth(routes_dir: Path, stage: str, outdir: Path) -> Synth:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from stacks.application import build

    app = App(context=cdk_context(stage), outdir=str(outdir))
    stack = build(app, routes_dir=routes_dir)
    try:
        assembly = app.synth()
    except RuntimeError as e:
        # cdk-nag (a policy-validation plugin) fails the synth on unacknowledged findings.
        report_file = outdir / "validation-report.json"
        if not report_file.is_file():
            raise
        violations = [
            f"{v['ruleName']} at {c['constructPath']}"
            for plugin in json.loads(report_file.read_text())["pluginReports"]
            for v in plugin["violations"] for c in v["violatingConstructs"]
        ]
        raise AssertionError(
            f"synth of stage {stage!r} failed validation:\n" + "\n".join(violations)
        ) from e
    template = assembly.get_stack_artifact(stack.artifact_id).template
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synth(stack=stack, template=Template.from_json(template), json=template,
                 report=report, outdir=outdir, routes=stack.routes)


@pytest.fixture(scope="session")
def base_routes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_routes(tmp_path_factory.mktemp("routes-base"), BASE_ROUTES)


@pytest.fixture(scope="session")
def dev(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(base_routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-dev"))


@pytest.fixture(scope="session")
def prod(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(base_routes_dir, "prod", tmp_path_factory.mktemp("cdk-out-prod"))


@pytest.fixture(scope="session")
def dev_new_bucket(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    routes_dir = write_routes(tmp_path_factory.mktemp("routes-more"),
                              {**BASE_ROUTES, **NEW_BUCKET_ROUTE})
    return synth(routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-more"))
