"""The route model: a source, a target (``core.routes.target``) or fan-out targets, and SQL;
field checks with messages that name the fix."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError, ObjectError
from .column_types import check_type
from .fields import BUCKET_RE, IDENT_RE, NAME_RE, StrictModel, nonempty_sql
from .target import FanTarget, Target


def _option_value_ok(value: Any) -> bool:
    if isinstance(value, list):
        return all(_option_value_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _option_value_ok(v) for k, v in value.items())
    return isinstance(value, str | int | float | bool)


class Source(StrictModel):
    bucket: Annotated[str, Field(pattern=BUCKET_RE)]
    prefix: str = ""
    pattern: str | None = None
    # Globs on the rest of the key: such objects are ignored (reported), never quarantined.
    exclude: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    format: Literal["auto", "parquet", "csv", "json"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict)
    # Schema hints: declared types of source columns, applied to the reader at ingest (a hinted
    # column a file lacks reads as a typed NULL) and used by `validate` to bind with no sample.
    columns: dict[str, str] | None = None
    # file: a file with a bad row is quarantined whole; rows: bad rows go to the quarantine's
    # rejects file (line numbers, reasons), the good ones commit (core.rejects).
    on_error: Literal["file", "rows"] = "file"
    # The bucket exists already (owned elsewhere): the stack imports it instead of creating it.
    existing: bool = False
    # Per-object limit for reading + SQL (default: the engine's, 900 s); DuckDB is interrupted.
    timeout_seconds: Annotated[float, Field(gt=0, le=86400)] | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v.startswith("/"):
            raise ValueError("must not start with '/': S3 keys have no leading slash")
        if v and not v.endswith("/"):
            raise ValueError(f"a folder prefix ends with '/': write {v + '/'!r}")
        return v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return None if v is None else {k: check_type(t, nested=True) for k, t in v.items()}

    @model_validator(mode="after")
    def _rows_mode(self) -> Source:
        if self.on_error == "rows" and self.format == "parquet":
            raise ValueError("on_error: rows applies to csv and json (a Parquet file has no bad "
                             "lines to set aside); use on_error: file, or target.schema: rescue for "
                             "values that do not cast")
        if self.on_error == "rows" and self.options.get("ignore_errors"):
            raise ValueError("on_error: rows sets bad rows aside itself; options.ignore_errors would drop "
                             "or null them silently: remove it")
        if self.on_error == "rows" and str(self.options.get("format", "newline_delimited")).lower() not in (
                "newline_delimited", "nd", "auto"):
            raise ValueError("on_error: rows needs one JSON value per line (options.format: "
                             "newline_delimited); remove options.format or use on_error: file")
        return self

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, value in v.items():
            if not re.match(IDENT_RE, name):
                raise ValueError(f"reader option name {name!r} is not an identifier")
            if not _option_value_ok(value):
                raise ValueError(f"reader option {name!r} must be a string, number, boolean, or a "
                                 "list or mapping of those (no null)")
        return v


class Route(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Annotated[str, Field(pattern=NAME_RE)]
    source: Source
    # `target` + `sql`, or (fan-out) `targets`: each a target with its own sql; one file then
    # feeds several tables, each exactly once on its own (``legs``).
    target_: Target | None = Field(default=None, alias="target")
    targets: Annotated[list[FanTarget], Field(min_length=1)] | None = None
    sql: str = "SELECT * FROM source"
    description: str | None = None

    @model_validator(mode="after")
    def _one_target_form(self) -> Route:
        if (self.target_ is None) == (self.targets is None):
            raise ValueError("give target (with sql) or targets (a list of target + sql), not both or neither")
        if self.targets is not None:
            if "sql" in self.model_fields_set and self.sql != "SELECT * FROM source":  # (a dump has the default)
                raise ValueError("with targets:, each target has its own sql; move sql into the items")
            tables = [t.table for t in self.targets]
            twice = sorted({t for t in tables if tables.count(t) > 1})
            if twice:
                raise ValueError(f"targets: table {', '.join(twice)} twice; one item per table")
        return self

    @property
    def target(self) -> Target:
        """The target of a single-target route (a leg of a fan-out route is one)."""
        if self.target_ is None:
            raise ConfigError(f"route {self.name} has targets: (fan-out); use its legs()")
        return self.target_

    def legs(self) -> list[Route]:
        """One single-target route per target: the route itself, or, for ``targets:``, a route
        of the same name, source and description per item, with that item's SQL."""
        if self.targets is None:
            return [self]
        # Built on each call, not cached: a cached private attribute would take part in ==
        # (route sync compares routes); a few hundred microseconds per object of a fan-out.
        return [Route(name=self.name, source=self.source, description=self.description, sql=t.sql,
                      target=Target.model_validate(t.model_dump(exclude={"sql"}, exclude_none=True, by_alias=True)))
                for t in self.targets]

    @field_validator("sql")
    @classmethod
    def _sql(cls, v: str) -> str:
        return nonempty_sql(v)

    def specificity(self) -> tuple[int, int, int]:
        """Longest prefix, then metadata, then pattern (shared/DESIGN.md §3)."""
        return (len(self.source.prefix), len(self.source.metadata), int(self.source.pattern is not None))

    def matches_key(self, key: str) -> bool:
        if not key.startswith(self.source.prefix):
            return False
        pattern = self.source.pattern
        return pattern is None or fnmatch.fnmatchcase(key[len(self.source.prefix):], pattern)

    def file_format(self, key: str) -> str:
        return self.source.format if self.source.format != "auto" else format_from_key(key)

    def to_item(self) -> dict[str, Any]:
        """The routing-table (DynamoDB) item for this route."""
        return {"bucket": self.source.bucket, "name": self.name,
                "route": self.model_dump(mode="json", exclude_none=True, by_alias=True)}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Route:
        return cls.model_validate(item["route"])


def format_from_key(key: str) -> str:
    """parquet | csv | json from the key's extension (.gz/.zst allowed for csv/json)."""
    name = key.lower()
    for comp in (".gz", ".zst", ".gzip", ".zstd"):
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    for ext, fmt in ((".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"),
                     (".tsv", "csv"), (".txt", "csv"), (".json", "json"),
                     (".jsonl", "json"), (".ndjson", "json")):
        if name.endswith(ext):
            return fmt
    raise ObjectError("read", f"cannot tell the format of {key!r} from its extension; "
                      "set source.format in the route")
