"""`demo`, `sync` and `schema`: sample data end to end; routes pushed and declared tables created;
the route files' JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import ConfigError, LakerouteError
from .app import app, fail, get_ctx


@app.command()
def demo(ctx: typer.Context) -> None:
    """Sample routes and data, ingested end to end on the embedded default, results shown.

    Writes the sample routes into --routes (when it has none; and the JSON Schema they
    name, ../schemas/route.schema.json from there, when it is missing), sample files into
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


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write it to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of route files, generated from the route model.

    Editors with the YAML language server complete and check route fields when a route file
    starts with "# yaml-language-server: $schema=../schemas/route.schema.json" (the sample
    routes do). It checks the file's shape; lakeroute validate checks the rest (SQL, types,
    ambiguity). make docs refreshes the committed schemas/route.schema.json.

    Example: lakeroute schema --output schemas/route.schema.json
    """
    from ..core.routes.schema import render_route_schema

    text = render_route_schema()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise fail(f"{output}: cannot write: {e.strerror}") from None
    typer.echo(f"wrote {output}", err=True)
