"""`demo` and `sync`: sample data end to end; routes pushed and declared tables created."""

from __future__ import annotations

from typing import Annotated

import typer

from ..core.errors import ConfigError, LakerouteError
from .app import app, fail, get_ctx


@app.command()
def demo(ctx: typer.Context) -> None:
    """Sample routes and data, ingested end to end on the embedded default, results shown.

    Writes the sample routes into --routes (when it has none), sample files into
    --landing, validates, ingests, then prints the tables and a query.

    Example: lakeroute --home /tmp/lr demo
    """
    from ..demo import run_demo

    c = get_ctx(ctx)
    try:
        code = run_demo(c.routes, c.home, c.landing, echo=typer.echo)
    except ConfigError as e:
        raise fail(str(e)) from None
    raise typer.Exit(code)


@app.command()
def sync(
    ctx: typer.Context,
    routes_table: Annotated[str | None, typer.Option(envvar="LAKEROUTE_ROUTES_TABLE",
                                                     help="DynamoDB routing table.")] = None,
    warehouse: Annotated[str | None, typer.Option(envvar="LAKEROUTE_WAREHOUSE",
                                                  help="s3://bucket/prefix of the warehouse.")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Only show what would change (local catalog).")] = False,
) -> None:
    """Push route files to the routing table and create/evolve declared tables.

    Without --routes-table it creates the declared tables in the local catalog. Safe
    changes (new column, int->long, float->double, decimal precision up, required->optional)
    are applied; unsafe ones (another type, a dropped column, new partitioning) are errors
    naming the route, the column, both types and the fix, and nothing of that table changes.
    --plan lists both and changes nothing.

    Example: lakeroute sync --routes-table lakeroute-routes --warehouse s3://wh/warehouse
    """
    from ..core.routes import load_routes
    from ..sync import sync_aws, sync_local

    c = get_ctx(ctx)
    try:
        routes = load_routes(c.routes)
        if routes_table:
            if not warehouse:
                raise ConfigError("sync: --warehouse (or LAKEROUTE_WAREHOUSE) is required with "
                                  "--routes-table")
            lines = sync_aws(routes, routes_table, warehouse)
        else:
            lines = sync_local(routes, c.home, plan=plan, catalog=c.catalog)
    except LakerouteError as e:
        raise fail(str(e)) from None
    for line in lines:
        typer.echo(line)
