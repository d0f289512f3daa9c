"""`validate`, `ingest` and `watch`: route files checked, files landed."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import ConfigError, LakerouteError
from .app import Ctx, app, fail, get_ctx, print_outcomes

if TYPE_CHECKING:
    from ..core.pipeline import IngestReport, ObjectRef, Pipeline


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check every route file: schema, SQL binding, ambiguity, shared table settings.

    The SQL is checked under the ingest lockdown: exactly one SELECT, always; bound (no rows
    read) against a sample file under landing/<bucket>/<prefix> that ingest would route to
    it, else against source.columns. What would fail every file at ingest is an error
    (result types with no Iceberg counterpart, duplicate names in any case, a missing
    partition column); exit 2, one line per problem. Warnings (exit code unaffected): time
    columns, names that are not lower-case identifiers, declared columns never produced.
    With a local catalog, it also shows the plan of `sync --plan` (unsafe changes are
    errors), and it notes the files under each route's folder that are ignored.

    Example: lakeroute validate
    """
    from ..local.validate import ignored_notes, validate_routes

    c = get_ctx(ctx)
    try:
        problems, warnings, notes, count = validate_routes(c.routes, c.landing)
        notes = [*notes, *ignored_notes(c.routes, c.landing)]
        if not problems:
            from ..core.routes import load_routes
            from ..core.shape.tables import ensure_declared_tables
            from ..local.catalogs import plan_catalog

            catalog = plan_catalog(c.home, c.catalog, notes)
            try:
                plan = ensure_declared_tables(catalog, load_routes(c.routes), plan=True) if catalog else []
                notes += [f"plan: {line}" for line in plan if "up to date" not in line]
            except ConfigError as e:
                problems += [line for line in str(e).splitlines()[1:]]
    except ConfigError as e:
        raise fail(str(e)) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if problems:
        raise fail("\n".join(problems))
    typer.echo(f"ok: {count} route(s) valid in {c.routes}")


# ---------------------------------------------------------------- ingest

LEAVES = "symlink leaves the landing folder"
_OUTSIDE = "not under the landing folder"  # not a skip: `_collect` raises ConfigError for it

Signature = tuple[int, int]  # (st_size, st_mtime_ns) of a landing file


