"""`lakeroute quarantine ls | show | dismiss | purge`: the quarantine, locally or of a stage.

An entry is open until its version lands (resolved), a newer version of its key lands
(superseded) or someone dismisses it with a reason (dismissed); closed entries stay as
history (``ls --all``) until ``purge``. Dismissals are journaled (``lakeroute history``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import shutil
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import LakerouteError, shortened
from ..core.ledger.journal import Attempt
from ..core.ledger.quarantine import DISMISSED, OPEN, RESOLVED, STATES, SUPERSEDED, entry_state
from .app import Ctx, app, fail, get_ctx

if TYPE_CHECKING:
    from ..local.objects import LocalQuarantine

quarantine_app = typer.Typer(help="List, show, dismiss and clean up quarantined objects.\n\n"
                             "Example: lakeroute quarantine ls", no_args_is_help=True,
                             rich_markup_mode=None)
app.add_typer(quarantine_app, name="quarantine")

STAGE_HELP = "A deployed stage (its stack's outputs name the resources)."


def local_quarantine(c: Ctx) -> LocalQuarantine:
    from ..local.objects import LocalQuarantine

    return LocalQuarantine(c.paths().quarantine)


def route_of(record: dict[str, Any]) -> str:
    return str(record.get("route") or "no route")


def with_state(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "state": entry_state(record)}


@quarantine_app.command("ls")
def quarantine_ls(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    all_entries: Annotated[bool, typer.Option("--all", help="Also closed entries: resolved, superseded, "
                                              "dismissed.")] = False,
    state: Annotated[str | None, typer.Option(help="Only entries in this state: open, resolved, "
                                              "superseded, dismissed.")] = None,
    stage: Annotated[str | None, typer.Option(help=STAGE_HELP)] = None,
) -> None:
    """List quarantined object versions: key, route, stage, attempts, reason.

    Open entries only, unless --all (with each entry's state) or --state. With --stage, the
    stage's S3 quarantine (QuarantineUri of its stack).

    Example: lakeroute quarantine ls --all --format json
    """
    from . import stage as staged

    if state is not None and state not in STATES:
        raise fail(f"--state {state!r}: use {', '.join(STATES)}")
    if format not in ("table", "json"):
        raise fail(f"--format {format!r}: use table or json")
    st = staged.selected(stage)
    entries = staged.quarantine_entries(st) if st else local_quarantine(get_ctx(ctx)).entries()
    every = [with_state(r) for _, r in entries]
    rows = [r for r in every if (r["state"] == state if state else all_entries or r["state"] == OPEN)]
    if format == "json":
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    closed = all_entries or state not in (None, OPEN)
    out = RichTable("quarantined (UTC)", "object", "route", "stage", "attempts", *(["state"] if closed else []),
                    "reason")
    for r in rows:
        why = str(r.get("message", "")) if r["state"] == OPEN else f"{r.get('resolution', '')} ({r.get('message', '')})"
        out.add_row(str(r.get("quarantined_at", ""))[:19], f"{r['bucket']}/{r['key']}", route_of(r),
                    str(r.get("stage")), str(r.get("attempts")), *([r["state"]] if closed else []), shortened(why, 90))
    Console(width=200).print(out)
    opened = sum(1 for r in every if r["state"] == OPEN)
    shut = {s: sum(1 for r in every if r["state"] == s) for s in (RESOLVED, SUPERSEDED, DISMISSED)}
    typer.echo(f"{opened} quarantined object version(s); closed: " + ", ".join(f"{n} {s}" for s, n in shut.items())
               + ("" if closed else " (--all shows them)"), err=True)


@quarantine_app.command("show")
def quarantine_show(
    ctx: typer.Context,
    object_: Annotated[str, typer.Argument(metavar="BUCKET/KEY", help="The object, bucket/key.")],
    stage: Annotated[str | None, typer.Option(help=STAGE_HELP)] = None,
) -> None:
    """Show the records of one object's quarantined versions (reason, route, stage, attempts, state).

    With --stage, BUCKET is the physical or the logical landing bucket.

    Example: lakeroute quarantine show acme-sales-landing/orders/broken.parquet
    """
    found = _entries_of(ctx, object_, stage)
    if not found:
        raise fail(f"{object_}: not in the quarantine; `lakeroute quarantine ls --all` lists what is", 1)
    for entry, record in found:
        typer.echo(json.dumps({**with_state(record), "entry": str(entry)}, indent=2, ensure_ascii=False))


def _entries_of(ctx: typer.Context, object_: str | None, stage: str | None,
                route: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """The entries of one object (BUCKET/KEY; with --stage the bucket may be logical) and/or route."""
    from . import stage as staged

    st = staged.selected(stage)
    entries: Iterable[tuple[Any, dict[str, Any]]]
    if st:
        if object_ is not None:
            bucket, _, key = object_.partition("/")
            try:
                object_ = f"{st.bucket(bucket)}/{key}"
            except LakerouteError as e:
                raise fail(str(e)) from None
        entries = staged.quarantine_entries(st)
    else:
        entries = local_quarantine(get_ctx(ctx)).entries()
    return [(e, r) for e, r in entries if (object_ is None or f"{r['bucket']}/{r['key']}" == object_)
            and (route is None or r.get("route") == route)]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container): the reason still tells
        return "unknown user"


@quarantine_app.command("dismiss")
def quarantine_dismiss(
    ctx: typer.Context,
    object_: Annotated[str | None, typer.Argument(metavar="BUCKET/KEY", help="The object, bucket/key: "
                                                  "all its open versions.")] = None,
    route: Annotated[str | None, typer.Option(help="Every open entry of this route.")] = None,
    reason: Annotated[str, typer.Option(help="Why: kept in the record and in `lakeroute history`.")]
    = "no reason given",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    stage: Annotated[str | None, typer.Option(help=STAGE_HELP)] = None,
) -> None:
    """Close open entries by hand (a file moved to the right key, a version nobody needs).

    The entries stay as history (`quarantine ls --all`), `replay` skips them, and each
    dismissal is journaled with its reason and who dismissed it. Asks first unless --yes.

    Example: lakeroute quarantine dismiss acme-web/misplaced.csv --reason "moved" --yes
    """
    from . import stage as staged

    if object_ is None and route is None:
        raise fail("quarantine dismiss: name the object (BUCKET/KEY) or --route R")
    chosen = [(e, r) for e, r in _entries_of(ctx, object_, stage, route) if entry_state(r) == OPEN]
    what = " and ".join(x for x in (object_, f"route {route}" if route else None) if x)
    if not chosen:
        raise fail(f"{what}: no open quarantine entry; `lakeroute quarantine ls --all` lists them", 1)
    listing = ", ".join(f"{r['bucket']}/{r['key']}" for _, r in chosen[:3]) + (
        f" and {len(chosen) - 3} more" if len(chosen) > 3 else "")
    if not yes:
        if not sys.stdin.isatty():
            raise fail(f"quarantine dismiss closes {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'} "
                       f"({listing}); say --yes to do it without a question")
        typer.confirm(f"Dismiss {len(chosen)} quarantine entr{'y' if len(chosen) == 1 else 'ies'} ({listing})?",
                      abort=True)
    who = _user()
    text = f"dismissed: {reason}"
    st = staged.selected(stage)
    try:
        if st:
            staged.dismiss(st, chosen, text, who)
        else:
            c = get_ctx(ctx)
            quarantine = local_quarantine(c)
            closed = [quarantine.close(entry, DISMISSED, text, dismissed_by=who) for entry, _ in chosen]
            from ..local.journal import SqliteJournal

            SqliteJournal(str(c.home / "ledger.db")).record(dismissals(closed))
    except LakerouteError as e:
        raise fail(str(e)) from None
    typer.echo(f"dismissed {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'} ({listing}): {reason}; "
               "kept as history (`lakeroute quarantine ls --all`)")


def dismissals(records: list[dict[str, Any]]) -> list[Attempt]:
    """The journal's lines for dismissed entries (``history TABLE --status dismissed``)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return [Attempt(now, str(r.get("table") or ""), str(r.get("route") or ""), str(r["bucket"]), str(r["key"]),
                    str(r.get("version") or ""), DISMISSED, 0, "quarantine",
                    f"{r.get('resolution', '')} (by {r.get('dismissed_by', '?')})") for r in records]


