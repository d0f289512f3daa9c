"""`lakeroute sync`: routes to the routing table, declared tables created or evolved.

The deploy-time custom resource runs the same code (``on_event``). Route files hold logical
bucket and namespace names; a deployed stage maps them to physical ones (the custom
resource's ``Buckets`` and ``Namespaces`` properties), and the routing table and the Glue
catalog get the physical names (``aws.route_sync.physical_items``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core.routes import Route
from .core.shape.tables import ensure_declared_tables, unrouted_tables


def sync_local(routes: list[Route], home: Path, *, plan: bool = False, catalog: str | None = None) -> list[str]:
    """Declared tables created or evolved in the local catalog (``<home>/catalog.db``, or the
    PyIceberg catalog ``catalog``); tables no route writes any more are named, kept."""
    from .local import local_catalog

    opened = local_catalog(home, catalog)
    return ensure_declared_tables(opened, routes, plan=plan) + unrouted_tables(opened, routes)


def sync_aws(routes: list[Route], routes_table: str, warehouse: str, *,
             buckets: Mapping[str, str] | None = None,
             namespaces: Mapping[str, str] | None = None) -> list[str]:
    """Push ``routes`` to ``routes_table`` and create their declared tables in Glue.

    Names are used as written unless ``buckets`` (logical -> physical bucket) and/or
    ``namespaces`` (namespace -> Glue database) map them, as a deployed stage does.
    """
    from .aws.route_sync import physical_items

    items = physical_items([r.to_item() for r in routes], buckets=buckets, namespaces=namespaces)
    return _sync_items(items, routes_table, warehouse, unrouted=True)


def _sync_items(items: list[dict[str, Any]], routes_table: str, warehouse: str, *,
                unrouted: bool = False) -> list[str]:
    """``unrouted``: also name the tables of the routes' databases that no route writes (the
    CLI's credentials may list Glue tables; the deploy-time sync's role may not)."""
    from .aws.catalog import catalog_from_env
    from .aws.route_sync import sync_route_items

    lines = sync_route_items(routes_table, items)
    routes = [Route.from_item(i) for i in items]
    catalog = catalog_from_env(warehouse)  # LAKEROUTE_CATALOG: the stage's Glue or S3 Tables
    lines += ensure_declared_tables(catalog, routes)
    if unrouted:
        lines += unrouted_tables(catalog, routes, {leg.target.namespace for r in routes for leg in r.legs()})
    return lines + configure_table_maintenance(catalog, routes)


def configure_table_maintenance(catalog: Any, routes: list[Route]) -> list[str]:
    """S3 Tables: each existing table's own compaction and snapshot management, from its
    routes' ``target.maintenance`` (``aws.s3tables_maintenance``). Nothing for other catalogs."""
    from .aws.s3tables import S3TablesCatalog

    if not isinstance(catalog, S3TablesCatalog):
        return []
    from .aws.s3tables_maintenance import configure_tables
    from .core.maintain.maintenance import settings_by_table

    return configure_tables(catalog, settings_by_table(routes))


def on_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CloudFormation custom resource: sync the route set given in ResourceProperties.

    ``Routes`` (JSON list of ``Route.to_item()``, logical names), optional ``Buckets`` and
    ``Namespaces`` (the stage's logical -> physical maps, resolved by CloudFormation).
    """
    import json
    import os

    from .aws.route_sync import physical_items

    request = event.get("RequestType")
    physical = event.get("PhysicalResourceId") or "lakeroute-route-sync"
    if request == "Delete":
        return {"PhysicalResourceId": physical}
    props = event["ResourceProperties"]
    items = physical_items(json.loads(props["Routes"]), buckets=props.get("Buckets"),
                           namespaces=props.get("Namespaces"))
    lines = _sync_items(items, os.environ["LAKEROUTE_ROUTES_TABLE"], os.environ["LAKEROUTE_WAREHOUSE"])
    print("\n".join(lines))
    return {"PhysicalResourceId": physical, "Data": {"Routes": str(len(items))}}
