"""Schema hints (``source.columns``) applied at ingest: the reader view that types them.

A hint names a source column and its type (parsed by ``core.routes.column_types``): a
primitive (``long``, ``string``, ``decimal(12,2)``, …) or a nested type, ``struct<a: string,
b: long>``, ``list<long>``, ``map<string, long>``, nested to any depth. Hints are applied to
the reader, not only to ``validate``, so a route can reference an optional field that some
files lack:

- JSON: the reader's own detected columns (DuckDB's rendering of its types, which quotes
  names) plus the hints go to ``read_json(columns := …)``, so hinted fields are parsed with
  their declared type in every line, not only those DuckDB sampled, and a hinted field that
  no line carries reads as a typed NULL;
- CSV: hinted columns present in the header go to ``types := …``; absent ones are typed NULLs;
- Parquet: present hinted columns are cast (structs by field name), absent ones typed NULLs.

Everything that reaches SQL text is either DuckDB's own type rendering, a validated type
from the route file, or a quoted literal; column names are quoted identifiers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ObjectError, shortened
from ..routes.column_types import duck_type
from ..sql_text import quote_ident
from .source_view import reader_sql

if TYPE_CHECKING:
    import duckdb

_PATH_OPTIONS = ("filename", "hive_partitioning", "hive_types", "hive_types_autocast")


def _lookup(names: list[str], hint: str) -> str | None:
    """The source column a hint names: exact, else the one case-insensitive match."""
    if hint in names:
        return hint
    folded = [n for n in names if n.lower() == hint.lower()]
    return folded[0] if len(folded) == 1 else None


def hinted_view(con: duckdb.DuckDBPyConnection, fmt: str, options: dict[str, Any], path: str,
                hints: dict[str, str] | None) -> str:
    """The ``source`` view's query with the hints applied (``reader_sql`` without hints)."""
    plain = reader_sql(fmt, options, path)
    if not hints:
        return plain
    # What the reader finds on its own (binding only: Parquet reads its footer, CSV and JSON
    # sniff a sample).
    rel = con.sql(plain)
    names = list(rel.columns)
    present = {h: _lookup(names, h) for h in hints}
    missing = [h for h, n in present.items() if n is None]
    if fmt == "json" and "columns" not in options:
        # The file's own columns only: those path options add (filename, hive partitions) are
        # added again by the final reader, not looked for in each line.
        own = con.sql(reader_sql(fmt, {k: v for k, v in options.items() if k not in _PATH_OPTIONS}, path))
        cols = dict(zip(own.columns, [str(t) for t in own.types], strict=True))
        for h, n in present.items():
            cols[n or h] = duck_type(hints[h])
        return reader_sql(fmt, {**options, "columns": cols}, path)
    if fmt == "csv" and not any(present.values()):
        # A sniffer that found other columns than any hint names (one column "a;b;c") is far
        # likelier than a file lacking every hinted column: fail instead of reading NULLs.
        shown = shortened(", ".join(names[:5]), 200)
        raise ObjectError("read", f"none of the hinted columns ({', '.join(hints)}) is among the CSV's "
                          f"columns ({shown}); check options (delim, header) or source.columns")
    if fmt == "csv" and "types" not in options and "columns" not in options:
        typed = {n: duck_type(hints[h]) for h, n in present.items() if n is not None}
        base = reader_sql(fmt, {**options, "types": typed}, path) if typed else plain
        casts: dict[str, str] = {}
    else:
        base = plain
        casts = {n: duck_type(hints[h]) for h, n in present.items() if n is not None}
    replace = ", ".join(f"CAST({quote_ident(n)} AS {t}) AS {quote_ident(n)}" for n, t in casts.items())
    nulls = "".join(f", NULL::{duck_type(hints[h])} AS {quote_ident(h)}" for h in missing)
    star = f"* REPLACE ({replace})" if replace else "*"
    if star == "*" and not nulls:
        return base
    return f"SELECT {star}{nulls} FROM ({base})"  # noqa: S608 - names quoted, types validated
