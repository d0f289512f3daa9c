"""Parquet nanoseconds that DuckDB's reader would truncate without a word.

DuckDB has no nanosecond timestamp *with* a time zone: a Parquet ``TIMESTAMP(NANOS,
isAdjustedToUTC=true)`` column, and a legacy ``INT96`` one (Spark, Hive, Impala), reaches the
route SQL as microseconds, the sub-microsecond part dropped. (Naive ``TIMESTAMP(NANOS)`` stays
``TIMESTAMP_NS`` in DuckDB; its cast into the table checks the values, ``core.shape.types``.)
Iceberg v2 keeps microseconds too, so such a column is fine exactly when every value is a
whole microsecond: the values are checked in the file itself (pyarrow reads those columns,
only those, once more), and an object with a sub-microsecond value is refused, naming the
column and the value. A hint on the column (``source.columns: {ts: timestamptz}``) says the
truncation is wanted. An object read in place from S3 (too big for local scratch) cannot be
checked this way: a column the SQL may read is refused unless hinted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ObjectError
from ..routes import Route

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_FIX = ("Iceberg v2 keeps microseconds and DuckDB would truncate it silently; to truncate "
        "deliberately, hint the column (source.columns: {%s: timestamptz}); nothing of it is committed")


def check_nanoseconds(con: duckdb.DuckDBPyConnection, route: Route, path: str) -> Any:
    """Refuse the object when a nanosecond column the SQL may read has a sub-microsecond value.
    Returns the file's Parquet schema as read for the check (None: not read, e.g. in S3)."""
    hinted = {h.lower() for h in route.source.columns or {}}
    if path.startswith("s3://"):
        rows = con.execute("SELECT name, type, logical_type FROM parquet_schema(getvariable('source_uri'))"
                           ).fetchall()
        for name, physical, logical in rows:
            text = str(logical or "")
            if (physical == "INT96" or ("NANOS=NanoSeconds" in text and "isAdjustedToUTC=1" in text)) and \
                    _read_by(route, name) and name.lower() not in hinted:
                raise ObjectError("schema", f"route {route.name}: column {name}: nanosecond timestamps "
                                  "in an object read in place from S3 cannot be checked for a "
                                  "sub-microsecond part; " + _FIX % name, route.name)
        return None
    import pyarrow as pa

    try:  # an open file: pyarrow's file system resolution of a path costs more than a small read
        source = pa.OSFile(path)
    except (OSError, pa.ArrowException):
        return None
    with source:
        return _check_file(route, source, hinted)


def _check_file(route: Route, source: Any, hinted: set[str]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
    except (OSError, pa.ArrowException):
        return None  # not a Parquet file pyarrow can open: DuckDB's reader says what is wrong
    tops: list[str] = []
    for i in range(len(pf.schema)):
        c = pf.schema.column(i)
        logical = c.logical_type.to_json()
        nanos_tz = '"timeUnit":"nanoseconds"' in logical and '"isAdjustedToUTC":true' in logical
        top = c.path.split(".", 1)[0]
        if (c.physical_type == "INT96" or nanos_tz) and top not in tops and _read_by(route, top) \
                and top.lower() not in hinted:
            tops.append(top)
    for top in tops:
        for batch in pf.iter_batches(columns=[top], batch_size=262_144):
            for leaf in _timestamp_leaves(batch.column(0)):
                value = _sub_microsecond(leaf)
                if value is not None:
                    raise ObjectError("schema", f"route {route.name}: column {top}: {value} has a "
                                      "sub-microsecond part; " + _FIX % top, route.name)
    return pf.schema


def _read_by(route: Route, column: str) -> bool:
    """Whether the route SQL may read ``column``: it names it, or selects ``*``."""
    sql = route.sql
    return "*" in sql or re.search(rf"(?<![\w$]){re.escape(column)}(?![\w$])", sql, re.IGNORECASE) is not None


def _timestamp_leaves(arr: pa.Array) -> Iterator[pa.Array]:
    """The nanosecond timestamp arrays inside ``arr`` (itself, struct fields, list elements)."""
    import pyarrow.types as pt

    t = arr.type
    if pt.is_timestamp(t) and t.unit == "ns":
        yield arr
    elif pt.is_struct(t):
        for child in arr.flatten():
            yield from _timestamp_leaves(child)
    elif pt.is_map(t):
        yield from _timestamp_leaves(arr.keys)
        yield from _timestamp_leaves(arr.items)
    elif pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        yield from _timestamp_leaves(arr.flatten())


def _sub_microsecond(arr: pa.Array) -> str | None:
    """The first value with a sub-microsecond part, shown, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = arr.cast(pa.int64())
    rest = pc.subtract(n, pc.multiply(pc.divide(n, 1000), 1000))
    bad = pc.not_equal(rest, 0)
    if not pc.any(bad).as_py():
        return None
    i = pc.index(bad, True).as_py()
    return shown_value(arr, i)


def shown_value(arr: pa.Array, i: int) -> str:
    """Value ``i`` of ``arr`` for a message (a nanosecond timestamp too: ``as_py`` refuses those)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pt

    if pt.is_timestamp(arr.type) and arr.type.unit == "ns":
        try:
            fmt = "%Y-%m-%dT%H:%M:%S%z" if arr.type.tz else "%Y-%m-%dT%H:%M:%S"
            return str(pc.strftime(arr.slice(i, 1), format=fmt)[0].as_py())
        except pa.ArrowException:  # no time zone database: the count itself
            return f"{arr.slice(i, 1).cast(pa.int64())[0].as_py()} ns since 1970"
    return f"{arr[i].as_py()!r:.80}"


def python_values(arr: pa.Array) -> list[Any]:
    """``arr.to_pylist()``, with nanosecond timestamps as ISO text (``as_py`` refuses a value
    with a sub-microsecond part: such a value is shown, rescued or rejected as it is)."""
    import pyarrow.compute as pc
    import pyarrow.types as pt

    if pt.is_timestamp(arr.type) and arr.type.unit == "ns":
        fmt = "%Y-%m-%dT%H:%M:%S%z" if arr.type.tz else "%Y-%m-%dT%H:%M:%S"
        return pc.strftime(arr, format=fmt).to_pylist()
    return arr.to_pylist()
