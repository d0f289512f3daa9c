"""`query`, `tables`, `history`: reading the warehouse back."""

from __future__ import annotations

from typing import Annotated

import typer

from ..core.errors import ConfigError, shortened
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

    from ..core.ledger.history import table_rows
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
    since: Annotated[str | None, typer.Option(help="Only attempts since (ISO time).")] = None,
    status: Annotated[str | None, typer.Option(help="Only attempts with this status: committed, skipped, "
                                               "ignored, quarantined, replayed, failed.")] = None,
    commits: Annotated[bool, typer.Option("--commits", help="Per commit (snapshot) instead: its "
                                          "sources, rows and files.")] = False,
) -> None:
    """Every attempt per object for a table: status, route, version, rows, time (UTC), reason.

    Objects that reached no table (no route, ignored) are listed with every table. With
    --commits: per snapshot, its source objects, rows and data files.

    Example: lakeroute history sales.orders --status quarantined --since 2026-11-30
    """
    import json

    from ..core.ledger.history import table_history
    from ..local import local_catalog
    from . import stage as staged
    from .recovery import parse_since

    st = staged.selected(stage)
    c = get_ctx(ctx)
    try:
        after = parse_since(since)
        name = st.table(table) if st else table
        catalog = staged.stage_catalog(st) if st else local_catalog(c.home)
        entries = table_history(catalog, name)
        attempts: list[dict] = []
        if not commits:
            if st:
                from ..aws.journal import DynamoJournal

                attempts = DynamoJournal(st.ledger_table).read(name, after, status)
            elif (c.home / "ledger.db").is_file():
                from ..local.journal import SqliteJournal

                attempts = SqliteJournal(str(c.home / "ledger.db")).read(name, after, status)
    except ConfigError as e:
        raise fail(str(e)) from None
    if not commits and (attempts or since or status):
        if format == "json":
            typer.echo(json.dumps(attempts, indent=2, ensure_ascii=False))
            return
        from rich.console import Console
        from rich.table import Table as RichTable

        grid = RichTable("at (UTC)", "status", "object", "version", "route", "rows", "stage / reason")
        for a in attempts:
            why = " ".join(x for x in (a.get("stage", ""), shortened(a.get("message", ""), 80)) if x)
            grid.add_row(str(a.get("at", ""))[:23], a.get("status", ""), f"{a.get('bucket')}/{a.get('key')}",
                         str(a.get("version", ""))[:19], a.get("route", ""), str(a.get("rows", 0)), why)
        Console(width=200).print(grid)
        typer.echo(f"{len(attempts)} attempt(s)", err=True)
        return
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