@dataclass
class Collected:
    """What `ingest` reads, and what it leaves alone (never read) with the reason."""

    refs: list[ObjectRef]
    overrides: dict[tuple[str, str], Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    named_skipped: int = 0  # skipped paths that were named on the command line


def _escape(p: Path, landing: Path, root: Path) -> str | None:
    """Why ``p`` may not be read: None when it resolves (symlinks followed) under the landing
    folder ``root`` (``landing`` resolved) to something that exists; else the reason: a path
    in the landing folder whose symlink leads out (LEAVES), loops or dangles, or a path not in
    the landing folder at all (_OUTSIDE)."""
    try:
        target = p.resolve()
        if target.is_relative_to(root):
            return None if target.exists() else "symlink target does not exist"
        inside = (Path(os.path.abspath(p)).is_relative_to(Path(os.path.abspath(landing)))
                  or (p.parent.resolve() / p.name).is_relative_to(root))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return "symlink loop"
    return LEAVES if inside else _OUTSIDE


def walk_landing(folder: Path, landing: Path, root: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """Data files under ``folder``, sorted, as paths under ``folder`` (not resolved).

    Symlinks are checked before they are followed, whatever ``Path.rglob`` does in this
    Python: one that stays under the landing folder is followed (a symlinked folder once,
    loops cut); one that leaves it, loops or dangles is appended to ``skipped`` with the
    reason and never read or descended into. Names starting with "." or ending in
    ".partial" are left alone, links included. A link found outside the landing folder (when
    ``folder`` is not under it) is returned as is, for the caller to reject.
    """
    found: list[Path] = []
    visited: set[Path] = set()

    def visit(d: Path) -> None:
        real = d.resolve()
        if real in visited:
            return
        visited.add(real)
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            skipped.append((d, f"cannot list the folder: {e.strerror}"))
            return
        for entry in entries:
            p = d / entry.name
            if entry.is_symlink():
                if _hidden(entry.name):
                    continue
                problem = _escape(p, landing, root)
                if problem == _OUTSIDE:
                    found.append(p)
                    continue
                if problem is not None:
                    skipped.append((p, problem))
                    continue
            if entry.is_dir():
                visit(p)
            elif _is_data_file(p):
                found.append(p)

    visit(folder)
    return sorted(found)


def _collect(paths: list[Path], landing: Path, bucket: str | None, key: str | None) -> Collected:
    from ..core.pipeline import ObjectRef
    from ..local.objects import LocalObjectSource

    if bucket is not None:
        if len(paths) != 1 or not paths[0].is_file():
            raise ConfigError("--bucket takes exactly one file: lakeroute ingest FILE --bucket B [--key K]")
        from ..core.routes import BUCKET_RE

        if not re.match(BUCKET_RE, bucket):
            raise ConfigError(f"--bucket {bucket!r}: not a bucket name (3-63 lower-case letters, digits, "
                              "'.' and '-', as in the routes' source.bucket)")
        if key is not None and not key.strip("/"):
            raise ConfigError("--key must not be empty")
        k = key or paths[0].name
        return Collected([ObjectRef(bucket, k)], {(bucket, k): paths[0]})
    if key is not None:
        raise ConfigError("--key needs --bucket")
    src = LocalObjectSource(landing)
    root = landing.resolve()
    got = Collected([], {})
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise ConfigError(f"{p}: no such file or folder")
        problem = _escape(p, landing, root)
        if problem is not None and problem != _OUTSIDE:
            got.skipped.append((p, problem))
            got.named_skipped += 1
            continue
        files = walk_landing(p, landing, root, got.skipped) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            ref = src.ref_of(f)
            if ref is None:
                raise ConfigError(f"{f}: not under the landing folder {landing}/<bucket>/; "
                                  "move it there or pass --bucket B [--key K]")
            got.refs.append(ObjectRef(*ref))
    got.refs = list(dict.fromkeys(got.refs))  # a link and its target are one object
    return got


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.endswith(".partial")


def _is_data_file(f: Path) -> bool:
    return f.is_file() and not _hidden(f.name)


def cli_pipeline(c: Ctx, overrides: dict[tuple[str, str], Path] | None = None) -> Pipeline:
    from ..local import local_pipeline
    from ..local.objects import LocalObjectSource

    pipe = local_pipeline(c.paths())
    if overrides:
        assert isinstance(pipe.source, LocalObjectSource)
        pipe.source.overrides.update(overrides)
    return pipe


def run_batch(pipe: Pipeline, refs: list[ObjectRef]) -> IngestReport:
    """Ingest with a progress bar on a terminal; quiet when piped."""
    if len(refs) > 1 and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("ingesting", total=len(refs))
            return pipe.ingest(refs, progress=lambda _: bar.advance(task))
    return pipe.ingest(refs)


WORKERS_HELP = ("Processes that read and stage files in parallel (default: the machine's cores); "
                "one committer per table then commits everything staged in one snapshot.")


def ingest_refs(c: Ctx, refs: list[ObjectRef], workers: int | None, *, force: bool = False,
                overrides: dict[tuple[str, str], Path] | None = None) -> IngestReport:
    """``refs`` ingested: staged by ``workers`` processes through the commit lane (``core.lane``),
    or in this process (one worker, one file) with a progress bar on a terminal."""
    from ..local.parallel import default_workers, ingest_parallel, lane_of

    n = workers or default_workers()
    if (n > 1 and len(refs) > 1) or lane_of(c.paths()).tables():
        return ingest_parallel(c.paths(), refs, n, force=force, overrides=overrides)
    pipe = cli_pipeline(c, overrides)
    pipe.force = force
    return run_batch(pipe, refs)


def warn_skipped(skipped: list[tuple[Path, str]]) -> None:
    for p, why in skipped:
        typer.echo(f"skipped {p}: {why}", err=True)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders under the landing folder.")],
    bucket: Annotated[str | None, typer.Option(help="Bucket for one file outside landing.")] = None,
    key: Annotated[str | None, typer.Option(help="Key for that file (default: its name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Ingest even versions the table already "
                                        "holds (append: their rows land again).")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help=WORKERS_HELP)] = None,
) -> None:
    """Ingest files: landing/<bucket>/<key> gives bucket and key.

    Files of one call that target the same table commit together. Exit 1 when some file
    was not ingested (quarantined under <home>/quarantine/, one entry per version with an
    error.json). Versions already in the table are skipped unless --force.

    With --workers N (default: the machine's cores), N processes read and stage the files,
    then one committer per table commits them (the commit lane, <home>/lane/); an
    interrupted run's staged files are committed by the next run.

    Symlinks: one that resolves inside the landing folder is followed and ingests as the
    object it leads to (the bucket and key of its target, so a link and its target are one
    object, never two). One that leaves the landing folder (or loops, or dangles) is never
    read: "skipped <link>: symlink leaves the landing folder" on stderr; in a folder the
    rest is ingested and decides the exit code, a link named on the command line counts as
    not ingested (exit 1). Names starting with "." or ending in ".partial" are left alone
    in folders.

    Example: lakeroute ingest landing/acme-sales-landing/orders/
    """
    c = get_ctx(ctx)
    try:
        got = _collect(paths, c.landing, bucket, key)
        warn_skipped(got.skipped)
        report = ingest_refs(c, got.refs, workers, force=force, overrides=got.overrides)
    except ConfigError as e:
        raise fail(str(e)) from None
    print_outcomes(report)
    if report.failed or got.named_skipped:
        raise typer.Exit(1)


# ---------------------------------------------------------------- watch


