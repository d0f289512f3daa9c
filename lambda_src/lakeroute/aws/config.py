"""The handler's environment: read and checked once per container."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from ..core.errors import ConfigError

ENV_HELP = {
    "LAKEROUTE_ROUTES_TABLE": "the DynamoDB routing table (pk `bucket`, sk `name`)",
    "LAKEROUTE_LEDGER_TABLE": "the DynamoDB ledger table (pk `pk`, sk `sk`)",
    "LAKEROUTE_WAREHOUSE": "the Iceberg warehouse, s3://bucket/prefix",
    "LAKEROUTE_QUARANTINE": "where bad objects go, s3://bucket/prefix",
}
READERS = ("auto", "download", "httpfs")


@dataclass(frozen=True)
class AwsConfig:
    """The handler's environment, read and checked once per container (cold start).

    Optional: ``LAKEROUTE_CATALOG`` (``glue``, default; ``s3tables``: the tables of the S3 table
    bucket ``LAKEROUTE_TABLE_BUCKET_ARN``, through ``aws.s3tables``; any other value is a
    PyIceberg catalog type whose properties come from PyIceberg's own
    ``PYICEBERG_CATALOG__LAKEROUTE__*`` variables, e.g. ``rest`` for S3 Tables' REST endpoint),
    ``LAKEROUTE_REFERENCE_TABLE`` (a reference-design
    routing table keyed by ``PartitionKey``; the reference's own ``ROUTING_TABLE`` variable is
    honoured too), ``LAKEROUTE_ROUTES_TTL_SECONDS`` (route cache, 30), ``LAKEROUTE_READER``
    (auto | download | httpfs), ``LAKEROUTE_TMP`` (/tmp), ``LAKEROUTE_FAIL_QUARANTINED``
    (true: quarantined objects are also reported as batch item failures, so their messages
    end in the DLQ), ``LAKEROUTE_LEDGER_TTL_DAYS`` (0 = keep ledger entries forever),
    ``LAKEROUTE_DUCKDB_MEMORY`` (default: half the function's memory),
    ``LAKEROUTE_COMMIT_RESERVE_SECONDS`` (15: time kept back from the deadline for commits;
    objects start only while the rest covers them, see ``core.budget``),
    ``LAKEROUTE_OBJECT_TIMEOUT_SECONDS`` (900: an object's limit unless its route sets one),
    ``LAKEROUTE_LANE`` (s3://bucket/prefix: the commit lane's hand-offs; set, ingest stages
    and hands off, the commit function commits), ``LAKEROUTE_LANE_QUEUE`` (its FIFO queue),
    ``LAKEROUTE_COMMIT_DEFAULTS`` (JSON: the stage's max_files, max_mb, max_seconds).
    """

    routes_table: str
    ledger_table: str
    warehouse: str
    quarantine: str
    catalog: str = "glue"
    table_bucket: str | None = None  # LAKEROUTE_TABLE_BUCKET_ARN (catalog s3tables)
    reference_table: str | None = None
    routes_ttl: float = 30.0
    reader: str = "auto"
    tmp_dir: str = "/tmp"
    fail_quarantined: bool = True
    ledger_ttl_days: int = 0
    duckdb_memory: str | None = None
    commit_reserve_seconds: float = 15.0
    object_timeout_seconds: float = 900.0
    lane: str | None = None  # commit lane root, s3://bucket/prefix (stage in parallel, commit per table)
    lane_queue: str | None = None  # its SQS FIFO queue (message group = table)
    commit_defaults: dict[str, float] | None = None  # the stage's commit triggers (core.lane.triggers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsConfig:
        env = os.environ if env is None else env
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is not set: {ENV_HELP[name]}")
            return value

        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                value = default
                problems.append(f"{name}={raw!r} is not a number")
            if value < 0:
                problems.append(f"{name}={raw!r} must not be negative")
            return value

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in ("1", "true", "yes", "on"):
                return True
            if raw in ("0", "false", "no", "off"):
                return False
            problems.append(f"{name}={raw!r} is not true/false")
            return default

        routes_table = required("LAKEROUTE_ROUTES_TABLE")
        ledger_table = required("LAKEROUTE_LEDGER_TABLE")
        warehouse = required("LAKEROUTE_WAREHOUSE").rstrip("/")
        quarantine = required("LAKEROUTE_QUARANTINE").rstrip("/")
        catalog = env.get("LAKEROUTE_CATALOG", "").strip() or "glue"
        if catalog == "glue" and warehouse and not _is_s3_uri(warehouse):
            problems.append(f"LAKEROUTE_WAREHOUSE={warehouse!r} must be s3://bucket/prefix")
        table_bucket = env.get("LAKEROUTE_TABLE_BUCKET_ARN", "").strip() or None
        if catalog == "s3tables" and not (table_bucket or "").startswith("arn:"):
            problems.append("LAKEROUTE_CATALOG=s3tables needs LAKEROUTE_TABLE_BUCKET_ARN, the table "
                            f"bucket's ARN (arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME), not {table_bucket!r}")
        if quarantine and not _is_s3_uri(quarantine):
            problems.append(f"LAKEROUTE_QUARANTINE={quarantine!r} must be s3://bucket/prefix")
        reader = env.get("LAKEROUTE_READER", "").strip().lower() or "auto"
        if reader not in READERS:
            problems.append(f"LAKEROUTE_READER={reader!r} must be one of {', '.join(READERS)}")
        memory = env.get("LAKEROUTE_DUCKDB_MEMORY", "").strip() or None
        if memory is not None and not re.match(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB|%)$", memory, re.I):
            problems.append(f"LAKEROUTE_DUCKDB_MEMORY={memory!r} is not a memory size (e.g. 512MB, 2GB, 50%)")
        lambda_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
        if memory is None and lambda_mb.isdigit():
            memory = f"{int(lambda_mb) // 2}MB"
        config = cls(
            routes_table=routes_table, ledger_table=ledger_table, warehouse=warehouse,
            quarantine=quarantine, catalog=catalog, table_bucket=table_bucket,
            reference_table=(env.get("LAKEROUTE_REFERENCE_TABLE", "").strip()
                             or env.get("ROUTING_TABLE", "").strip() or None),
            routes_ttl=number("LAKEROUTE_ROUTES_TTL_SECONDS", 30.0),
            reader=reader,
            tmp_dir=env.get("LAKEROUTE_TMP", "").strip() or env.get("TMPDIR", "").strip() or "/tmp",
            fail_quarantined=flag("LAKEROUTE_FAIL_QUARANTINED", True),
            ledger_ttl_days=int(number("LAKEROUTE_LEDGER_TTL_DAYS", 0)),
            duckdb_memory=memory,
            commit_reserve_seconds=number("LAKEROUTE_COMMIT_RESERVE_SECONDS", 15.0),
            object_timeout_seconds=number("LAKEROUTE_OBJECT_TIMEOUT_SECONDS", 900.0) or 900.0,
            lane=env.get("LAKEROUTE_LANE", "").strip().rstrip("/") or None,
            lane_queue=env.get("LAKEROUTE_LANE_QUEUE", "").strip() or None,
            commit_defaults=_commit_defaults(env.get("LAKEROUTE_COMMIT_DEFAULTS", ""), problems),
        )
        if config.lane is not None and not _is_s3_uri(config.lane):
            problems.append(f"LAKEROUTE_LANE={config.lane!r} must be s3://bucket/prefix")
        if problems:
            raise ConfigError("lakeroute is misconfigured (environment):\n  - " + "\n  - ".join(problems))
        return config


def _commit_defaults(raw: str, problems: list[str]) -> dict[str, float] | None:
    """``LAKEROUTE_COMMIT_DEFAULTS``: JSON {max_files, max_mb, max_seconds} (the stage's triggers)."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
        if not isinstance(value, dict) or not all(k in ("max_files", "max_mb", "max_seconds") and
                                                  isinstance(v, int | float) and v >= 0 for k, v in value.items()):
            raise ValueError("keys max_files, max_mb, max_seconds with numbers >= 0")
    except ValueError as e:
        problems.append(f"LAKEROUTE_COMMIT_DEFAULTS={raw!r}: {e}")
        return None
    return {k: float(v) for k, v in value.items()}


def _is_s3_uri(uri: str) -> bool:
    parsed = urlparse(uri)
    return parsed.scheme == "s3" and bool(parsed.netloc)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"{uri!r} is not an s3://bucket/prefix URI")
    return parsed.netloc, parsed.path.strip("/")
