"""A batch reads each target table once to plan it (``core.pipeline.plans.open_plan``): a
metastore catalog's ``table_exists`` loads the table itself, so asking it first read the
metadata twice (in AWS: two Glue GetTables and two S3 GETs per table per batch)."""

from __future__ import annotations

from typing import Any

from lakeroute.core.pipeline.plans import open_plan
from lakeroute.local.ledger import SqliteLedger

from tests.support.workspace import Workspace, orders


class Counted:
    """The real catalog, with the names of the calls made to it written down."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.catalog, name)


def test_a_table_is_read_once_to_plan_it_and_a_missing_one_once_too(ws: Workspace) -> None:
    ws.route("r", {"bucket": "b-1", "prefix": "in/"}, {"table": "ns.t"})
    ws.put("b-1", "in/a.parquet", orders(3))
    assert ws.ingest(("b-1", "in/a.parquet")).count("committed") == 1
    pipe = ws.pipeline()
    route = pipe.routes.match("b-1", "in/b.parquet")
    ledger = SqliteLedger(str(ws.paths.home / "ledger.db"))

    catalog = Counted(ws.catalog())
    plan = open_plan(catalog, ledger, route)  # type: ignore[arg-type]
    assert catalog.calls == ["load_table"]
    assert plan.table is not None and plan.metadata is not None and plan.state is not None
    assert plan.blocked is None

    ws.route("r", {"bucket": "b-1", "prefix": "in/"}, {"table": "ns.nothing_yet"})
    missing = Counted(ws.catalog())
    plan = open_plan(missing, ledger, ws.pipeline().routes.match("b-1", "in/b.parquet"))  # type: ignore[arg-type]
    assert missing.calls == ["load_table"]
    assert plan.table is None and plan.metadata is None and plan.state is None
