"""Ingest's rules, checked before any file arrives (``lakeroute validate``).

``bind_check`` binds a route's SQL under exactly the ingest lockdown (``Engine._connect``:
no extension autoload or download, external access off, configuration locked) and the same
statement rule (exactly one SELECT), over a sample object (lakeroute's own scratch copy) or
over the declared ``source.columns``; with neither, the statement rule is still checked.
``result_problems`` are what would fail every object at ingest for that result;
``name_findings`` the names and types a reader downstream (Glue, Athena, Spark) struggles
with. Findings are ``(field, message)`` pairs; the caller names the route file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ObjectError, shortened
from ..objects import SourceObject
from ..read.engine import DEFAULT_TIMEOUT_SECONDS, Engine
from ..read.hints import hinted_view
from ..read.result_checks import check_result_names, check_single_select
from ..read.source_view import reader_sql
from ..read.watchdog import Watchdog
from ..routes import OBJECT_COLUMN, Route, partition_column
from ..routes.column_types import duck_type
from ..shape.types import cast_column, table_type
from ..sql_text import quote_ident

if TYPE_CHECKING:
    import pyarrow as pa

Finding = tuple[str, str]  # (field of the route file, message)

LOWER_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_TIME_READERS = "Spark and Athena cannot read Iceberg time columns"


def bind_check(route: Route, sample: SourceObject | None) -> pa.Schema | None:
    """The Arrow schema of the route's result, bound (no rows read) over ``sample`` or the
    declared ``source.columns``; None when there is neither (only the statement rule ran).

    Raises the ObjectError ingest would raise for a SQL that is not one SELECT or does not bind.
    """
    import duckdb

    obj = sample or SourceObject(route.source.bucket, route.source.prefix + "key", path="", version="etag")
    con = Engine(prepare_next=False)._connect(obj)  # the ingest lockdown, nothing less
    watchdog = Watchdog(con, route.source.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    try:
        check_single_select(con, route)
        if sample is None and route.source.columns is None:
            return None
        try:
            if sample is not None:  # the hints applied as at ingest
                view = hinted_view(con, route.file_format(sample.key), route.source.options, sample.path,
                                   route.source.columns)
            else:
                assert route.source.columns is not None
                cols = ", ".join(f"NULL::{duck_type(t)} AS {quote_ident(n)}"
                                 for n, t in route.source.columns.items())
                view = f"SELECT {cols} WHERE false"
            con.execute("CREATE TEMP VIEW source AS " + view)
            return con.sql(route.sql).limit(0).fetch_arrow_table().schema
        except duckdb.Error as e:
            raise watchdog.error(route, e) from e
    finally:
        watchdog.cancel()
        con.close()


HINT_SAMPLE_ROWS = 10_000


def hint_problems(route: Route, sample: SourceObject) -> list[Finding]:
    """Hints the sample contradicts: a hinted column whose sample values (the first
    ``HINT_SAMPLE_ROWS`` rows, read without the hints) do not cast to the hinted type."""
    import duckdb

    hints = route.source.columns or {}
    if not hints:
        return []
    con = Engine(prepare_next=False)._connect(sample)
    problems: list[Finding] = []
    try:
        rel = con.sql(reader_sql(route.file_format(sample.key), route.source.options, sample.path))
        names = {n.lower(): n for n in rel.columns}
        for hint, text in hints.items():
            column = names.get(hint.lower())
            if column is None:
                continue
            q = quote_ident(column)
            bad = rel.limit(HINT_SAMPLE_ROWS).filter(
                f"{q} IS NOT NULL AND TRY_CAST({q} AS {duck_type(text)}) IS NULL").limit(1).fetchall()
            if bad:
                example = rel.limit(HINT_SAMPLE_ROWS).filter(
                    f"{q} IS NOT NULL AND TRY_CAST({q} AS {duck_type(text)}) IS NULL").project(
                    f"{q}::VARCHAR").limit(1).fetchone()
                shown = shortened(str(example[0]), 60) if example else "?"
                problems.append((f"source.columns.{hint}", f"hinted {text}, but the sample has values that "
                                 f"are not (e.g. {shown!r}); at ingest such a file is quarantined (or, with "
                                 "on_error: rows, such rows rejected): fix the hint"))
    except duckdb.Error as e:
        problems.append(("source.columns", f"could not check the hints against the sample: {e}"))
    finally:
        con.close()
    return problems


def policy_findings(route: Route, result: pa.Schema | None) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) about target.schema, target.expect and source.on_error."""
    errors: list[Finding] = []
    warnings: list[Finding] = []
    if result is not None and route.target.expect is not None:
        made = set(result.names)
        missing = [c for c in route.target.expect.columns() if c not in made]
        if missing:
            errors.append(("target.expect", f"{', '.join(missing)}: not produced by the SQL, so the "
                           "expectation could never pass (or never test anything); select them or fix "
                           "target.expect"))
    if route.source.options.get("ignore_errors") and route.source.on_error == "file":
        warnings.append(("source.options.ignore_errors", "DuckDB then drops or nulls bad rows silently; "
                         "use source.on_error: rows to set them aside with line numbers instead"))
    if route.target.schema_policy == "rescue" and route.target.mode != "append":
        keys = [*(route.target.key or []), *([route.target.order_by] if route.target.order_by else [])]
        if keys:
            warnings.append(("target.schema", f"rescue: a value of {', '.join(keys)} that does not cast lands "
                             "as NULL (kept in _rescued_data); add target.expect.not_null for them"))
    return errors, warnings


def _bare(route: Route, e: ObjectError) -> str:
    return e.message.removeprefix(f"route {route.name}: ")


