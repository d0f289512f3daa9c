"""The local warehouse as DuckDB views (`lakeroute query`), and rendering result tables."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.ledger.history import all_tables
from ..core.sql_text import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def open_warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view `namespace.table` over every Iceberg table."""
    import duckdb
    import duckdb_ext

    from .runtime import local_catalog

    catalog = local_catalog(home)
    con = duckdb.connect()
    duckdb_ext.init(con)
    con.execute("LOAD iceberg")
    for i, name in enumerate(all_tables(catalog)):
        table = catalog.load_table(name)
        ns, tbl = name.split(".", 1)
        view = f"{quote_ident(ns)}.{quote_ident(tbl)}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ns)}")
        if table.metadata.current_snapshot_id is None:
            cols = ", ".join(f"NULL AS {quote_ident(f.name)}" for f in table.schema().fields)
            con.execute(f"CREATE VIEW {view} AS SELECT {cols} WHERE false")
            continue
        var = f"lakeroute_meta_{i}"
        con.execute(f"SET VARIABLE {var} = ?", [table.metadata_location.removeprefix("file://")])
        # Names are quoted identifiers; the metadata path enters only as a variable.
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM iceberg_scan(getvariable('{var}'))")  # noqa: S608
    return con


def render(tbl: pa.Table, fmt: str) -> None:
    import sys

    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(tbl, sys.stdout.buffer)
        return
    rows = tbl.to_pylist()
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(*tbl.schema.names)
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row.values()])
    Console(width=200).print(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        # A number when it converts exactly (HUGEINT sums, most money values), else text.
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    return str(value)
