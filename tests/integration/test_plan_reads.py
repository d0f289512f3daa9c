"""A batch reads each target table once to plan it (``core.pipeline.plans.open_plan``): a
metastore catalog's ``table_exists`` loads the table itself, so asking it first read the
metadata twice (in AWS: two Glue GetTables and two S3 GETs per table per batch)."""

from __future__ import annotations

from typing import Any

import pytest
from lakeroute.core.pipeline.plans import open_plan
from lakeroute.local.ledger import SqliteLedger

from tests.support.moto_server import MotoServer
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


def test_a_glue_table_that_is_not_iceberg_is_an_error_not_a_missing_table(clean_aws: MotoServer) -> None:
    # One load_table instead of table_exists + load_table must not turn "a table of that name
    # exists, but it is a Hive table" into "no table yet" (then a create that cannot succeed).
    import boto3
    from lakeroute.aws.catalog import glue_catalog
    from lakeroute.core.routes import Route
    from pyiceberg.exceptions import NoSuchIcebergTableError

    boto3.client("s3").create_bucket(Bucket="plan-wh")
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": "hive_db"})
    glue.create_table(DatabaseName="hive_db", TableInput={
        "Name": "events", "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "table_type": "HIVE"},
        "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "bigint"}], "Location": "s3://plan-wh/hive/"}})
    route = Route.model_validate({"name": "r", "source": {"bucket": "bkt"}, "target": {"table": "hive_db.events"}})
    catalog = Counted(glue_catalog("s3://plan-wh/wh"))
    with pytest.raises(NoSuchIcebergTableError) as e:
        open_plan(catalog, None, route)  # type: ignore[arg-type]  # no ledger: it is never reached
    print(e.value)
    assert catalog.calls == ["load_table"]
