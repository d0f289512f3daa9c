"""Synthesizing the app for tests: route sets written to folders, the template and cdk-nag's
report back, and CloudFormation values rendered for one account and region.

Used by the infra tests (``conftest.py``) and by ``tests/integration/test_stages_on_moto.py``,
which deploys the same templates to moto's CloudFormation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Node 20 is past its end of life for jsii: keep the test output quiet.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

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
# Logical landing buckets of BASE_ROUTES that the stack creates (lr-test-partner-drop is imported).
CREATED_LANDING = ("lr-test-events", "lr-test-sales")
INGEST_CMD = ["lakeroute.handler.handler"]
SYNC_CMD = ["lakeroute.sync.on_event"]
# Templates are environment-agnostic; names are compared as CloudFormation would make them here.
ACCOUNT, REGION = "111122223333", "eu-west-1"


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

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack.artifact_id}.template.json"


def write_routes(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text.lstrip(), encoding="utf-8")
    return directory


def cdk_context(stage: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cdk.json's context with ``stage`` selected and its settings updated by ``overrides``."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    if overrides:
        stages = dict(context["lakeroute:stages"])
        stages[stage] = {**stages[stage], **overrides}
        context["lakeroute:stages"] = stages
    return {**context, "stage": stage}


def synth(routes_dir: Path | None, stage: str, outdir: Path,
          overrides: Mapping[str, Any] | None = None, extra_context: Mapping[str, Any] | None = None,
          ) -> Synth:
    """The app path of ``cdk synth`` (stage from context, cdk-nag registered) into ``outdir``."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from stacks.application import build

    app = App(context={**cdk_context(stage, overrides), **(extra_context or {})}, outdir=str(outdir))
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


def render(value: Any, *, account: str, region: str, partition: str = "aws") -> Any:
    """A template value as CloudFormation would resolve it in ``account``/``region``.

    Pseudo parameters and ``Fn::Join`` are resolved; any other intrinsic (a ``Ref`` to a
    resource, ``Fn::GetAtt``) is left as it is. Strings, lists and maps are walked.
    """
    pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition,
              "AWS::URLSuffix": "amazonaws.com"}
    if isinstance(value, list):
        return [render(v, account=account, region=region, partition=partition) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in pseudo:
            return pseudo[value["Ref"]]
        if set(value) == {"Fn::Join"}:
            sep, parts = value["Fn::Join"]
            rendered = [render(p, account=account, region=region, partition=partition) for p in parts]
            if all(isinstance(p, str) for p in rendered):
                return sep.join(rendered)
            return {"Fn::Join": [sep, rendered]}
        return {k: render(v, account=account, region=region, partition=partition)
                for k, v in value.items()}
    return value


def rendered(value: Any) -> Any:
    """``render`` in ACCOUNT/REGION."""
    return render(value, account=ACCOUNT, region=REGION)


def physical(s: Synth, logical: str) -> str:
    """The physical name of a logical landing bucket in ACCOUNT/REGION."""
    return str(rendered(s.stack.resolve(s.stack.names.bucket_map()[logical])))


def function_by_cmd(s: Synth, cmd: list[str]) -> tuple[str, dict[str, Any]]:
    """(logical id, resource) of the one function whose image CMD is ``cmd``."""
    found = [(k, v) for k, v in s.resources("AWS::Lambda::Function").items()
             if v["Properties"].get("ImageConfig", {}).get("Command") == cmd]
    assert len(found) == 1, f"expected one function with CMD {cmd}, found {len(found)}"
    return found[0]