def result_problems(route: Route, result: pa.Schema) -> list[Finding]:
    """What fails every object at ingest with this result: a column type with no Iceberg
    counterpart, two columns of one name (in any case), a column the declared table lacks, a
    partition column the result lacks when the table takes its schema from the result."""
    problems: list[Finding] = mode_problems(route, result)
    op = route.target.operation
    declared = route.target.table_columns
    if op is not None and op.column in result.names and op.column not in (declared or {}):
        result = result.remove(result.get_field_index(op.column))  # read, not written
    for f in result:
        try:
            table_type(f.type, route.name, f.name)
        except ObjectError as e:
            problems.append(("sql", _bare(route, e)))
    try:
        check_result_names(route, result.names)
    except ObjectError as e:
        problems.append(("sql", _bare(route, e)))
    if declared is not None:
        extra = [name for name in result.names if name not in declared]
        if extra and route.target.schema_policy == "strict":
            problems.append(("sql", f"result columns {', '.join(extra)} are not in target.columns; "
                             "declare them or drop them in the SQL"))
        if route.target.schema_policy != "rescue":  # under rescue such values are rescued
            problems += _cast_problems(route, result, declared)
        return problems
    for transform in route.target.partition_by:
        col = partition_column(transform)
        if col not in result.names:
            problems.append(("target.partition_by", f"partition column {col!r} ({transform}) is not "
                             "in the result of the SQL, and the table takes its schema from the "
                             "result (no target.columns); select it in the SQL or declare "
                             "target.columns"))
    return problems


def mode_problems(route: Route, result: pa.Schema) -> list[Finding]:
    """The write mode's columns against the result: keys, order_by, the operation column."""
    import pyarrow.types as pt

    t = route.target
    problems: list[Finding] = []
    for k in t.key or []:
        if k not in result.names:
            problems.append(("target.key", f"key column {k!r} is not in the result of the SQL; "
                             "select it (upsert matches rows by it)"))
        elif pt.is_nested(result.field(k).type) or pt.is_floating(result.field(k).type):
            problems.append(("target.key", f"key column {k!r} is {result.field(k).type}: a key must "
                             "be a string, integer, decimal, date, timestamp or uuid"))
    if t.order_by is not None:
        if t.order_by not in result.names:
            problems.append(("target.order_by", f"order_by column {t.order_by!r} is not in the result "
                             "of the SQL; select it"))
        elif pt.is_nested(result.field(t.order_by).type) or pt.is_boolean(result.field(t.order_by).type):
            problems.append(("target.order_by", f"order_by column {t.order_by!r} is "
                             f"{result.field(t.order_by).type}: use a number, timestamp, date or string"))
    if t.operation is not None and t.operation.column not in result.names:
        problems.append(("target.operation", f"operation column {t.operation.column!r} is not in the "
                         "result of the SQL; select it"))
    if t.mode == "replace" and OBJECT_COLUMN in result.names:
        problems.append(("sql", f"{OBJECT_COLUMN} is set by lakeroute in mode replace; do not "
                         "select it"))
    return problems


def _cast_problems(route: Route, result: pa.Schema, declared: dict[str, str]) -> list[Finding]:
    """Result columns whose type can never be cast to the declared one (tried on no rows)."""
    import pyarrow as pa

    from ..shape.table_schema import declared_schema

    target = declared_schema(declared).as_arrow()
    problems: list[Finding] = []
    for f in result:
        i = target.get_field_index(f.name)
        if i < 0:
            continue
        try:
            cast_column(pa.array([], type=f.type), target.field(i).type, route.name, f.name)
        except ObjectError as e:
            problems.append(("sql", _bare(route, e) + f" (declared {declared[f.name]})"))
        except Exception:  # noqa: S112 - a type the check cannot build: ingest will tell
            continue
    return problems


def name_findings(route: Route, result: pa.Schema | None) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) about names and types readers downstream struggle with: names that
    differ only in case (an error: Glue and Athena fold case), names that are not lower-case
    identifiers, and time columns (Spark and Athena cannot read Iceberg time)."""
    import pyarrow.types as pt

    errors: list[Finding] = []
    warnings: list[Finding] = []
    declared = route.target.columns or {}
    first: dict[str, str] = {}
    for name in declared:
        other = first.setdefault(name.lower(), name)
        if other != name:
            errors.append(("target.columns", f"{other!r} and {name!r} differ only in case; Glue and "
                           "Athena fold names to lower case, so they would be one column: rename one"))
    for name, typ in declared.items():
        if typ == "time":
            warnings.append((f"target.columns.{name}", f"type time: {_TIME_READERS}; declare it as "
                             "string (or a timestamp) and cast it in the SQL"))
    names = [("target.columns", n) for n in declared]
    if result is not None:
        names += [("sql", f.name) for f in result if f.name not in declared]
        if route.target.columns is None:
            warnings += [("sql", f"result column {f.name} is a TIME, so the table column will be "
                          f"Iceberg time: {_TIME_READERS}; cast it in the SQL (e.g. to VARCHAR)")
                         for f in result if pt.is_time(f.type)]
    for where, name in dict.fromkeys(names):
        if not LOWER_IDENT.match(name):
            warnings.append((where, f"column name {name!r} is not a lower-case identifier "
                             f"({LOWER_IDENT.pattern}): Glue and Athena fold case and need quotes "
                             f"for other characters; prefer {_suggest(name)!r}"))
    return errors, warnings


def _suggest(name: str) -> str:
    clean = re.sub(r"[^a-z0-9_]+", "_", name.lower()) or "_"
    return clean if LOWER_IDENT.match(clean) else "_" + clean
