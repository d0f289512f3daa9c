"""Fixing mistakes: `reset`, `replay`, `preview` (the `quarantine` commands: ``cli.quarantine``)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import ConfigError, LakerouteError
from .app import Ctx, app, fail, get_ctx, print_outcomes

if TYPE_CHECKING:
    from ..core.pipeline.preview_columns import ColumnView


def parse_since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r}: use an ISO date or time, e.g. 2026-11-30 or "
                          "2026-11-30T08:00:00+00:00") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _when(record: dict[str, Any]) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(record.get("quarantined_at")))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------- replay


def newest_per_key(chosen: list[tuple[Any, dict[str, Any]]]) -> tuple[list[tuple[Any, dict[str, Any]]], int]:
    """(the newest open entry of each key, how many older open versions wait behind them):
    replaying an older version after a newer one could only regress the table; the older
    ones are superseded once the newer lands."""
    newest: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
    for entry, record in sorted(chosen, key=lambda e: str(e[1].get("first_quarantined_at")
                                                        or e[1].get("quarantined_at") or "")):
        newest[(record["bucket"], record["key"])] = (entry, record)
    return list(newest.values()), len(chosen) - len(newest)


def replay_selection(entries: Iterable[tuple[Any, dict[str, Any]]], route: str | None, tables: set[str],
                     after: dt.datetime | None) -> tuple[list[tuple[Any, dict[str, Any]]], int, int]:
    """(entries to replay, older versions left, closed entries skipped) among the filtered ones."""
    from ..core.ledger.quarantine import OPEN, entry_state

    matching = [(e, r) for e, r in entries if (route is None or r.get("route") == route)
                and (not tables or r.get("table") in tables) and (after is None or _when(r) >= after)]
    opened = [(e, r) for e, r in matching if entry_state(r) == OPEN]
    chosen, older = newest_per_key(opened)
    return chosen, older, len(matching) - len(opened)


@app.command()
def replay(
    ctx: typer.Context,
    route: Annotated[str | None, typer.Option(help="Only objects quarantined by this route.")] = None,
    table: Annotated[str | None, typer.Option(help="Only objects for this table.")] = None,
    since: Annotated[str | None, typer.Option(help="Only objects quarantined since (ISO time).")] = None,
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name "
                                              "the resources).")] = None,
) -> None:
    """Re-ingest open quarantine entries after a fix (from their quarantined copies).

    An object that now lands, or that the table already holds, leaves the quarantine: its
    record is kept, marked resolved (`quarantine ls --all`). One that fails again stays,
    with one more attempt counted. Superseded and dismissed entries are skipped; of a key
    with several open versions, the newest is replayed (the older ones are superseded when
    it lands). Exit 1 when some object still fails.

    With --stage, each original object version is sent to the stage's ingest queue (as its
    S3 notification) and its record marked replayed; the handler ingests it.

    Example: lakeroute replay --route sales-orders
    """
    from ..core.pipeline import ObjectRef
    from ..local import local_pipeline
    from . import stage as staged
    from .quarantine import local_quarantine

    st = staged.selected(stage)
    try:
        after = parse_since(since)
    except LakerouteError as e:
        raise fail(str(e)) from None
    if st:
        chosen, older, skipped = replay_selection(staged.quarantine_entries(st), route,
                                                  {table, st.table(table)} if table else set(), after)
        _say_left(older, skipped)
        staged.replay(st, chosen)
        return
    c = get_ctx(ctx)
    try:
        chosen, older, skipped = replay_selection(local_quarantine(c).entries(), route,
                                                  {table} if table else set(), after)
        pipe = local_pipeline(c.paths())
        pipe.how = "replay"  # the journal says "replayed"
    except LakerouteError as e:
        raise fail(str(e)) from None
    _say_left(older, skipped)
    refs = []
    for entry, record in chosen:
        copy = next((p for p in entry.iterdir() if p.name.startswith("object")), None)
        landing = c.landing / record["bucket"] / record["key"]
        source = copy if copy is not None else landing
        if not source.is_file():
            typer.echo(f"cannot replay {record['bucket']}/{record['key']}: neither a quarantined copy "
                       f"nor {landing} exists", err=True)
            continue
        pipe.source.overrides[(record["bucket"], record["key"])] = source  # type: ignore[attr-defined]
        # replay: the pipeline closes the entry when the version lands (core.pipeline.closing)
        refs.append(ObjectRef(record["bucket"], record["key"], record.get("version"), replay=True))
    if not refs:
        typer.echo("nothing to replay")
        return
    report = pipe.ingest(refs)
    print_outcomes(report)
    still = {(o.ref.bucket, o.ref.key) for o in report.failed}
    resolved = len({(r.bucket, r.key) for r in refs} - still)
    typer.echo(f"replayed {len(refs)}: {resolved} resolved, {len(still)} still failing")
    if report.failed:
        raise typer.Exit(1)


def _say_left(older: int, skipped: int) -> None:
    if skipped:
        typer.echo(f"skipped {skipped} closed entr{'y' if skipped == 1 else 'ies'} (resolved, superseded "
                   "or dismissed: `lakeroute quarantine ls --all`)", err=True)
    if older:
        typer.echo(f"left {older} older version(s) of keys replayed here: superseded when the newer one lands",
                   err=True)


# ---------------------------------------------------------------- reset


@app.command()
def reset(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="namespace.table")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Drop a table with its data, recreate it from its routes, forget what it held.

    The next ingest lands every file again (the ledger only counts entries of the table's
    current incarnation). Asks first unless --yes.

    Example: lakeroute reset sales.orders --yes
    """
    from ..core.routes import load_routes
    from ..core.shape.tables import ensure_declared_tables

    c = get_ctx(ctx)
    try:
        routes = [leg for r in load_routes(c.routes) for leg in r.legs() if leg.target.table == table]
        catalog = c.open_catalog()
        if not catalog.table_exists(table):
            raise ConfigError(f"table {table!r} not found; `lakeroute tables` lists them")
        current = catalog.load_table(table)
        snap = current.current_snapshot()
        summary = snap.summary.additional_properties if snap and snap.summary else {}
        rows, files = int(summary.get("total-records", 0)), int(summary.get("total-data-files", 0))
        what = f"{table}: {rows} rows in {files} data files, {len(current.snapshots())} snapshots"
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"reset drops {what}; say --yes to do it without a question")
            typer.confirm(f"Drop {what}?", abort=True)
        catalog.purge_table(table)
        lines = ensure_declared_tables(catalog, routes) if routes else []
    except LakerouteError as e:
        raise fail(str(e)) from None
    forgotten = _forget(c, table)
    again = ("recreated empty from route(s) " + ", ".join(r.name for r in routes)) if any(
        r.target.columns for r in routes) else "it is created again by the next ingest"
    typer.echo(f"reset {what} dropped; {again}; {forgotten} ledger entries forgotten: the next "
               "ingest lands every file again")
    for line in lines:
        typer.echo(line, err=True)


