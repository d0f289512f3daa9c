"""`lakeroute sync`: routes to the routing table, declared tables created or evolved.

The deploy-time custom resource runs the same code (``on_event``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .routes import Route
from .tables import declared_schema, ensure_table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def ensure_declared_tables(catalog: Catalog, routes: list[Route]) -> list[str]:
    """Create every declared table; add declared columns an existing table lacks."""
    lines = []
    done: set[str] = set()
    for route in routes:
        target = route.target
        if target.columns is None or target.table in done:
            continue
        done.add(target.table)
        existed = catalog.table_exists(target.table)
        table = ensure_table(catalog, target)
        if not existed:
            lines.append(f"created table {target.table}")
            continue
        have = {f.name for f in table.schema().fields}
        missing = [n for n in target.columns if n not in have]
        if missing:
            wanted = declared_schema({n: target.columns[n] for n in missing})
            with table.update_schema() as update:
                for field in wanted.fields:
                    update.add_column(field.name, field.field_type)
            lines.append(f"evolved table {target.table}: added {', '.join(missing)}")
        else:
            lines.append(f"table {target.table} up to date")
    return lines


def sync_local(routes: list[Route], home: Path) -> list[str]:
    from .local import local_catalog

    return ensure_declared_tables(local_catalog(home), routes)


def sync_aws(routes: list[Route], routes_table: str, warehouse: str) -> list[str]:
    from .aws import glue_catalog, sync_route_items

    lines = sync_route_items(routes_table, [r.to_item() for r in routes])
    return lines + ensure_declared_tables(glue_catalog(warehouse), routes)


def on_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CloudFormation custom resource: sync the route set given in ResourceProperties."""
    import json
    import os

    from .aws import glue_catalog, sync_route_items

    request = event.get("RequestType")
    physical = event.get("PhysicalResourceId") or "lakeroute-route-sync"
    if request == "Delete":
        return {"PhysicalResourceId": physical}
    items = json.loads(event["ResourceProperties"]["Routes"])
    routes = [Route.from_item(i) for i in items]
    lines = sync_route_items(os.environ["LAKEROUTE_ROUTES_TABLE"], items)
    lines += ensure_declared_tables(glue_catalog(os.environ["LAKEROUTE_WAREHOUSE"]), routes)
    print("\n".join(lines))
    return {"PhysicalResourceId": physical, "Data": {"Routes": str(len(routes))}}