@quarantine_app.command("purge")
def quarantine_purge(
    ctx: typer.Context,
    resolved: Annotated[bool, typer.Option("--resolved", help="Entries whose version landed.")] = False,
    superseded: Annotated[bool, typer.Option("--superseded", help="Entries a newer version replaced.")] = False,
    dismissed: Annotated[bool, typer.Option("--dismissed", help="Entries dismissed by hand.")] = False,
    closed: Annotated[bool, typer.Option("--closed", help="All three.")] = False,
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its S3 quarantine.")] = None,
) -> None:
    """Remove closed entries (their copies and records); open entries are never removed.

    Example: lakeroute quarantine purge --closed
    """
    states = {s for s, on in ((RESOLVED, resolved or closed), (SUPERSEDED, superseded or closed),
                              (DISMISSED, dismissed or closed)) if on}
    if not states:
        raise fail("quarantine purge: say which closed entries: --resolved, --superseded, --dismissed or --closed")
    from . import stage as staged

    st = staged.selected(stage)
    gone = 0
    if st:
        gone = staged.purge(st, states)
    else:
        for entry, record in local_quarantine(get_ctx(ctx)).entries():
            if entry_state(record) in states:
                shutil.rmtree(entry, ignore_errors=True)
                gone += 1
    label = next(iter(states)) if len(states) == 1 else "closed"
    typer.echo(f"removed {gone} {label} entr{'y' if gone == 1 else 'ies'}")