def _forget(c: Ctx, table: str) -> int:
    if not (c.home / "ledger.db").exists():
        return 0
    from ..local.ledger import SqliteLedger

    return SqliteLedger(str(c.home / "ledger.db")).forget(table)


# ---------------------------------------------------------------- preview


@app.command()
def preview(
    ctx: typer.Context,
    route: Annotated[str, typer.Argument(help="The route's name.")],
    file: Annotated[Path, typer.Argument(help="A file to run it on.")],
    rows: Annotated[int, typer.Option(help="How many rows to show.")] = 10,
    key: Annotated[str | None, typer.Option(help="The key it would have (default: its path under "
                                            "the landing bucket, else its name).")] = None,
) -> None:
    """Run a route on a file under the ingest lockdown, cast to the table; commit nothing.

    Shows first the result's columns and their types beside the table's, and what a commit
    would do to each (added, widened, cast, refused, rescued, left null), even when the rows
    then fail; then the first rows, the row count and what a commit would do (new table,
    new columns). Writes nothing to the warehouse, the ledger or the quarantine.

    Example: lakeroute preview sales-orders landing/acme-sales-landing/orders/part-1.parquet
    """
    from ..core.pipeline.preview import preview_route
    from ..local.objects import LocalObjectSource
    from ..local.warehouse import render

    c = get_ctx(ctx)
    try:
        from ..core.routes import load_routes

        found = [r for r in load_routes(c.routes) if r.name == route]
        if not found:
            raise ConfigError(f"route {route!r} not found in {c.routes}")
        if not file.is_file():
            raise ConfigError(f"{file}: no such file")
        source = LocalObjectSource(c.landing, scratch=c.home / "tmp" / "objects")
        ref = source.ref_of(file)
        bucket, k = ref if ref is not None and key is None else (found[0].source.bucket, key or file.name)
        source.overrides[(bucket, k)] = file
        obj = source.resolve(bucket, k)
        try:  # a fan-out route: each target in turn, its columns shown before its rows are read
            for leg in found[0].legs():
                result = preview_route(leg, obj, c.open_catalog(), rows,
                                       on_columns=partial(show_columns, leg.target.table))
                render(result.sample, "table")
                typer.echo(f"{result.rows} row(s); {result.plan}")
        finally:
            source.release(obj)
    except LakerouteError as e:
        raise fail(str(e), 1 if not isinstance(e, ConfigError) else 2) from None


def show_columns(table: str, columns: list[ColumnView]) -> None:
    """The result's columns beside the table's: types and what a commit would change."""
    from rich.console import Console
    from rich.table import Table as RichTable

    out = RichTable("column", "result", f"table {table}", "a commit would", title=f"columns -> {table}")
    for col in columns:
        out.add_row(col.name, col.result or "-", col.table or "-", col.change or "keep")
    Console(width=200).print(out)