def _routes_signature(routes: Path) -> tuple[tuple[str, int, int], ...] | None:
    """(name, size, mtime_ns) of each route file; None when the folder cannot be listed."""
    try:
        files = sorted(p for p in routes.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError:
        return None
    sig = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        sig.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(sig)


def _scan(landing: Path, skipped: list[tuple[Path, str]]) -> dict[Path, Signature]:
    """Signature of each data file under the landing folder (symlink rule of `walk_landing`)."""
    sigs: dict[Path, Signature] = {}
    for f in walk_landing(landing, landing, landing.resolve(), skipped):
        try:
            st = f.stat()
        except OSError:  # gone since the listing
            continue
        sigs[f] = (st.st_size, st.st_mtime_ns)
    return sigs


@app.command()
def watch(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="Seconds between scans.")] = 1.0,
    settle: Annotated[float, typer.Option(
        min=0, help="Seconds a file's size and mtime must stay unchanged before it is read.")] = 5.0,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help=WORKERS_HELP)] = None,
) -> None:
    """Ingest files as they appear under the landing folder (Ctrl-C stops).

    A file is read only once its size and modification time (ns) have not changed for
    --settle seconds, counted from the scan that first saw them (monotonic clock), whatever
    --interval is: a writer that pauses for less than that mid-file is never read half
    written. Write slower producers to NAME.partial (or .NAME) and rename when done: those
    names are never read. A file that changes after it was ingested is read again once it
    settles: identical content is skipped by its hash in mode append, and is a new upload
    (ingested again, the latest wins) in replace, overwrite and upsert. Symlinks follow the ingest rule: one
    that leaves the landing folder is skipped with a warning, never read.

    Route files are reloaded without a restart when one is added, changed or removed, once
    they have settled too (so a route written before its first file is in use before that
    file is read): "reloaded N route(s)". An invalid set prints one error: line per problem
    and the previous routes stay in use until the route files change again.

    Example: lakeroute watch --interval 2 --settle 10
    """
    c = get_ctx(ctx)
    from ..core.pipeline import ObjectRef
    from ..local.objects import LocalObjectSource

    loaded = _routes_signature(c.routes)  # before loading: a change during the load reloads
    try:
        pipe = cli_pipeline(c)
    except ConfigError as e:
        raise fail(str(e)) from None
    c.landing.mkdir(parents=True, exist_ok=True)
    src = LocalObjectSource(c.landing)
    routes_since = (loaded, time.monotonic())  # route signature and when first seen
    since: dict[Path, tuple[Signature, float]] = {}  # file -> signature, when first seen
    done: dict[Path, Signature] = {}
    warned: set[tuple[Path, str]] = set()
    stop = None if timeout is None else time.monotonic() + timeout
    typer.echo(f"watching {c.landing} (Ctrl-C to stop)", err=True)
    try:
        while stop is None or time.monotonic() < stop:
            routes_sig = _routes_signature(c.routes)  # before the files: a route written
            skipped: list[tuple[Path, str]] = []      # before a file is seen no later
            sigs = _scan(c.landing, skipped)
            now = time.monotonic()
            if routes_sig != routes_since[0]:
                routes_since = (routes_sig, now)
            if routes_sig != loaded and now - routes_since[1] >= settle:
                loaded = routes_sig
                try:
                    pipe = cli_pipeline(c)
                except ConfigError as e:
                    for line in str(e).splitlines():
                        typer.echo(f"error: {line}", err=True)
                    typer.echo(f"kept the previous {len(pipe.routes.routes)} route(s) until the "
                               "route files change again", err=True)
                else:
                    typer.echo(f"reloaded {len(pipe.routes.routes)} route(s)", err=True)
            warn_skipped([s for s in skipped if s not in warned])
            warned = set(skipped)  # warned once while it stays; again if it comes back
            since = {f: prev if (prev := since.get(f)) is not None and prev[0] == sig else (sig, now)
                     for f, sig in sigs.items()}
            done = {f: sig for f, sig in done.items() if f in sigs}
            ready = sorted(f for f, (sig, t0) in since.items()
                           if now - t0 >= settle and done.get(f) != sig)
            keys = {f: r for f in ready if (r := src.ref_of(f)) is not None}
            refs = list(dict.fromkeys(ObjectRef(*r) for r in keys.values()))
            retry: set[tuple[str, str]] = set()
            if refs:
                try:
                    report = pipe.ingest(refs) if (workers or 1) == 1 else ingest_refs(c, refs, workers)
                except LakerouteError as e:  # e.g. the catalog is unreachable: try again next scan
                    typer.echo(f"error: {e}", err=True)
                    retry = set(keys.values())
                else:
                    print_outcomes(report)
                    # transient failures are retried on a later scan, not only when the file changes
                    retry = {(o.ref.bucket, o.ref.key) for o in report.outcomes if o.status == "failed"}
            for f in ready:
                if keys.get(f) not in retry:
                    done[f] = since[f][0]
            time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
