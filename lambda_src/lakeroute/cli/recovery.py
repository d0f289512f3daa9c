"""Fixing mistakes: `reset`, `replay`, `preview` and the `quarantine` commands (local catalog)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import ConfigError, LakerouteError, shortened
from .app import Ctx, app, fail, get_ctx, print_outcomes

if TYPE_CHECKING:
    from ..local.objects import LocalQuarantine

quarantine_app = typer.Typer(help="List, show and clean up quarantined objects.\n\n"
                             "Example: lakeroute quarantine ls", no_args_is_help=True,
                             rich_markup_mode=None)
app.add_typer(quarantine_app, name="quarantine")


def _quarantine(c: Ctx) -> LocalQuarantine:
    from ..local.objects import LocalQuarantine

    return LocalQuarantine(c.paths().quarantine)


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


# ---------------------------------------------------------------- quarantine ls / show / purge


@quarantine_app.command("ls")
def quarantine_ls(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    all_entries: Annotated[bool, typer.Option("--all", help="Also entries already resolved.")] = False,
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name "
                                              "the resources).")] = None,
) -> None:
    """List quarantined object versions: key, route, stage, attempts, reason.

    With --stage, the stage's S3 quarantine (QuarantineUri of its stack).

    Example: lakeroute quarantine ls --format json
    """
    from . import stage as staged

    st = staged.selected(stage)
    entries = staged.quarantine_entries(st) if st else _quarantine(get_ctx(ctx)).entries()
    rows = [r for _, r in entries if all_entries or not r.get("resolved_at")]
    if format == "json":
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if format != "table":
        raise fail(f"--format {format!r}: use table or json")
    from rich.console import Console
    from rich.table import Table as RichTable

    out = RichTable("quarantined (UTC)", "object", "route", "stage", "attempts", "reason")
    for r in rows:
        out.add_row(str(r.get("quarantined_at", ""))[:19], f"{r['bucket']}/{r['key']}", str(r.get("route")),
                    str(r.get("stage")), str(r.get("attempts")), shortened(str(r.get("message", "")), 90))
    Console(width=200).print(out)
    typer.echo(f"{len(rows)} quarantined object version(s)", err=True)


@quarantine_app.command("show")
def quarantine_show(
    ctx: typer.Context,
    object_: Annotated[str, typer.Argument(metavar="BUCKET/KEY", help="The object, bucket/key.")],
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name "
                                              "the resources).")] = None,
) -> None:
    """Show the records of one object's quarantined versions (reason, route, stage, attempts).

    With --stage, BUCKET is the physical or the logical landing bucket.

    Example: lakeroute quarantine show acme-sales-landing/orders/broken.parquet
    """
    from . import stage as staged

    st = staged.selected(stage)
    entries: Iterable[tuple[Any, dict[str, Any]]]
    if st:
        bucket, _, key = object_.partition("/")
        try:
            object_ = f"{st.bucket(bucket)}/{key}"
        except LakerouteError as e:
            raise fail(str(e)) from None
        entries = staged.quarantine_entries(st)
    else:
        entries = _quarantine(get_ctx(ctx)).entries()
    found = [(e, r) for e, r in entries if f"{r['bucket']}/{r['key']}" == object_]
    if not found:
        raise fail(f"{object_}: not in the quarantine; `lakeroute quarantine ls` lists what is", 1)
    for entry, record in found:
        typer.echo(json.dumps({**record, "entry": str(entry)}, indent=2, ensure_ascii=False))


@quarantine_app.command("purge")
def quarantine_purge(
    ctx: typer.Context,
    resolved: Annotated[bool, typer.Option("--resolved", help="Remove the entries already resolved.")] = False,
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its S3 quarantine.")] = None,
) -> None:
    """Remove resolved entries (objects that were replayed and landed).

    Example: lakeroute quarantine purge --resolved
    """
    if not resolved:
        raise fail("quarantine purge: only --resolved entries are removed; say --resolved")
    from . import stage as staged

    st = staged.selected(stage)
    gone = 0
    if st:
        from ..aws.clients import aws_client
        from ..aws.config import split_s3_uri

        s3 = aws_client("s3")
        for uri, record in staged.quarantine_entries(st, s3):
            if record.get("resolved_at"):
                bucket, prefix = split_s3_uri(uri)
                listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
                for item in listed:
                    s3.delete_object(Bucket=bucket, Key=item["Key"])
                gone += 1
    else:
        for entry, record in _quarantine(get_ctx(ctx)).entries():
            if record.get("resolved_at"):
                shutil.rmtree(entry, ignore_errors=True)
                gone += 1
    typer.echo(f"removed {gone} resolved entr{'y' if gone == 1 else 'ies'}")


# ---------------------------------------------------------------- replay


@app.command()
def replay(
    ctx: typer.Context,
    route: Annotated[str | None, typer.Option(help="Only objects quarantined by this route.")] = None,
    table: Annotated[str | None, typer.Option(help="Only objects for this table.")] = None,
    since: Annotated[str | None, typer.Option(help="Only objects quarantined since (ISO time).")] = None,
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name "
                                              "the resources).")] = None,
) -> None:
    """Re-ingest quarantined objects after a fix (from their quarantined copies).

    An object that now lands, or that the table already holds, leaves the quarantine: its
    record is kept, marked resolved (`quarantine ls --all`). One that fails again stays,
    with one more attempt counted. Exit 1 when some object still fails.

    With --stage, each original object version is sent to the stage's ingest queue (as its
    S3 notification) and its record marked replayed; the handler ingests it.

    Example: lakeroute replay --route sales-orders
    """
    from ..core.pipeline import ObjectRef
    from ..local import local_pipeline
    from . import stage as staged

    st = staged.selected(stage)
    if st:
        try:
            after = parse_since(since)
        except LakerouteError as e:
            raise fail(str(e)) from None
        tables = {table, st.table(table)} if table else set()
        staged.replay(st, [(e, r) for e, r in staged.quarantine_entries(st)
                           if not r.get("resolved_at") and (route is None or r.get("route") == route)
                           and (not tables or r.get("table") in tables)
                           and (after is None or _when(r) >= after)])
        return
    c = get_ctx(ctx)
    try:
        after = parse_since(since)
        quarantine = _quarantine(c)
        chosen = [(e, r) for e, r in quarantine.entries()
                  if not r.get("resolved_at") and (route is None or r.get("route") == route)
                  and (table is None or r.get("table") == table) and (after is None or _when(r) >= after)]
        pipe = local_pipeline(c.paths())
        pipe.how = "replay"  # the journal says "replayed"
    except LakerouteError as e:
        raise fail(str(e)) from None
    refs = []
    entries: dict[tuple[str, str], Path] = {}
    for entry, record in chosen:
        copy = next((p for p in entry.iterdir() if p.name.startswith("object")), None)
        landing = c.landing / record["bucket"] / record["key"]
        source = copy if copy is not None else landing
        if not source.is_file():
            typer.echo(f"cannot replay {record['bucket']}/{record['key']}: neither a quarantined copy "
                       f"nor {landing} exists", err=True)
            continue
        ref = (record["bucket"], record["key"])
        pipe.source.overrides[ref] = source  # type: ignore[attr-defined]  # LocalObjectSource
        entries[ref] = entry
        refs.append(ObjectRef(*ref))
    if not refs:
        typer.echo("nothing to replay")
        return
    report = pipe.ingest(refs)
    print_outcomes(report)
    resolved = 0
    for o in report.outcomes:
        if o.status in ("committed", "skipped", "ignored"):
            quarantine.resolve_entry(entries[(o.ref.bucket, o.ref.key)], f"replayed: {o.status}")
            resolved += 1
    typer.echo(f"replayed {len(refs)}: {resolved} resolved, {len(report.failed)} still failing")
    if report.failed:
        raise typer.Exit(1)


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
    from ..local import local_catalog

    c = get_ctx(ctx)
    try:
        routes = [leg for r in load_routes(c.routes) for leg in r.legs() if leg.target.table == table]
        catalog = local_catalog(c.home)
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

    Shows the first rows, the row count and what a commit would do (new table, new
    columns). Writes nothing to the warehouse, the ledger or the quarantine.

    Example: lakeroute preview sales-orders landing/acme-sales-landing/orders/part-1.parquet
    """
    from ..core.pipeline.preview import preview_route
    from ..local import local_catalog
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
        try:  # a fan-out route: each target in turn
            results = [preview_route(leg, obj, local_catalog(c.home), rows) for leg in found[0].legs()]
        finally:
            source.release(obj)
    except LakerouteError as e:
        raise fail(str(e), 1 if not isinstance(e, ConfigError) else 2) from None
    for result in results:
        render(result.sample, "table")
        typer.echo(f"{result.rows} row(s); {result.plan}")
