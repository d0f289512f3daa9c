"""What a route's SQL and its result must be before a row is read: exactly one SELECT, distinct
column names in any case, no DuckDB type whose Arrow form loses values."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from ..errors import ObjectError
from ..routes import Route
from .messages import duckdb_text

if TYPE_CHECKING:
    import duckdb


def check_result_names(route: Route, columns: list[str]) -> None:
    """Two result columns with one name (in any case) cannot both be table columns."""
    seen: dict[str, str] = {}
    for name in columns:
        other = seen.get(name.lower())
        seen.setdefault(name.lower(), name)
        if other is not None:
            same = "twice" if other == name else f"as {other!r} and {name!r}"
            raise ObjectError("sql", f"route {route.name}: the result has column {name!r} {same}; "
                              "alias one of them in the SQL (Iceberg, Glue and Athena need "
                              "distinct names)", route.name)


_LOSSY_DUCK_TYPES = {"TIME WITH TIME ZONE": "its offset would be dropped (Iceberg has no time with zone)",
                     "BIT": "DuckDB would hand over its internal encoding"}


def check_result_types(route: Route, columns: list[str], types: list[str]) -> None:
    """DuckDB types whose Arrow form silently loses or changes values (TIMETZ, BIT)."""
    for name, text in zip(columns, types, strict=True):
        lossy = _lossy(text)
        if lossy is not None:
            duck, why = lossy
            raise ObjectError("schema", f"route {route.name}: column {name}: {duck}: {why}; cast it in the "
                              "SQL (e.g. to VARCHAR, or TIMETZ to TIME after AT TIME ZONE)", route.name)


@functools.lru_cache(maxsize=1024)
def _lossy(text: str) -> tuple[str, str] | None:
    """The lossy DuckDB type inside a type's text, with why (cached: the columns of a batch's
    objects repeat)."""
    for duck, why in _LOSSY_DUCK_TYPES.items():
        if re.search(rf"(?<![A-Z_]){re.escape(duck)}(?![A-Z_])", text.upper()):
            return duck, why
    return None


def check_single_select(con: duckdb.DuckDBPyConnection, route: Route) -> None:
    import duckdb

    try:
        statements = con.extract_statements(route.sql)
    except duckdb.Error as e:
        raise ObjectError("sql", f"route {route.name}: {duckdb_text(e)}", route.name) from e
    select = duckdb.StatementType.SELECT  # type: ignore[attr-defined]
    if len(statements) != 1 or statements[0].type != select:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise ObjectError(
            "sql",
            f"route {route.name}: sql must be exactly one SELECT over `source` (found {kinds})",
            route.name,
        )
