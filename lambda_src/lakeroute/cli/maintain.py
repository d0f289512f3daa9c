"""`maintain`: compaction, snapshot expiry, orphan-file removal (``core.maintenance``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import LakerouteError
from .app import app, fail, get_ctx

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from ..core.ledger import Ledger
    from ..core.maintain.references import Lister
    from ..core.routes import Maintenance


@app.command()
def maintain(
    ctx: typer.Context,
    tables: Annotated[list[str] | None, typer.Argument(help="namespace.table (default: every table).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Do it (without: only say what would be "
                                        "done, in numbers).")] = False,
    stage: Annotated[str | None, typer.Option(help="A deployed stage: its Glue catalog, S3 warehouse "
                                              "and ledger (TABLE as in route files, or database.table).")] = None,
) -> None:
    """Compact small data files, expire old snapshots, remove orphan files; a dry run unless --apply.

    Per table, by its route's target.maintenance (target_file_mb, keep_snapshots, keep_days,
    orphan_days): the small files of each partition are rewritten into target-sized ones in
    one replace snapshot (rows unchanged), with the manifests; snapshots beyond both limits
    expire and the files only they referenced are deleted; files under the table location that
    nothing references and older than orphan_days are removed. Ingestion may go on meanwhile:
    a conflicted commit retries, then gives way to the writers.

    Example: lakeroute maintain sales.orders --apply
    """
    from ..core.maintain.maintenance import maintain_tables
    from . import stage as staged

    st = staged.selected(stage)
    c = get_ctx(ctx)
    try:
        if st is not None:
            catalog, ledger, lister, settings = _stage_side(st)
            names = [st.table(t) for t in tables or []]
        else:
            catalog, ledger, lister, settings = _local_side(c.routes, c.home, c.catalog)
            names = list(tables or [])
        known = _existing(catalog)
        unknown = [n for n in names if n not in known]
        if unknown:
            where = f"stage {st.name}" if st else c.where()
            raise fail("\n".join(f"table {n} does not exist in {where}; `lakeroute tables"
                                 f"{' --stage ' + st.name if st else ''}` lists them (known: "
                                 f"{', '.join(sorted(known)) or 'none'})" for n in unknown))
        todo = names or sorted(known)
        if not todo:
            typer.echo("no tables")
            return
        reports, _ = maintain_tables(catalog, ledger, lister, settings, todo, apply=apply,
                                     done=lambda r: typer.echo("\n".join(r.lines())),
                                     managed=st is not None and st.catalog == "s3tables")
    except LakerouteError as e:
        raise fail(str(e)) from None
    if not apply:
        typer.echo("dry run: nothing was changed; run again with --apply to do it", err=True)
    yielded = [r.table for r in reports if (r.compaction and r.compaction.yielded) or
               any("gave way" in n for n in r.notes)]
    if yielded:
        typer.echo(f"gave way to concurrent commits: {', '.join(yielded)} (run it again later)", err=True)
    failed = [r.table for r in reports if r.error]
    if failed:
        typer.echo(f"failed: {', '.join(failed)} (see above; the other tables were maintained)", err=True)
        raise typer.Exit(1)


def _existing(catalog: Catalog) -> set[str]:
    from ..core.ledger.history import all_tables

    return set(all_tables(catalog))


def _local_side(routes_dir: object, home: object,
                catalog_name: str | None) -> tuple[Catalog, Ledger, Lister, dict[str, Maintenance]]:
    from pathlib import Path

    from ..core.maintain.maintenance import settings_by_table
    from ..core.routes import load_routes
    from ..local import local_catalog
    from ..local.catalogs import catalog_lister
    from ..local.ledger import SqliteLedger

    assert isinstance(routes_dir, Path) and isinstance(home, Path)
    routes = load_routes(routes_dir) if routes_dir.is_dir() else []
    catalog = local_catalog(home, catalog_name)
    return catalog, SqliteLedger(str(home / "ledger.db")), catalog_lister(catalog), settings_by_table(routes)


def _stage_side(st: object) -> tuple[Catalog, Ledger, Lister, dict[str, Maintenance]]:
    from ..aws.clients import aws_client
    from ..aws.ledger import DynamoLedger
    from ..aws.s3_listing import s3_lister
    from ..aws.stage import Stage
    from ..aws.sweep import scan_routes
    from ..core.maintain.maintenance import settings_by_table
    from . import stage as staged

    assert isinstance(st, Stage)
    ddb = aws_client("dynamodb")
    routes = scan_routes(ddb, st.need("routes_table"))
    return (staged.stage_catalog(st), DynamoLedger(st.need("ledger_table"), ddb=ddb), s3_lister(),
            settings_by_table(routes))
