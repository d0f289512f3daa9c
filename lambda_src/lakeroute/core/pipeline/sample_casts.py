"""`validate`: string results feeding typed declared columns, checked on the sample's values.

A result column that is a string (DuckDB left ``1.326,05`` as text, a JSON timestamp stayed
a string) and a declared column of a number, date, time, boolean or uuid type bind fine,
and ingest casts every value with the safe cast (``core.shape.types.cast_column``): one
value that does not parse quarantines the file. The rule:

- **error** when the route's SQL over a sample file (its first ``SAMPLE_ROWS`` result rows,
  under the ingest lockdown) gives a value that does not cast, and the route would
  quarantine such a file (``on_error: file``, schema not ``rescue``): every file like the
  sample would fail; the fix names a SQL cast that parses the value (a decimal comma too);
- **warning** otherwise (no sample, the sample's values cast, or bad values would be
  rescued or rejected as rows): the cast happens at ingest, value by value; casting in the
  SQL says how the text is read. A declared ``uuid`` takes UUID strings by design: only
  sample values that are not UUIDs are said.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ObjectError, shortened
from ..objects import SourceObject
from ..read.engine import DEFAULT_TIMEOUT_SECONDS, Engine
from ..read.hints import hinted_view
from ..read.watchdog import Watchdog
from ..routes import Route
from ..routes.column_types import duck_type
from ..shape.types import cast_column
from ..sql_text import quote_ident
from .checks import Finding

if TYPE_CHECKING:
    import pyarrow as pa

SAMPLE_ROWS = 10_000
# 1.326,05 or 3,5 or -12,50: a decimal comma, optionally with '.' grouping thousands.
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d{1,3}(\.\d{3})*,\d+\s*$|^\s*[-+]?\d+,\d+\s*$")


def _typed(t: pa.DataType) -> bool:
    import pyarrow.types as pt

    return (pt.is_integer(t) or pt.is_floating(t) or pt.is_decimal(t) or pt.is_temporal(t)
            or pt.is_boolean(t) or _is_uuid(t))


def _is_uuid(t: pa.DataType) -> bool:
    import pyarrow as pa

    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def _is_text(t: pa.DataType) -> bool:
    import pyarrow.types as pt

    return pt.is_string(t) or pt.is_large_string(t)


def string_columns(route: Route, result: pa.Schema) -> dict[str, tuple[str, pa.DataType]]:
    """Result columns that are strings where the declared column is typed: name -> (declared
    type as written, its Arrow type)."""
    from ..shape.table_schema import declared_schema

    declared = route.target.table_columns
    if not declared:
        return {}
    target = declared_schema(declared).as_arrow()
    out = {}
    for f in result:
        i = target.get_field_index(f.name)
        if i >= 0 and _is_text(f.type) and _typed(target.field(i).type):
            out[f.name] = (declared[f.name], target.field(i).type)
    return out


def fix_for(column: str, declared: str, value: str | None) -> str:
    """A SQL expression that reads ``column`` as ``declared`` (a decimal comma is rewritten)."""
    q, duck = quote_ident(column), duck_type(declared)
    if value is not None and _DECIMAL_COMMA.match(value) and duck.startswith(("DECIMAL", "DOUBLE", "FLOAT")):
        return f"CAST(replace(replace({q}, '.', ''), ',', '.') AS {duck})"
    return f"CAST({q} AS {duck})"


def first_bad(values: pa.Array, target: pa.DataType, route: str, column: str) -> str | None:
    """The first value that does not cast to ``target`` with ingest's safe cast, as text."""
    try:
        cast_column(values, target, route, column)
        return None
    except ObjectError:
        pass
    lo, hi = 0, len(values)  # the whole fails: halve until one value does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            cast_column(values.slice(lo, mid - lo), target, route, column)
            lo = mid
        except ObjectError:
            hi = mid
    return str(values[lo].as_py())


def sample_values(route: Route, sample: SourceObject, columns: list[str]) -> pa.Table:
    """The first ``SAMPLE_ROWS`` rows of ``columns`` of the route's result over the sample,
    under the ingest lockdown (as ``checks.bind_check``)."""
    import duckdb

    con = Engine(prepare_next=False)._connect(sample)
    watchdog = Watchdog(con, route.source.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    try:
        view = hinted_view(con, route.file_format(sample.key), route.source.options, sample.path,
                           route.source.columns)
        con.execute("CREATE TEMP VIEW source AS " + view)
        rel = con.sql(route.sql).limit(SAMPLE_ROWS)
        return rel.project(", ".join(quote_ident(c) for c in columns)).fetch_arrow_table()
    except duckdb.Error as e:
        raise watchdog.error(route, e) from e
    finally:
        watchdog.cancel()
        con.close()


def string_cast_findings(route: Route, result: pa.Schema, sample: SourceObject | None,
                         shown: str | None = None) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) for string results into typed declared columns (module docstring);
    ``shown`` names the sample in messages (the landing path, not the scratch copy)."""
    columns = string_columns(route, result)
    if not columns:
        return [], []
    values = sample_values(route, sample, list(columns)) if sample is not None else None
    fatal = route.source.on_error == "file" and route.target.schema_policy != "rescue"
    errors: list[Finding] = []
    warnings: list[Finding] = []
    for name, (declared, target) in columns.items():
        bad = first_bad(values.column(name).combine_chunks(), target, route.name, name) if values is not None else None
        fix = fix_for(name, declared, bad)
        if bad is None and _is_uuid(target):  # UUID strings are a uuid column's documented input
            continue
        if bad is None:
            checked = f"the sample's {values.num_rows} row(s) cast; " if values is not None else ""
            warnings.append(("sql", f"result column {name} is a string and target.columns declares {declared}: "
                             f"{checked}each value is parsed at ingest and a file with one that does not parse "
                             f"is quarantined; cast it in the SQL to say how, e.g. {fix}"))
            continue
        said = f"result column {name} is a string and the sample ({shown or 'a landing file'}) has " \
               f"{shortened(bad, 60)!r}, which does not cast to the declared {declared}"
        if fatal:
            errors.append(("sql", f"{said}: every such file would be quarantined; cast it in the SQL, e.g. {fix}"))
        else:
            fate = "kept in _rescued_data" if route.target.schema_policy == "rescue" else "rejected (on_error: rows)"
            warnings.append(("sql", f"{said}: such rows would be {fate}; cast it in the SQL, e.g. {fix}"))
    return errors, warnings
