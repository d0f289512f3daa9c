"""`validate`, `ingest` and `watch`: route files checked, files landed."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import ConfigError
from .app import Ctx, app, fail, get_ctx, print_outcomes

if TYPE_CHECKING:
    from ..core.pipeline import IngestReport, ObjectRef, Pipeline


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check every route file: schema, SQL binding, ambiguity, shared table settings.

    The SQL is bound (no data read) against source.columns when declared, else against a
    sample file under the landing folder. Exit 2 on any error, one line per problem.

    Example: lakeroute validate
    """
    from ..local.validate import validate_routes

    c = get_ctx(ctx)
    try:
        problems, notes, count = validate_routes(c.routes, c.landing)
    except ConfigError as e:
        raise fail(str(e)) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if problems:
        raise fail("\n".join(problems))
    typer.echo(f"ok: {count} route(s) valid in {c.routes}")


# ---------------------------------------------------------------- ingest


def _collect(paths: list[Path], landing: Path, bucket: str | None, key: str | None
             ) -> tuple[list[ObjectRef], dict[tuple[str, str], Path]]:
    from ..core.pipeline import ObjectRef
    from ..local.objects import LocalObjectSource

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
    from ..local import local_pipeline
    from ..local.objects import LocalObjectSource

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
    c = get_ctx(ctx)
    try:
        refs, overrides = _collect(paths, c.landing, bucket, key)
        pipe = _pipeline(c, overrides)
        report = _run(pipe, refs)
    except ConfigError as e:
        raise fail(str(e)) from None
    print_outcomes(report)
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
    c = get_ctx(ctx)
    from ..core.pipeline import ObjectRef
    from ..local.objects import LocalObjectSource

    try:
        pipe = _pipeline(c)
    except ConfigError as e:
        raise fail(str(e)) from None
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
                print_outcomes(report)
                for f in ready:
                    done[f] = now[f]
            last = now
            time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
