"""The `lakeroute` command: a thin shell over the pipeline (contract: shared/DESIGN.md §4).

Exit codes: 0 all done; 1 some object not ingested (each named with its reason); 2 usage
or configuration error.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .errors import ConfigError, LakerouteError

if TYPE_CHECKING:
    from .pipeline import IngestReport, ObjectRef, Pipeline

app = typer.Typer(
    name="lakeroute",
    help="Land files into Apache Iceberg tables, driven by declarative routes.\n\n"
         "Example: lakeroute validate && lakeroute ingest landing/",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class Ctx:
    routes: Path
    home: Path
    landing: Path

    def paths(self):  # type: ignore[no-untyped-def]
        from .local import LocalPaths

        return LocalPaths(self.routes, self.home, self.landing)


def _ctx(ctx: typer.Context) -> Ctx:
    obj = ctx.obj
    assert isinstance(obj, Ctx)
    return obj


def _fail(message: str, code: int = 2) -> typer.Exit:
    for line in message.splitlines():
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def _print_outcomes(report: IngestReport, quiet_ok: bool = False) -> None:
    for o in report.outcomes:
        name = f"{o.ref.bucket}/{o.ref.key}"
        if o.status == "committed":
            if not quiet_ok:
                typer.echo(f"ingested {name} -> {o.table} ({o.rows} rows, route {o.route})")
        elif o.status == "skipped":
            typer.echo(f"skipped {o.message}")
        elif o.status == "quarantined":
            typer.echo(f"quarantined {name}: {o.message} [stage {_stage(o)}] -> {o.quarantined_to}",
                       err=True)
        else:
            typer.echo(f"failed {name}: {o.message} (not quarantined: retry later)", err=True)
    typer.echo(
        f"{report.count('committed')} ingested ({report.rows} rows), {report.count('skipped')} "
        f"skipped, {len(report.failed)} failed in {report.seconds:.2f}s; "
        f"{len(report.commits)} commit(s)", err=quiet_ok)


def _stage(o: object) -> str:
    import json

    path = getattr(o, "quarantined_to", None)
    if not path:
        return "?"
    try:
        return str(json.loads(Path(path + ".error.json").read_text())["stage"])
    except (OSError, ValueError, KeyError):
        return "?"


@app.callback()
def main_options(
    ctx: typer.Context,
    routes: Annotated[Path, typer.Option(envvar="LAKEROUTE_ROUTES", help="Route files folder.")]
    = Path("routes"),
    home: Annotated[Path, typer.Option(envvar="LAKEROUTE_HOME",
                                       help="Catalog, warehouse, quarantine.")] = Path(".lakeroute"),
    landing: Annotated[Path, typer.Option(envvar="LAKEROUTE_LANDING",
                                          help="Landing folder: landing/<bucket>/<key>.")]
    = Path("landing"),
) -> None:
    """Land files into Apache Iceberg tables, driven by declarative routes.

    Example: lakeroute --routes routes --home .lakeroute validate
    """
    ctx.obj = Ctx(routes, home, landing)


# ---------------------------------------------------------------- validate


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check every route file: schema, SQL binding, ambiguity, shared table settings.

    The SQL is bound (no data read) against source.columns when declared, else against a
    sample file under the landing folder. Exit 2 on any error, one line per problem.

    Example: lakeroute validate
    """
    from .validate import validate_routes

    c = _ctx(ctx)
    try:
        problems, notes, count = validate_routes(c.routes, c.landing)
    except ConfigError as e:
        raise _fail(str(e)) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if problems:
        raise _fail("\n".join(problems))
    typer.echo(f"ok: {count} route(s) valid in {c.routes}")


# ---------------------------------------------------------------- ingest


