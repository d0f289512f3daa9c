"""`lakeroute sync`: routes to the routing table, declared tables created or evolved.

The deploy-time custom resource runs the same code (``on_event``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core.routes import Route
from .core.tables import ensure_declared_tables


def sync_local(routes: list[Route], home: Path) -> list[str]:
    from .local import local_catalog

    return ensure_declared_tables(local_catalog(home), routes)


def sync_aws(routes: list[Route], routes_table: str, warehouse: str) -> list[str]:
    from .aws.catalog import glue_catalog
    from .aws.route_sync import sync_route_items

    lines = sync_route_items(routes_table, [r.to_item() for r in routes])
    return lines + ensure_declared_tables(glue_catalog(warehouse), routes)


def on_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CloudFormation custom resource: sync the route set given in ResourceProperties."""
    import json
    import os

    from .aws.catalog import glue_catalog
    from .aws.route_sync import sync_route_items

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
