"""A deployed stage's resources: its stack's outputs (or the handler's environment).

``lakeroute ... --stage NAME`` reads them with one CloudFormation DescribeStacks of the
stack ``lakeroute-<NAME>`` (``stacks/application.py`` ``stack_name``; the outputs are those
of ``LakerouteStack._outputs``). Without ``--stage``, a shell that has the handler's variables
(``LAKEROUTE_ROUTES_TABLE``, ``LAKEROUTE_LEDGER_TABLE``, ``LAKEROUTE_WAREHOUSE``,
``LAKEROUTE_QUARANTINE``, ``LAKEROUTE_INGEST_QUEUE_URL``) set gets the same from them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError, shortened
from .clients import aws_client, aws_errors, error_code

STAGE_VARIABLES = ("LAKEROUTE_ROUTES_TABLE", "LAKEROUTE_LEDGER_TABLE", "LAKEROUTE_WAREHOUSE",
                   "LAKEROUTE_QUARANTINE", "LAKEROUTE_INGEST_QUEUE_URL")


def stack_name(stage: str) -> str:
    """The stage's stack (the same rule as ``stacks/application.py``, which the image lacks)."""
    return f"lakeroute-{stage}"


@dataclass(frozen=True)
class Stage:
    """What the stage commands need of a deployed stage."""

    name: str
    source: str  # "stack lakeroute-dev" or "environment"
    warehouse: str = ""
    quarantine: str = ""
    ingest_queue_url: str = ""
    routes_table: str = ""
    ledger_table: str = ""
    buckets: Mapping[str, str] = field(default_factory=dict)  # logical -> physical
    databases: Mapping[str, str] = field(default_factory=dict)  # namespace -> Glue database / S3 Tables namespace
    catalog: str = "glue"  # glue | s3tables (the stage's cdk.json setting)
    table_bucket: str = ""  # catalog s3tables: the table bucket's ARN

    def need(self, what: str) -> str:
        value = str(getattr(self, what))
        if not value:
            raise ConfigError(f"{self.source} does not give the {what.replace('_', ' ')}")
        return value

    def bucket(self, name: str) -> str:
        """The physical bucket of a logical name (a physical name is kept as it is)."""
        if name in self.buckets:
            return str(self.buckets[name])
        if not self.buckets or name in self.buckets.values():
            return name
        known = ", ".join(f"{k} ({v})" for k, v in sorted(self.buckets.items()))
        raise ConfigError(f"bucket {name!r} is not a landing bucket of {self.source} (known: {known})")

    def table(self, name: str) -> str:
        """``ns.t`` with the namespace mapped to its Glue database (a physical name is kept)."""
        namespace, dot, rest = name.partition(".")
        if dot and namespace in self.databases:
            return f"{self.databases[namespace]}.{rest}"
        return name


def _json_map(value: str | None, what: str, stack: str) -> dict[str, str]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        raise ConfigError(f"stack {stack}: output {what} is not JSON: {shortened(value, 80)!r}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"stack {stack}: output {what} is not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def stage_from_outputs(stage: str, outputs: Mapping[str, str], source: str) -> Stage:
    return Stage(
        name=stage, source=source,
        warehouse=outputs.get("WarehouseUri", "").rstrip("/"),
        quarantine=outputs.get("QuarantineUri", "").rstrip("/"),
        ingest_queue_url=outputs.get("IngestQueueUrl", ""),
        routes_table=outputs.get("RoutesTableName", ""),
        ledger_table=outputs.get("LedgerTableName", ""),
        buckets=_json_map(outputs.get("LandingBuckets"), "LandingBuckets", source),
        databases=(_json_map(outputs.get("GlueDatabases"), "GlueDatabases", source)
                   or _json_map(outputs.get("Namespaces"), "Namespaces", source)),
        catalog=outputs.get("StageCatalog", "") or "glue",
        table_bucket=outputs.get("TableBucketArn", ""),
    )


def resolve_stage(stage: str, cloudformation: Any = None) -> Stage:
    """The stage's resources from its stack's outputs; ``ConfigError`` naming the stack (and
    how to deploy it) when there is none."""
    name = stack_name(stage)
    cfn = cloudformation if cloudformation is not None else aws_client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except aws_errors() as e:
        code, _, message = error_code(e)
        if code == "ValidationError" or "does not exist" in message:
            raise ConfigError(f"stage {stage!r}: stack {name} not found (deploy it with "
                              f"`npx cdk deploy -c stage={stage}`)") from None
        raise ConfigError(f"stage {stage!r}: DescribeStacks {name}: {code or type(e).__name__}: "
                          f"{shortened(message, 200)}") from None
    if not stacks:
        raise ConfigError(f"stage {stage!r}: stack {name} not found (deploy it with "
                          f"`npx cdk deploy -c stage={stage}`)")
    outputs = {str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in stacks[0].get("Outputs") or []}
    return stage_from_outputs(stage, outputs, f"stack {name}")


def stage_from_env(env: Mapping[str, str] | None = None) -> Stage | None:
    """The handler's variables as a stage, when the four it needs are set; else None (the
    ingest queue, ``LAKEROUTE_INGEST_QUEUE_URL``, is only needed by replay and backfill)."""
    env = os.environ if env is None else env
    if not all(env.get(v, "").strip() for v in STAGE_VARIABLES[:4]):
        return None
    return Stage(
        name="(environment)", source="environment (LAKEROUTE_* variables)",
        warehouse=env.get("LAKEROUTE_WAREHOUSE", "").strip().rstrip("/"),
        quarantine=env.get("LAKEROUTE_QUARANTINE", "").strip().rstrip("/"),
        ingest_queue_url=env.get("LAKEROUTE_INGEST_QUEUE_URL", "").strip(),
        routes_table=env.get("LAKEROUTE_ROUTES_TABLE", "").strip(),
        ledger_table=env.get("LAKEROUTE_LEDGER_TABLE", "").strip(),
        catalog=env.get("LAKEROUTE_CATALOG", "").strip() or "glue",
        table_bucket=env.get("LAKEROUTE_TABLE_BUCKET_ARN", "").strip(),
    )