def _collect(paths: list[Path], landing: Path, bucket: str | None, key: str | None
             ) -> tuple[list[ObjectRef], dict[tuple[str, str], Path]]:
    from .objects import LocalObjectSource
    from .pipeline import ObjectRef

    src = LocalObjectSource(landing)
    refs: list[ObjectRef] = []
    overrides: dict[tuple[str, str], Path] = {}
    if bucket is not None:
        if len(paths) != 1 or not paths[0].is_file():
            raise ConfigError("--bucket takes exactly one file: lakeroute ingest FILE --bucket B [--key K]")
        k = key or paths[0].name
        overrides[(bucket, k)] = paths[0]
        return [ObjectRef(bucket, k)], overrides
    if key is not None:
        raise ConfigError("--key needs --bucket")
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or folder")
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if _is_data_file(f))
        for f in files:
            ref = src.ref_of(f)
            if ref is None:
                raise ConfigError(f"{f}: not under the landing folder {landing}/<bucket>/; "
                                  "move it there or pass --bucket B [--key K]")
            refs.append(ObjectRef(*ref))
    return refs, overrides


def _is_data_file(f: Path) -> bool:
    return f.is_file() and not f.name.startswith(".") and not f.name.endswith(".partial")


def _pipeline(c: Ctx, overrides: dict[tuple[str, str], Path] | None = None) -> Pipeline:
    from .local import local_pipeline
    from .objects import LocalObjectSource

    pipe = local_pipeline(c.paths())
    if overrides:
        assert isinstance(pipe.source, LocalObjectSource)
        pipe.source.overrides.update(overrides)
    return pipe


def _run(pipe: Pipeline, refs: list[ObjectRef]) -> IngestReport:
    """Ingest with a progress bar on a terminal; quiet when piped."""
    if len(refs) > 1 and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("ingesting", total=len(refs))
            return pipe.ingest(refs, progress=lambda _: bar.advance(task))
    return pipe.ingest(refs)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders under the landing folder.")],
    bucket: Annotated[str | None, typer.Option(help="Bucket for one file outside landing.")] = None,
    key: Annotated[str | None, typer.Option(help="Key for that file (default: its name).")] = None,
) -> None:
    """Ingest files: landing/<bucket>/<key> gives bucket and key.

    Files of one call that target the same table commit together. Exit 1 when some file
    was not ingested (quarantined under <home>/quarantine/ with an .error.json).

    Example: lakeroute ingest landing/acme-sales-landing/orders/
    """
    c = _ctx(ctx)
    try:
        refs, overrides = _collect(paths, c.landing, bucket, key)
        pipe = _pipeline(c, overrides)
        report = _run(pipe, refs)
    except ConfigError as e:
        raise _fail(str(e)) from None
    _print_outcomes(report)
    if report.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- watch


@app.command()
def watch(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="Seconds between scans.")] = 1.0,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Ingest files as they appear under the landing folder (Ctrl-C stops).

    A file is picked up once its size and modification time are unchanged over one scan,
    so half-written files are not read. Files already ingested are skipped by version.

    Example: lakeroute watch --interval 2
    """
    c = _ctx(ctx)
    from .objects import LocalObjectSource
    from .pipeline import ObjectRef

    try:
        pipe = _pipeline(c)
    except ConfigError as e:
        raise _fail(str(e)) from None
    c.landing.mkdir(parents=True, exist_ok=True)
    src = LocalObjectSource(c.landing)
    last: dict[Path, tuple[int, int]] = {}
    done: dict[Path, tuple[int, int]] = {}
    stop = None if timeout is None else time.monotonic() + timeout
    typer.echo(f"watching {c.landing} (Ctrl-C to stop)", err=True)
    try:
        while stop is None or time.monotonic() < stop:
            now: dict[Path, tuple[int, int]] = {}
            for f in c.landing.rglob("*"):
                if _is_data_file(f):
                    st = f.stat()
                    now[f] = (st.st_size, st.st_mtime_ns)
            ready = sorted(f for f, sig in now.items() if last.get(f) == sig and done.get(f) != sig)
            refs = [ObjectRef(*r) for f in ready if (r := src.ref_of(f)) is not None]
            if refs:
                report = pipe.ingest(refs)
                _print_outcomes(report)
                for f in ready:
                    done[f] = now[f]
            last = now
            time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


# ---------------------------------------------------------------- query / tables / history


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="DuckDB SQL; tables as namespace.table.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Run DuckDB SQL over the warehouse; every table is namespace.table.

    Example: lakeroute query "SELECT count(*) FROM sales.orders" --format json
    """
    from .warehouse import open_warehouse, render

    if format not in ("table", "csv", "json"):
        raise _fail(f"--format {format!r}: use table, csv or json")
    c = _ctx(ctx)
    con = open_warehouse(c.home)
    import duckdb

    try:
        result = con.sql(sql)
        if result is None:
            raise _fail("query: give a SELECT (or other statement that returns rows)")
        tbl = result.fetch_arrow_table()
    except duckdb.Error as e:
        raise _fail(f"query: {' '.join(str(e).split())}") from None
    render(tbl, format)


