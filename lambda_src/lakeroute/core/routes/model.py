"""The route model: source, target, SQL; field checks with messages that name the fix."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError, ObjectError

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
BUCKET_RE = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
TABLE_RE = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"

PRIMITIVE_TYPES = {
    "boolean", "int", "integer", "long", "bigint", "float", "double", "string", "date",
    "time", "timestamp", "timestamptz", "binary", "uuid",
}
DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
TRANSFORM_RE = re.compile(
    r"^(?:(?P<fn>identity|year|month|day|hour|void)\((?P<col>[A-Za-z_][A-Za-z0-9_]*)\)"
    r"|(?P<pfn>bucket|truncate)\(\s*(?P<n>\d+)\s*,\s*(?P<pcol>[A-Za-z_][A-Za-z0-9_]*)\)"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))$"
)
FORMATS = ("parquet", "csv", "json")


def check_type(value: str, nested: bool = False) -> str:
    """A column type in its canonical spelling; ``nested``: struct/list/map allowed (hints)."""
    v = value.strip().lower()
    if nested and v.startswith(("struct", "list", "map")):
        from ..hints import parse_type

        return parse_type(v).text()
    m = DECIMAL_RE.match(v)
    if m and not (1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1))):
        raise ValueError(f"{value!r}: Iceberg decimals have a precision of 1 to 38 and a scale of "
                         "at most the precision")
    if v in PRIMITIVE_TYPES or m:
        return v
    raise ValueError(
        f"unknown column type {value!r}; use one of {', '.join(sorted(PRIMITIVE_TYPES))} "
        "or decimal(P,S)" + (", or struct<name: type, ...>, list<type>, map<key, value>" if nested else "")
    )


def _option_value_ok(value: Any) -> bool:
    if isinstance(value, list):
        return all(_option_value_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _option_value_ok(v) for k, v in value.items())
    return isinstance(value, str | int | float | bool)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
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


class Operation(_Strict):
    """CDC files: rows whose ``column`` holds one of ``delete`` delete their key."""

    column: Annotated[str, Field(pattern=IDENT_RE)]
    delete: Annotated[list[str], Field(min_length=1)]


MODES = ("append", "upsert", "replace", "overwrite")
# mode replace: which object (logical bucket/key) wrote each row; its exact per-file bounds
# let a new version find the files of the previous one from the manifests alone.
OBJECT_COLUMN = "_lakeroute_object"


class Maintenance(_Strict):
    """Table maintenance (``core.maintenance``): what ``lakeroute maintain`` and the scheduled
    maintenance keep the table to, and when an ingest commit expires snapshots by itself.

    Defaults: 128 MB data files (what DuckDB, Athena and Spark read well, and one compaction
    bin of that size fits a 3 GB function); at most the newest 20 snapshots and none older
    than 7 days: PyIceberg copies the whole metadata several times per commit, so a commit's
    cost grows with the snapshots kept (~1.5 ms each, benchmarks/ "maintenance"), and 20
    keeps the 1,000th commit within 1.5x of the 10th; orphans only after 3 days (no commit
    takes that long, so one in flight is never harmed).
    """

    target_file_mb: Annotated[int, Field(ge=1, le=4096)] = 128
    keep_snapshots: Annotated[int, Field(ge=1, le=100_000)] = 20
    keep_days: Annotated[float, Field(gt=0, le=36_500)] = 7
    orphan_days: Annotated[float, Field(ge=1, le=36_500)] = 3
    # Expire right after an ingest commit once keep_snapshots is passed by a margin (metadata only).
    auto_expire: bool = True


RESCUED_COLUMN = "_rescued_data"  # schema: rescue: per row, JSON of what did not fit


class Expect(_Strict):
    """Checks on a file's rows (cast to the table) before they commit; a failing file is
    quarantined with the failed expectation and example rows (``core.expectations``)."""

    not_null: list[Annotated[str, Field(pattern=IDENT_RE)]] = Field(default_factory=list)
    unique: list[Annotated[str, Field(pattern=IDENT_RE)]] = Field(default_factory=list)  # together, per file
    accepted_values: dict[str, Annotated[list[str | int | float | bool], Field(min_length=1)]] = Field(
        default_factory=dict)
    min_rows: Annotated[int, Field(ge=0)] | None = None

    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.not_null, *self.unique, *self.accepted_values]))


class Target(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    table: Annotated[str, Field(pattern=TABLE_RE)]
    # append: add rows; upsert: per key the newest row (by order_by, else the later commit);
    # replace: a new version of an object key replaces the rows its previous version wrote;
    # overwrite: the partitions present in the file (or the whole table) are replaced.
    mode: Literal["append", "upsert", "replace", "overwrite"] = "append"
    key: list[Annotated[str, Field(pattern=IDENT_RE)]] | None = None
    order_by: Annotated[str, Field(pattern=IDENT_RE)] | None = None
    operation: Operation | None = None
    overwrite: Literal["partitions", "table"] | None = None
    partition_by: list[str] = Field(default_factory=list)
    columns: dict[str, str] | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    # evolve: new columns added, types widened (int->long, float->double, decimal precision
    # up) in the commit of the rows; strict: the table never changes; rescue: what does not
    # fit goes, per row, into _rescued_data. Default: strict with columns, evolve without.
    # (`schema` is the file's spelling; the attribute name avoids pydantic's own `schema`.)
    schema_mode: Literal["evolve", "strict", "rescue"] | None = Field(default=None, alias="schema")
    expect: Expect | None = None

    @property
    def schema_policy(self) -> str:
        return self.schema_mode or ("strict" if self.columns is not None else "evolve")

    @property
    def table_columns(self) -> dict[str, str] | None:
        """The declared table schema: ``columns``, plus the columns lakeroute manages:
        ``_rescued_data`` under rescue, ``_lakeroute_object`` in mode replace."""
        if self.columns is None:
            return None
        managed = {RESCUED_COLUMN: "string"} if self.schema_policy == "rescue" else {}
        if self.mode == "replace":
            managed[OBJECT_COLUMN] = "string"
        return {**self.columns, **managed}

    @model_validator(mode="after")
    def _schema_fields(self) -> Target:
        rescued = (self.columns or {}).get(RESCUED_COLUMN)
        if rescued is not None and (self.schema_policy != "rescue" or rescued != "string"):
            raise ValueError(f"{RESCUED_COLUMN} is the column schema: rescue fills (a string of "
                             "JSON); declare it only with schema: rescue, as string, or not at all")
        if self.expect is not None and self.columns is not None:
            unknown = [c for c in self.expect.columns() if c not in self.columns]
            if unknown:
                raise ValueError(f"expect names {', '.join(unknown)}, not in target.columns; "
                                 "declare them or fix the expectation")
        return self

    @model_validator(mode="after")
    def _mode_fields(self) -> Target:
        if self.mode == "upsert":
            if not self.key:
                raise ValueError("mode 'upsert' needs key: [columns] (the row identity)")
            if len(set(self.key)) != len(self.key):
                raise ValueError(f"key {self.key} names a column twice")
            if self.order_by in self.key:
                raise ValueError(f"order_by {self.order_by!r} is a key column; order by a version "
                                 "or timestamp column instead")
            if self.operation is not None and self.operation.column in self.key:
                raise ValueError(f"operation column {self.operation.column!r} is a key column")
        else:
            for name in ("key", "order_by", "operation"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to mode 'upsert' only (this target's mode "
                                     f"is {self.mode!r}); remove it or set mode: upsert")
        if self.mode == "overwrite" and self.overwrite is None:
            raise ValueError("mode 'overwrite' needs overwrite: partitions (replace the partitions "
                             "present in the file) or overwrite: table")
        if self.overwrite == "partitions" and not self.partition_by:
            raise ValueError("overwrite: partitions needs partition_by (an unpartitioned table "
                             "has one partition); for the whole table write overwrite: table")
        if self.mode != "overwrite" and self.overwrite is not None:
            raise ValueError(f"overwrite: {self.overwrite} applies to mode 'overwrite' only")
        if self.columns is not None and OBJECT_COLUMN in self.columns:
            raise ValueError(f"{OBJECT_COLUMN} is managed by lakeroute (mode replace): remove it "
                             "from target.columns")
        if self.columns is not None:
            for name in [*(self.key or []), *([self.order_by] if self.order_by else [])]:
                if name not in self.columns:
                    raise ValueError(f"{name!r} (key/order_by) is not in target.columns")
            if self.operation is not None and self.operation.column in self.columns:
                raise ValueError(f"operation column {self.operation.column!r} is not written to the "
                                 "table: remove it from target.columns")
        return self

    @field_validator("partition_by")
    @classmethod
    def _partition(cls, v: list[str]) -> list[str]:
        for t in v:
            m = TRANSFORM_RE.match(t.strip())
            if m and m.group("n") is not None and int(m.group("n")) < 1:
                raise ValueError(f"bad partition transform {t!r}: {m.group('pfn')} needs N >= 1")
            if not TRANSFORM_RE.match(t.strip()):
                raise ValueError(
                    f"bad partition transform {t!r}; use col, identity(col), year|month|day|hour(col),"
                    " bucket(N, col) or truncate(N, col)"
                )
        return [t.strip() for t in v]

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return None
        for name in v:
            if not re.match(IDENT_RE, name):
                raise ValueError(f"column name {name!r} is not an identifier")
        return {k: check_type(t) for k, t in v.items()}

    @model_validator(mode="after")
    def _partition_columns_declared(self) -> Target:
        if self.columns is not None:
            for t in self.partition_by:
                col = partition_column(t)
                if col not in self.columns:
                    raise ValueError(f"partition column {col!r} is not in target.columns")
        return self

    @property
    def namespace(self) -> str:
        return self.table.split(".", 1)[0]


    def settings(self) -> dict[str, Any]:
        """What every route feeding this table must agree on."""
        return {"partition_by": self.partition_by, "columns": self.columns,
                "properties": self.properties, "mode": self.mode, "key": self.key,
                "order_by": self.order_by, "overwrite": self.overwrite, "schema": self.schema_policy,
                "operation": None if self.operation is None else self.operation.model_dump(),
                "maintenance": self.maintenance.model_dump()}


class FanTarget(Target):
    """One item of ``targets:`` (fan-out): a target plus the SQL that feeds it."""

    sql: str = "SELECT * FROM source"

    @field_validator("sql")
    @classmethod
    def _sql(cls, v: str) -> str:
        return _nonempty_sql(v)


class Route(_Strict):
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
        return _nonempty_sql(v)

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


def _nonempty_sql(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty; at least SELECT * FROM source")
    return v


def partition_column(transform: str) -> str:
    m = TRANSFORM_RE.match(transform.strip())
    if not m:
        raise ValueError(f"bad partition transform {transform!r}")
    return m.group("col") or m.group("pcol") or m.group("bare")


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
