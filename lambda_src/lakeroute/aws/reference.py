"""Routing-table items as routes, including the reference design's ``query_sql`` items."""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping
from typing import Any

from ..core.errors import ConfigError
from ..core.routes import NAME_RE, Route, parse_route


def route_from_item(item: Mapping[str, Any], origin: str) -> Route:
    """A routing-table item: lakeroute's ``route`` (a map or JSON text), or a reference item."""
    if "route" in item:
        data = item["route"]
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as e:
                raise ConfigError(f"{origin}: route: not JSON: {e}") from None
        return parse_route(data, origin)
    if "query_sql" in item:
        bucket = str(item.get("bucket") or item.get("PartitionKey") or "")
        return reference_route(item, bucket, origin)
    raise ConfigError(f"{origin}: neither a `route` nor a reference-design `query_sql` attribute")


_PATH_MARK = "\x00lakeroute-s3-input-path\x00"
_READER_FORMATS = {
    "read_parquet": "parquet", "parquet_scan": "parquet",
    "read_csv": "csv", "read_csv_auto": "csv",
    "read_json": "json", "read_json_auto": "json", "read_ndjson": "json", "read_ndjson_auto": "json",
}
_READER_CALL = re.compile(
    r"\b(?P<fn>" + "|".join(sorted(_READER_FORMATS, key=len, reverse=True)) + r")\s*\(\s*"
    r"(?P<q>['\"]?)" + re.escape(_PATH_MARK) + r"(?P=q)\s*(?P<opts>,[^()]*)?\)", re.IGNORECASE)
_PATH_AS_TABLE = re.compile(
    r"\b(?P<kw>FROM|JOIN)\s+(?P<q>['\"]?)" + re.escape(_PATH_MARK) + r"(?P=q)", re.IGNORECASE)
_PATH_QUOTED = re.compile(r"(?P<q>['\"]?)" + re.escape(_PATH_MARK) + r"(?P=q)")
_OPTION = re.compile(
    r"\s*,\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::=|=)\s*"
    r"(?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)\s*", re.IGNORECASE)


def reference_sql(query_sql: str, origin: str) -> tuple[str, str, dict[str, Any]]:
    """The reference design's ``query_sql`` as a lakeroute route: (sql, format, options).

    ``read_parquet('{s3_input_path}', ...)`` (and the csv/json readers) and
    ``FROM '{s3_input_path}'`` become the relation ``source`` (the reader's literal options
    become reader options); any other ``{s3_input_path}``, quoted or not, becomes
    ``getvariable('source_uri')``. The path is bound as a value, never pasted into SQL.
    ``{{``/``}}`` are unescaped as ``str.format`` did; another placeholder is an error.
    """
    pieces: list[str] = []
    try:
        for literal, field_name, _, _ in string.Formatter().parse(query_sql):
            pieces.append(literal)
            if field_name is None:
                continue
            if field_name != "s3_input_path":
                raise ConfigError(f"{origin}: query_sql: unknown placeholder {{{field_name}}}; "
                                  "only {s3_input_path} is supported")
            pieces.append(_PATH_MARK)
    except ValueError as e:
        raise ConfigError(f"{origin}: query_sql: {e}") from None
    sql = "".join(pieces)
    formats: set[str] = set()
    options: dict[str, Any] = {}

    def reader(m: re.Match[str]) -> str:
        formats.add(_READER_FORMATS[m.group("fn").lower()])
        opts = m.group("opts") or ""
        pos = 0
        for om in _OPTION.finditer(opts):
            if om.start() != pos:
                break
            pos = om.end()
            options[om.group("name")] = _option_value(om.group("value"))
        if opts[pos:].strip():
            raise ConfigError(f"{origin}: query_sql: cannot translate reader options {opts.strip(', ')!r}; "
                              "write the route as a lakeroute route file instead")
        return "source"

    sql = _READER_CALL.sub(reader, sql)
    sql = _PATH_AS_TABLE.sub(lambda m: f"{m.group('kw')} source", sql)
    sql = _PATH_QUOTED.sub("getvariable('source_uri')", sql)
    if len(formats) > 1:
        raise ConfigError(f"{origin}: query_sql reads the object with different readers")
    return sql, (formats.pop() if formats else "auto"), options


def _option_value(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text) if "." in text else int(text)


def reference_route(item: Mapping[str, Any], bucket: str, origin: str = "reference item") -> Route:
    """A reference-design item (``PartitionKey``, ``target_table``, ``query_sql``) as a Route.

    ``PartitionKey`` equal to the bucket is bucket routing (the whole bucket); any other value
    is folder routing on the key's first segment (prefix ``<PartitionKey>/``).
    """
    partition = str(item.get("PartitionKey") or bucket)
    target = item.get("target_table")
    query = item.get("query_sql")
    if not isinstance(target, str) or not isinstance(query, str):
        raise ConfigError(f"{origin}: a reference item needs string target_table and query_sql")
    sql, fmt, options = reference_sql(query, origin)
    slug = re.sub(r"[^a-z0-9]+", "-", partition.lower()).strip("-")[:40] or "x"
    name = f"ref-{slug}-{hashlib.sha1(partition.encode()).hexdigest()[:8]}"
    assert re.match(NAME_RE, name)
    return parse_route({
        "name": name,
        "description": f"reference-design item PartitionKey={partition!r}",
        "source": {"bucket": bucket, "prefix": "" if partition == bucket else f"{partition}/",
                   "format": fmt, "options": options},
        "target": {"table": target},
        "sql": sql,
    }, origin)