@app.command()
def tables(ctx: typer.Context) -> None:
    """List tables with row counts, snapshots and last load.

    Example: lakeroute tables
    """
    from rich.console import Console
    from rich.table import Table as RichTable

    from .local import local_catalog
    from .warehouse import table_rows

    c = _ctx(ctx)
    rows = table_rows(local_catalog(c.home))
    out = RichTable("table", "rows", "snapshots", "last load (UTC)", "routes")
    for r in rows:
        out.add_row(r["table"], str(r["rows"]), str(r["snapshots"]), r["last_load"], r["routes"])
    Console(width=160).print(out)


@app.command()
def history(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="namespace.table")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
) -> None:
    """Load history of a table: per commit, its source objects, rows and time.

    Example: lakeroute history sales.orders
    """
    import json

    from .local import local_catalog
    from .warehouse import table_history

    c = _ctx(ctx)
    try:
        entries = table_history(local_catalog(c.home), table)
    except ConfigError as e:
        raise _fail(str(e)) from None
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


# ---------------------------------------------------------------- demo / sync


@app.command()
def demo(ctx: typer.Context) -> None:
    """Sample routes and data, ingested end to end on the embedded default, results shown.

    Writes the sample routes into --routes (when it has none), sample files into
    --landing, validates, ingests, then prints the tables and a query.

    Example: lakeroute --home /tmp/lr demo
    """
    from .demo import run_demo

    c = _ctx(ctx)
    try:
        code = run_demo(c.routes, c.home, c.landing, echo=typer.echo)
    except ConfigError as e:
        raise _fail(str(e)) from None
    raise typer.Exit(code)


@app.command()
def sync(
    ctx: typer.Context,
    routes_table: Annotated[str | None, typer.Option(envvar="LAKEROUTE_ROUTES_TABLE",
                                                     help="DynamoDB routing table.")] = None,
    warehouse: Annotated[str | None, typer.Option(envvar="LAKEROUTE_WAREHOUSE",
                                                  help="s3://bucket/prefix of the warehouse.")] = None,
) -> None:
    """Push route files to the routing table and create/evolve declared tables.

    Without --routes-table it creates the declared tables in the local catalog.

    Example: lakeroute sync --routes-table lakeroute-routes --warehouse s3://wh/warehouse
    """
    from .routes import load_routes
    from .sync import sync_aws, sync_local

    c = _ctx(ctx)
    try:
        routes = load_routes(c.routes)
        if routes_table:
            if not warehouse:
                raise ConfigError("sync: --warehouse (or LAKEROUTE_WAREHOUSE) is required with "
                                  "--routes-table")
            lines = sync_aws(routes, routes_table, warehouse)
        else:
            lines = sync_local(routes, c.home)
    except LakerouteError as e:
        raise _fail(str(e)) from None
    for line in lines:
        typer.echo(line)


def main() -> None:
    os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
    app()


if __name__ == "__main__":
    main()
