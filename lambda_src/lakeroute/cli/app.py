"""The `lakeroute` Typer app, its global options and the helpers every command shares.

Exit codes: 0 all done; 1 some object not ingested (each named with its reason); 2 usage
or configuration error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from ..core.pipeline import IngestReport, Outcome
    from ..local import LocalPaths

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
    catalog: str | None = None  # a PyIceberg catalog name; None: the SQLite catalog under home

    def paths(self) -> LocalPaths:
        from ..local import LocalPaths

        return LocalPaths(self.routes, self.home, self.landing, self.catalog)

    def open_catalog(self) -> Catalog:
        """The local catalog; a configuration problem ends the command (one ``error:`` line, exit 2)."""
        from ..core.errors import ConfigError
        from ..local import local_catalog

        try:
            return local_catalog(self.home, self.catalog)
        except ConfigError as e:
            raise fail(str(e)) from None

    def where(self) -> str:
        """The tables' place in messages: the home folder, or the named catalog."""
        return f"catalog {self.catalog}" if self.catalog else str(self.home)


def get_ctx(ctx: typer.Context) -> Ctx:
    obj = ctx.obj
    assert isinstance(obj, Ctx)
    return obj


def fail(message: str, code: int = 2) -> typer.Exit:
    for line in message.splitlines():
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def print_outcomes(report: IngestReport, quiet_ok: bool = False) -> None:
    for o in report.outcomes:
        name = f"{o.ref.bucket}/{o.ref.key}"
        if o.status == "committed":
            if not quiet_ok:
                typer.echo(f"ingested {name} -> {o.table} ({o.message or f'{o.rows} rows'}, route {o.route})")
        elif o.status == "skipped":
            typer.echo(f"skipped {o.message}")
        elif o.status == "ignored":
            typer.echo(f"ignored {o.message}")
        elif o.status == "quarantined":
            typer.echo(f"quarantined {name}: {o.message} [stage {stage_of(o)}] -> {o.quarantined_to}",
                       err=True)
        else:
            typer.echo(f"failed {name}: {o.message} (not quarantined: retry later)", err=True)
    aside = sum(o.rejected for o in report.outcomes if o.status == "committed")
    rescued = sum(o.rescued for o in report.outcomes if o.status == "committed")
    extra = (f", {aside} rejected" if aside else "") + (f", {rescued} rescued" if rescued else "")
    for c in report.commits:  # which write an upsert chose (auto mode decides per commit)
        if c.get("upsert_mode"):
            typer.echo(f"upsert into {c['table']}: {c['upsert_mode']} ({c.get('upsert_mode_reason', '')})",
                       err=quiet_ok)
    typer.echo(
        f"{report.count('committed')} ingested ({report.rows} rows{extra}), {report.count('skipped')} "
        f"skipped, {report.count('ignored')} ignored, {len(report.failed)} failed in {report.seconds:.2f}s; "
        f"{len(report.commits)} commit(s)", err=quiet_ok)


def stage_of(o: Outcome) -> str:
    return o.stage or "?"


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
    catalog: Annotated[str | None, typer.Option(
        envvar="LAKEROUTE_CATALOG",
        help="A PyIceberg catalog by name, configured in .pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__* "
             "variables (default: the SQLite catalog in the home folder). Ledger, quarantine and lane "
             "stay in the home folder.")] = None,
    region: Annotated[str | None, typer.Option(
        help="AWS region of the --stage commands (default: AWS_REGION, AWS_DEFAULT_REGION, "
             "the profile's region in ~/.aws/config).")] = None,
) -> None:
    """Land files into Apache Iceberg tables, driven by declarative routes.

    Example: lakeroute --routes routes --home .lakeroute validate
    """
    from ..local.catalogs import selected_name

    ctx.obj = Ctx(routes, home, landing, selected_name(catalog))
    if region:
        _use_region(ctx, region)
    # Outcomes are printed by the commands; the library's warnings would print them twice.
    logging.getLogger("lakeroute").addHandler(logging.NullHandler())
    # ...but what happened to lakeroute's own files (a damaged ledger.db set aside) is news.
    from ..local.sqlite_file import STATE_LOGGER

    state = logging.getLogger(STATE_LOGGER)
    if not any(isinstance(h, _StderrWarnings) for h in state.handlers):
        state.addHandler(_StderrWarnings(logging.WARNING))


def _use_region(ctx: typer.Context, region: str) -> None:
    """``--region``: as ``AWS_REGION`` for this command, so that every client (boto3, DuckDB's S3,
    PyIceberg's Glue and S3) uses it; the previous value comes back when the command ends."""
    before = os.environ.get("AWS_REGION")
    os.environ["AWS_REGION"] = region

    def restore() -> None:
        if before is None:
            os.environ.pop("AWS_REGION", None)
        else:
            os.environ["AWS_REGION"] = before

    ctx.call_on_close(restore)


class _StderrWarnings(logging.Handler):
    """``warning: <message>`` on the stderr of the moment (tests swap it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)
