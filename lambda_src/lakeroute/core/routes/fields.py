"""What every part of a route shares: field patterns, the strict model base, partition transforms."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
BUCKET_RE = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
TABLE_RE = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"

TRANSFORM_RE = re.compile(
    r"^(?:(?P<fn>identity|year|month|day|hour|void)\((?P<col>[A-Za-z_][A-Za-z0-9_]*)\)"
    r"|(?P<pfn>bucket|truncate)\(\s*(?P<n>\d+)\s*,\s*(?P<pcol>[A-Za-z_][A-Za-z0-9_]*)\)"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))$"
)
FORMATS = ("parquet", "csv", "json")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def nonempty_sql(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty; at least SELECT * FROM source")
    return v


def partition_column(transform: str) -> str:
    m = TRANSFORM_RE.match(transform.strip())
    if not m:
        raise ValueError(f"bad partition transform {transform!r}")
    return m.group("col") or m.group("pcol") or m.group("bare")
