"""Route files: the model, loading with file/field-path messages, matching, static checks.

One pydantic model validates ``routes/*.yaml`` before deploy and parses routing-table items
at run time, so a route means the same thing everywhere. This module imports no heavy
library: the CDK app and the Lambda cold start both import it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, ObjectError

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


def check_type(value: str) -> str:
    v = value.strip().lower()
    if v in PRIMITIVE_TYPES or DECIMAL_RE.match(v):
        return v
    raise ValueError(
        f"unknown column type {value!r}; use one of {', '.join(sorted(PRIMITIVE_TYPES))} "
        "or decimal(P,S)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    bucket: Annotated[str, Field(pattern=BUCKET_RE)]
    prefix: str = ""
    pattern: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    format: Literal["auto", "parquet", "csv", "json"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict)
    # Declared schema of the incoming files: lets `validate` bind the SQL with no sample.
    columns: dict[str, str] | None = None
    # The bucket exists already (owned elsewhere): the stack imports it instead of creating it.
    existing: bool = False

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
        return None if v is None else {k: check_type(t) for k, t in v.items()}

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, value in v.items():
            if not re.match(IDENT_RE, name):
                raise ValueError(f"reader option name {name!r} is not an identifier")
            if not isinstance(value, str | int | float | bool | list | dict):
                raise ValueError(f"reader option {name!r} must be a scalar, list or mapping")
        return v


class Target(_Strict):
    table: Annotated[str, Field(pattern=TABLE_RE)]
    mode: Literal["append", "upsert", "overwrite"] = "append"
    partition_by: list[str] = Field(default_factory=list)
    columns: dict[str, str] | None = None
    properties: dict[str, str] = Field(default_factory=dict)

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v != "append":
            raise ValueError(f"mode {v!r} is not supported yet; use 'append'")
        return v

    @field_validator("partition_by")
    @classmethod
    def _partition(cls, v: list[str]) -> list[str]:
        for t in v:
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
                "properties": self.properties, "mode": self.mode}


class Route(_Strict):
    name: Annotated[str, Field(pattern=NAME_RE)]
    source: Source
    target: Target
    sql: str = "SELECT * FROM source"
    description: str | None = None

    @field_validator("sql")
    @classmethod
    def _sql(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty; at least SELECT * FROM source")
        return v

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
                "route": self.model_dump(mode="json", exclude_none=True)}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Route:
        return cls.model_validate(item["route"])


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


# ---------------------------------------------------------------- loading


def _field_path(loc: Iterable[int | str]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_route(data: Any, origin: str) -> Route:
    """Validate one route document; errors name the origin and the field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with name, source, target, sql")
    try:
        return Route.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see the route file contract)"
            elif err["type"] == "string_pattern_mismatch":
                msg = f"{err.get('input')!r} does not match {err['ctx']['pattern']}"
            lines.append(f"{origin}: {_field_path(err['loc'])}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_route_file(path: Path) -> Route:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_route(data, str(path))


def route_files(routes_dir: Path) -> list[Path]:
    if not routes_dir.is_dir():
        raise ConfigError(f"{routes_dir}: routes directory not found; create it or pass --routes DIR")
    return sorted(p for p in routes_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_routes(routes_dir: Path) -> list[Route]:
    """Every route under ``routes_dir``, checked together; raises one ConfigError listing all."""
    routes, _, problems = collect_routes(routes_dir)
    if problems:
        raise ConfigError("\n".join(problems))
    return routes


def collect_routes(routes_dir: Path) -> tuple[list[Route], dict[str, str], list[str]]:
    """(valid routes, route name -> file, one line per problem) for a routes folder."""
    problems: list[str] = []
    routes: list[Route] = []
    origins: dict[str, str] = {}
    for path in route_files(routes_dir):
        try:
            route = load_route_file(path)
        except ConfigError as e:
            problems.extend(str(e).splitlines())
            continue
        if route.name in origins:
            problems.append(f"{path}: name: {route.name!r} is already used by {origins[route.name]}")
            continue
        origins[route.name] = str(path)
        routes.append(route)
    problems.extend(cross_check(routes, origins))
    return routes, origins, problems


# ---------------------------------------------------------------- static checks


def cross_check(routes: list[Route], origins: Mapping[str, str] | None = None) -> list[str]:
    """Ambiguous routes and disagreeing table settings, one line per problem."""
    origins = origins or {}

    def where(r: Route) -> str:
        return origins.get(r.name, f"route {r.name}")

    problems = []
    for i, a in enumerate(routes):
        for b in routes[i + 1:]:
            if could_tie(a, b):
                problems.append(
                    f"{where(b)}: source: ambiguous with route {a.name!r} ({where(a)}): both can "
                    f"match the same key in bucket {a.source.bucket!r} with equal specificity; "
                    "make one prefix longer, add a pattern or metadata, or merge them"
                )
    by_table: dict[str, Route] = {}
    for r in routes:
        first = by_table.setdefault(r.target.table, r)
        if first is not r and first.target.settings() != r.target.settings():
            diff = [k for k, v in r.target.settings().items() if first.target.settings()[k] != v]
            problems.append(
                f"{where(r)}: target: settings for table {r.target.table!r} disagree with route "
                f"{first.name!r} ({where(first)}) on {', '.join(diff)}; routes feeding one table "
                "must declare the same table settings"
            )
    return problems


def could_tie(a: Route, b: Route) -> bool:
    """True when some object could match both routes with equal specificity."""
    sa, sb = a.source, b.source
    if sa.bucket != sb.bucket or a.specificity() != b.specificity() or sa.prefix != sb.prefix:
        return False
    if any(k in sb.metadata and sb.metadata[k] != v for k, v in sa.metadata.items()):
        return False  # disagreeing metadata: disjoint by construction
    if sa.pattern is None or sb.pattern is None:
        return True
    return globs_intersect(sa.pattern, sb.pattern)


def _glob_tokens(pattern: str) -> tuple[str, ...]:
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = pattern.find("]", i + 2)
            if j != -1:
                tokens.append(pattern[i:j + 1])
                i = j + 1
                continue
        if c == "*" and tokens and tokens[-1] == "*":
            i += 1
            continue
        tokens.append(c)
        i += 1
    return tuple(tokens)


def _chars_compatible(x: str, y: str) -> bool:
    if x == "?" or y == "?":
        return True
    if len(x) > 1 and len(y) > 1:
        return True  # two classes: assume they overlap (conservative)
    if len(x) > 1:
        return fnmatch.fnmatchcase(y, x)
    if len(y) > 1:
        return fnmatch.fnmatchcase(x, y)
    return x == y


def globs_intersect(p: str, q: str) -> bool:
    """Whether two fnmatch globs can match a common string (classes assumed to overlap)."""
    tp, tq = _glob_tokens(p), _glob_tokens(q)

    @cache
    def f(i: int, j: int) -> bool:
        if i == len(tp) and j == len(tq):
            return True
        if i < len(tp) and tp[i] == "*":
            if f(i + 1, j):
                return True
            return j < len(tq) and f(i, j + 1)
        if j < len(tq) and tq[j] == "*":
            if f(i, j + 1):
                return True
            return i < len(tp) and f(i + 1, j)
        if i == len(tp) or j == len(tq):
            return False
        return _chars_compatible(tp[i], tq[j]) and f(i + 1, j + 1)

    return f(0, 0)


# ---------------------------------------------------------------- matching


MetadataProvider = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class RouteTable:
    """Routes grouped by bucket; ``match`` picks the most specific one for an object."""

    by_bucket: Mapping[str, tuple[Route, ...]]

    @classmethod
    def of(cls, routes: Iterable[Route]) -> RouteTable:
        grouped: dict[str, list[Route]] = {}
        for r in routes:
            grouped.setdefault(r.source.bucket, []).append(r)
        return cls({b: tuple(sorted(rs, key=Route.specificity, reverse=True))
                    for b, rs in grouped.items()})

    @property
    def routes(self) -> list[Route]:
        return [r for rs in self.by_bucket.values() for r in rs]

    def candidates(self, bucket: str, key: str) -> list[Route]:
        return [r for r in self.by_bucket.get(bucket, ()) if r.matches_key(key)]

    def needs_metadata(self, bucket: str, key: str) -> bool:
        return any(r.source.metadata for r in self.candidates(bucket, key))

    def match(self, bucket: str, key: str, metadata: MetadataProvider | None = None) -> Route:
        """The winning route; metadata is fetched only when a candidate route asks for it."""
        candidates = self.candidates(bucket, key)
        meta: Mapping[str, str] | None = None
        if any(r.source.metadata for r in candidates):
            meta = metadata() if metadata is not None else {}
        matching = [r for r in candidates
                    if all(meta is not None and meta.get(k) == v for k, v in r.source.metadata.items())]
        if not matching:
            from .errors import NoRouteError

            raise NoRouteError(bucket, key)
        best = matching[0]
        ties = [r.name for r in matching[1:] if r.specificity() == best.specificity()]
        if ties:
            raise ObjectError(
                "route",
                f"ambiguous routes for {bucket}/{key}: {best.name}, {', '.join(ties)}; "
                "run `lakeroute validate` and make one more specific",
            )
        return best
