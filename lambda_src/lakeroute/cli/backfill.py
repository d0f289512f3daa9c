"""`backfill`: ingest the objects already in a landing bucket (locally, or a deployed stage)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import ConfigError, LakerouteError
from .app import app, fail, get_ctx, print_outcomes
from .ingest import WORKERS_HELP
from .recovery import parse_since


@app.command()
def backfill(
    ctx: typer.Context,
    where: Annotated[str, typer.Argument(metavar="BUCKET[/PREFIX]", help="What to ingest.")],
    since: Annotated[str | None, typer.Option(help="Only files modified since (ISO time).")] = None,
    until: Annotated[str | None, typer.Option(help="Only files modified before (ISO time).")] = None,
    pattern: Annotated[str | None, typer.Option(help="Only keys (after the prefix) matching this glob.")] = None,
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name "
                                              "the resources).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help=WORKERS_HELP)] = None,
) -> None:
    """Ingest the objects already in a landing bucket (e.g. files that were there before their
    route existed); versions the tables hold are skipped, so it can run any number of times.

    No time window: --since/--until filter by modification time only if you ask.

    With --stage, BUCKET is a landing bucket of the stage (logical, as in route files, or
    physical); the objects listed are sent to its ingest queue and the handler lands them.

    Example: lakeroute backfill acme-sales-landing/orders/ --since 2026-11-01
    """
    import fnmatch

    from ..core.pipeline import ObjectRef
    from . import stage as staged
    from .ingest import ingest_refs, walk_landing, warn_skipped

    st = staged.selected(stage)
    if st:
        try:
            window = parse_since(since), parse_since(until)
        except LakerouteError as e:
            raise fail(str(e)) from None
        staged.backfill(st, where, *window, pattern)
        return
    c = get_ctx(ctx)
    bucket, _, prefix = where.partition("/")
    try:
        after, before = parse_since(since), parse_since(until)
        root = c.landing / bucket
        if not root.is_dir():
            raise ConfigError(f"{root}: no such landing bucket folder")
        skipped: list[tuple[Path, str]] = []
        refs = []
        for f in walk_landing(root, c.landing, root, skipped):
            key = f.relative_to(root).as_posix()
            if not key.startswith(prefix) or (pattern and not fnmatch.fnmatchcase(key[len(prefix):], pattern)):
                continue
            mtime = dt.datetime.fromtimestamp(f.stat().st_mtime, dt.UTC)
            if (after and mtime < after) or (before and mtime >= before):
                continue
            refs.append(ObjectRef(bucket, key))
        warn_skipped(skipped)
        report = ingest_refs(c, refs, workers)
    except LakerouteError as e:
        raise fail(str(e)) from None
    print_outcomes(report, quiet_ok=True)
    typer.echo(f"backfill {where}: {len(refs)} object(s) found, {report.count('committed')} ingested, "
               f"{report.count('skipped')} already in, {report.count('ignored')} ignored, "
               f"{len(report.failed)} failed")
    if report.failed:
        raise typer.Exit(1)
