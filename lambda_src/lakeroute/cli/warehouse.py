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
    con = open_warehouse(c.open_catalog())
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
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its Glue catalog.")] = None,
) -> None:
    """List tables: rows, snapshots, last ingest and last maintenance (compaction), routes.

    Example: lakeroute tables
    """
    import json

    from rich.console import Console
    from rich.table import Table as RichTable

    from ..core.ledger.history import table_rows
    from . import stage as staged

    if format not in ("table", "json"):
        raise fail(f"--format {format!r}: use table or json")
    st = staged.selected(stage)
    rows = table_rows(staged.stage_catalog(st) if st else get_ctx(ctx).open_catalog())
    if format == "json":
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    out = RichTable("table", "rows", "snapshots", "last ingest (UTC)", "last maintenance (UTC)", "routes")
    for r in rows:
        out.add_row(r["table"], str(r["rows"]), str(r["snapshots"]), r["last_ingest"], r["last_maintenance"],
                    r["routes"])
    Console(width=160).print(out)


COUNT_COLUMNS = ("added", "updated", "deleted", "stale", "rejected", "rescued")


@app.command()
def history(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="namespace.table")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its Glue catalog (TABLE "
                                              "as in route files, or database.table).")] = None,
    since: Annotated[str | None, typer.Option(help="Only attempts since (ISO time).")] = None,
    status: Annotated[str | None, typer.Option(help="Only attempts with this status: committed, skipped, "
                                               "ignored, quarantined, replayed, failed, superseded, "
                                               "dismissed.")] = None,
    commits: Annotated[bool, typer.Option("--commits", help="Per commit (snapshot) instead: its "
                                          "sources and what it did to the table's rows.")] = False,
) -> None:
    """Every attempt per object for a table: status, route, version, rows, time (UTC), reason.

    Per object: rows read, and added, updated, deleted, stale (upsert: older than the row
    there), rejected (on_error: rows) and rescued (schema: rescue) rows, counted as if the
    batch's objects had committed one by one. Repeated skipped or ignored attempts of one
    version are one line with a count. Objects that reached no table (no route, ignored)
    and dismissed entries without a table are listed with every table. With --commits: per
    snapshot, the table's net change (ingest) or the maintenance it was (compaction).

    Example: lakeroute history sales.orders --status quarantined --since 2026-11-30
    """
    import json

    from ..core.ledger.history import table_history
    from ..core.ledger.journal import collapse_repeats
    from . import stage as staged
    from .recovery import parse_since

    if format not in ("table", "json"):
        raise fail(f"--format {format!r}: use table or json")
    st = staged.selected(stage)
    c = get_ctx(ctx)
    try:
        after = parse_since(since)
        name = st.table(table) if st else table
        catalog = staged.stage_catalog(st) if st else c.open_catalog()
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
    from rich.console import Console
    from rich.table import Table as RichTable

    if not commits and (attempts or since or status):
        lines = collapse_repeats(attempts)
        if format == "json":
            typer.echo(json.dumps(lines, indent=2, ensure_ascii=False))
            return
        grid = RichTable("at (UTC)", "status", "object", "version", "route", "rows", *COUNT_COLUMNS,
                         "stage / reason")
        for a in lines:
            why = " ".join(x for x in (a.get("stage", ""), shortened(a.get("message", ""), 80)) if x)
            said = a.get("status", "") + (f" x{a['count']}" if a["count"] > 1 else "")
            if a["count"] > 1:
                why = f"{why} (last {str(a.get('last_at', ''))[:19]})"
            grid.add_row(str(a.get("at", ""))[:23], said, f"{a.get('bucket')}/{a.get('key')}",
                         str(a.get("version", ""))[:19], a.get("route", ""), str(a.get("rows", 0)),
                         *(str(a.get(k, 0)) for k in COUNT_COLUMNS), why)
        Console(width=220).print(grid)
        typer.echo(f"{len(attempts)} attempt(s) in {len(lines)} line(s)", err=True)
        return
    if format == "json":
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    out = RichTable("committed (UTC)", "snapshot", "kind", "rows", *COUNT_COLUMNS, "files", "routes", "sources")
    for entry in entries:
        srcs = entry["sources"]
        shown = "\n".join(s.split("@")[0] for s in srcs[:5]) + (
            f"\n… {len(srcs) - 5} more" if len(srcs) > 5 else "")
        files = f"+{entry['data_files']} -{entry['removed_data_files']}"
        out.add_row(entry["committed_at"], str(entry["snapshot_id"]), entry["kind"], str(entry["rows"]),
                    *(str(entry[k]) for k in COUNT_COLUMNS), files, entry["routes"], shown)
    Console(width=200).print(out)
