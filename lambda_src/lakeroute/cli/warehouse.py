"""`query`, `tables`, `history`: reading the warehouse back."""

from __future__ import annotations

from typing import Annotated

import typer

from ..core.errors import ConfigError
from .app import app, fail, get_ctx


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="DuckDB SQL; tables as namespace.table.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Run DuckDB SQL over the warehouse; every table is namespace.table.

    Example: lakeroute query "SELECT count(*) FROM sales.orders" --format json
    """
    from ..local.warehouse import open_warehouse, render

    if format not in ("table", "csv", "json"):
        raise fail(f"--format {format!r}: use table, csv or json")
    c = get_ctx(ctx)
    con = open_warehouse(c.home)
    import duckdb

    try:
        result = con.sql(sql)
        if result is None:
            raise fail("query: give a SELECT (or other statement that returns rows)")
        tbl = result.fetch_arrow_table()
    except duckdb.Error as e:
        raise fail(f"query: {' '.join(str(e).split())}") from None
    render(tbl, format)


@app.command()
def tables(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its Glue catalog.")] = None,
) -> None:
    """List tables with row counts, snapshots and last load.

    Example: lakeroute tables
    """
    from rich.console import Console
    from rich.table import Table as RichTable

    from ..core.history import table_rows
    from ..local import local_catalog
    from . import stage as staged

    st = staged.selected(stage)
    rows = table_rows(staged.stage_catalog(st) if st else local_catalog(get_ctx(ctx).home))
    out = RichTable("table", "rows", "snapshots", "last load (UTC)", "routes")
    for r in rows:
        out.add_row(r["table"], str(r["rows"]), str(r["snapshots"]), r["last_load"], r["routes"])
    Console(width=160).print(out)


@app.command()
def history(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="namespace.table")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its Glue catalog (TABLE "
                                              "as in route files, or database.table).")] = None,
) -> None:
    """Load history of a table: per commit, its source objects, rows and time.

    Example: lakeroute history sales.orders
    """
    import json

    from ..core.history import table_history
    from ..local import local_catalog
    from . import stage as staged

    st = staged.selected(stage)
    try:
        if st:
            entries = table_history(staged.stage_catalog(st), st.table(table))
        else:
            entries = table_history(local_catalog(get_ctx(ctx).home), table)
    except ConfigError as e:
        raise fail(str(e)) from None
    if format == "json":
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    out = RichTable("committed (UTC)", "snapshot", "rows", "files", "routes", "sources")
    for entry in entries:
        srcs = entry["sources"]
        shown = "\n".join(s.split("@")[0] for s in srcs[:5]) + (
            f"\n… {len(srcs) - 5} more" if len(srcs) > 5 else "")
        out.add_row(entry["committed_at"], str(entry["snapshot_id"]), str(entry["rows"]),
                    str(entry["data_files"]), entry["routes"], shown)
    Console(width=160).print(out)
