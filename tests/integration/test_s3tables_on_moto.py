"""S3 Tables as a stage's catalog, on a moto server (its S3 Tables API, the table storage in its
S3): the catalog itself (``aws.s3tables``), the deploy-time sync creating tables and
configuring S3 Tables' maintenance, the scheduled maintenance leaving compaction and
unreferenced files to S3 Tables, and exactly once after snapshots expire behind lakeroute's
back (as S3 Tables' own snapshot management does).

The write modes, redelivery, quarantine, the lane, the stage commands and the sweep run on
S3 Tables in their own modules (parametrised ``catalog_kind``)."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute import maintain as lambda_maintain
from lakeroute.aws.catalog import s3tables_catalog
from lakeroute.aws.s3tables import S3TablesCatalog
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment, s3_notification
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

LANDING = "s3t-landing"
DEPLOYMENT = Deployment(routes_table="s3t-routes", ledger_table="s3t-ledger", warehouse_bucket="s3t-wh",
                        quarantine_bucket="s3t-quarantine", metrics_namespace="lakeroute-s3t",
                        catalog="s3tables", table_bucket="s3t-tables")
ROUTES = {
    "orders.yaml": """
        name: orders
        source: {bucket: s3t-landing, prefix: orders/}
        target:
          table: shop.orders
          columns: {id: long, _source_key: string}
          maintenance: {target_file_mb: 1000, keep_snapshots: 5, keep_days: 2}
        sql: SELECT id, getvariable('source_key') AS _source_key FROM source
        """,
    "events.yaml": """
        name: events
        source: {bucket: s3t-landing, prefix: events/}
        target: {table: shop.events, columns: {id: long}, maintenance: {target_file_mb: 16}}
        sql: SELECT id FROM source
        """,
}
SCHEMA = pa.schema([("id", pa.int64())])


class Lake(MotoLake):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, DEPLOYMENT, [LANDING])
        self.routes_dir = tmp / "routes"
        self.routes_dir.mkdir()
        for name, text in ROUTES.items():
            (self.routes_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")

    def sync(self) -> list[str]:
        return sync_aws(load_routes(self.routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)

    def put(self, key: str, *ids: int) -> dict[str, Any]:
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64())}), buf)
        put = self.s3.put_object(Bucket=LANDING, Key=key, Body=buf.getvalue())
        return s3_notification(LANDING, key, put, len(buf.getvalue()))

    def ingest(self, *notifications: dict[str, Any]) -> dict[str, Any]:
        records = [{"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": __import__("json").dumps(n),
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "awsRegion": "us-east-1"}
                   for i, n in enumerate(notifications)]
        return lambda_handler.handler({"Records": records}, LambdaContext("req", 120_000))

    def maintenance(self, name: str) -> dict[str, Any]:
        namespace, _, table = name.partition(".")
        got = boto3.client("s3tables").get_table_maintenance_configuration(
            tableBucketARN=DEPLOYMENT.table_bucket_arn, namespace=namespace, name=table)
        return dict(got["configuration"])


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    with handler_environment(DEPLOYMENT, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path)


@pytest.fixture
def catalog(lake: Lake) -> S3TablesCatalog:
    cat = lake.catalog()
    assert isinstance(cat, S3TablesCatalog)
    return cat


# ---------------------------------------------------------------- the catalog


def test_tables_live_in_the_table_bucket_storage_and_round_trip(lake: Lake, catalog: S3TablesCatalog) -> None:
    catalog.create_namespace("shop")
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace("shop")
    assert catalog.list_namespaces() == [("shop",)] and catalog.namespace_exists("shop")
    assert not catalog.namespace_exists("nope")
    table = catalog.create_table("shop.orders", schema=SCHEMA)
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table("shop.orders", schema=SCHEMA)
    # the table's storage is the location S3 Tables gave it; the first metadata is registered
    got = boto3.client("s3tables").get_table_metadata_location(
        tableBucketARN=DEPLOYMENT.table_bucket_arn, namespace="shop", name="orders")
    assert table.location() == got["warehouseLocation"] and got["metadataLocation"] == table.metadata_location
    table.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    loaded = catalog.load_table("shop.orders")
    assert loaded.scan().to_arrow()["id"].to_pylist() == [1, 2]
    assert loaded.metadata_location == boto3.client("s3tables").get_table_metadata_location(
        tableBucketARN=DEPLOYMENT.table_bucket_arn, namespace="shop", name="orders")["metadataLocation"]
    assert catalog.list_tables("shop") == [("shop", "orders")]
    assert not catalog.table_exists("shop.missing")
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_tables("nope")
    catalog.drop_table("shop.orders")
    with pytest.raises(NoSuchTableError):
        catalog.load_table("shop.orders")


def test_names_s3_tables_refuse_are_refused_before_any_call(catalog: S3TablesCatalog) -> None:
    with pytest.raises(ConfigError, match="lowercase letters, digits and underscores"):
        catalog.create_namespace("Sales-EU")
    with pytest.raises(ConfigError, match="table name 'order-lines'"):
        catalog.create_table("shop.order-lines", schema=SCHEMA)
    with pytest.raises(ValueError, match="not a table bucket ARN"):
        s3tables_catalog("s3://not-an-arn")


class RacingClient:
    """The real s3tables client, with another writer's commit landing just before our
    ``UpdateTableMetadataLocation`` (after we read the version token): the race S3 Tables
    guards with the token."""

    def __init__(self, client: Any, race: Any) -> None:
        self.client, self.race = client, race
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_table_metadata_location(self, **kwargs: Any) -> Any:
        race, self.race = self.race, None
        self.sent.append(kwargs["metadataLocation"])
        if race is not None:
            race()
        return self.client.update_table_metadata_location(**kwargs)


def test_a_commit_that_lost_the_race_fails_and_leaves_no_metadata_file(lake: Lake,
                                                                          catalog: S3TablesCatalog) -> None:
    catalog.create_namespace("shop")
    table = catalog.create_table("shop.orders", schema=SCHEMA)
    other = lake.catalog()
    client = RacingClient(catalog.client, lambda: other.load_table("shop.orders").append(
        pa.table({"id": pa.array([2], pa.int64())})))
    racing = S3TablesCatalog("lakeroute", client=client, **catalog.properties)
    mine = racing.load_table("shop.orders")
    with pytest.raises(CommitFailedException, match="version token"):
        mine.transaction().set_properties(mine="1").commit_transaction()
    current = catalog.load_table("shop.orders")
    assert current.scan().to_arrow()["id"].to_pylist() == [2] and "mine" not in current.properties
    # the loser's metadata file stays unreferenced: S3 Tables storage refuses DeleteObject and
    # ListObjects (moto answers MethodNotAllowed, as the service does); S3 Tables' unreferenced
    # file removal takes it
    [lost] = client.sent
    bucket, _, key = lost.removeprefix("s3://").partition("/")
    assert bucket == table.location().removeprefix("s3://") and lost != current.metadata_location
    with pytest.raises(lake.s3.exceptions.ClientError, match="MethodNotAllowed"):
        lake.s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(lake.s3.exceptions.ClientError, match="MethodNotAllowed"):
        lake.s3.delete_object(Bucket=bucket, Key=key)
    # retried on the new token, the same change commits
    assert racing.load_table("shop.orders").transaction().set_properties(mine="1").commit_transaction()
    assert catalog.load_table("shop.orders").properties["mine"] == "1"


def test_a_table_created_for_a_first_commit_that_never_came_is_absent_then_reused(
        catalog: S3TablesCatalog) -> None:
    """lakeroute stages an undeclared table's first rows before its first commit: the table is
    created in S3 Tables for its storage; an object quarantined before the commit leaves it
    without metadata, which counts as no table, and the next first commit uses it."""
    from pyiceberg.table import CreateTableTransaction

    catalog.create_namespace("shop")
    staged = catalog._create_staged_table("shop.later", SCHEMA)
    assert not catalog.table_exists("shop.later")
    again = catalog._create_staged_table("shop.later", SCHEMA)
    assert again.location() == staged.location()
    txn = CreateTableTransaction(again)
    txn.append(pa.table({"id": pa.array([7], pa.int64())}))
    txn.commit_transaction()
    assert catalog.load_table("shop.later").scan().to_arrow()["id"].to_pylist() == [7]


# ---------------------------------------------------------------- sync and maintenance


def test_sync_creates_the_tables_and_configures_s3_tables_maintenance(lake: Lake) -> None:
    boto3.client("s3tables").create_namespace(tableBucketARN=DEPLOYMENT.table_bucket_arn, namespace=["shop"])
    lines = lake.sync()
    assert "created table shop.orders" in lines and "created table shop.events" in lines
    # target_file_mb brought into S3 Tables' 64-512 MB; keep_days in hours
    assert lake.maintenance("shop.orders") == {
        "icebergCompaction": {"status": "enabled", "settings": {"icebergCompaction": {"targetFileSizeMB": 512}}},
        "icebergSnapshotManagement": {"status": "enabled", "settings": {"icebergSnapshotManagement": {
            "minSnapshotsToKeep": 5, "maxSnapshotAgeHours": 48}}}}
    events = lake.maintenance("shop.events")
    assert events["icebergCompaction"]["settings"]["icebergCompaction"] == {"targetFileSizeMB": 64}
    assert events["icebergSnapshotManagement"]["settings"]["icebergSnapshotManagement"] == {
        "minSnapshotsToKeep": 20, "maxSnapshotAgeHours": 168}
    assert not [line for line in lake.sync() if "maintenance" in line]  # unchanged: nothing put again


def test_sync_of_a_name_s3_tables_refuse_is_a_config_error(lake: Lake) -> None:
    (lake.routes_dir / "bad.yaml").write_text(textwrap.dedent("""
        name: bad
        source: {bucket: s3t-landing, prefix: bad/}
        target: {table: shop.OrderLines, columns: {id: long}}
        sql: SELECT id FROM source
        """), encoding="utf-8")
    with pytest.raises(ConfigError, match="table name 'OrderLines' is not valid: rename it"):
        lake.sync()


def test_scheduled_maintenance_expires_but_leaves_compaction_and_orphans_to_s3_tables(lake: Lake) -> None:
    lake.sync()
    for i in range(4):
        assert lake.ingest(lake.put(f"events/{i}.parquet", i)) == {"batchItemFailures": []}
    table = lake.table("shop.events")
    data_files = {t.file.file_path for t in table.scan().plan_files()}
    assert len(data_files) == 4  # small files: S3 Tables' compaction would merge them, not lakeroute
    orphan = table.location().removeprefix("s3://") + "/data/orphan.parquet"
    bucket, _, key = orphan.partition("/")
    lake.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    job = lambda_maintain.build_job()
    assert job.managed
    job.settings["shop.events"] = job.settings["shop.events"].model_copy(update={"keep_snapshots": 1,
                                                                                "auto_expire": False})
    reports, unfinished = job.run()
    assert not unfinished and not [r.error for r in reports if r.error]
    [report] = [r for r in reports if r.table == "shop.events"]
    assert report.compaction is None and report.orphans == 0 and report.snapshots_expired == 3
    assert {t.file.file_path for t in lake.table("shop.events").scan().plan_files()} == data_files
    assert lake.s3.head_object(Bucket=bucket, Key=key)  # left to S3 Tables' unreferenced file removal
    assert lake.maintenance("shop.events")["icebergSnapshotManagement"]["settings"][
        "icebergSnapshotManagement"]["minSnapshotsToKeep"] == 1


# ---------------------------------------------------------------- exactly once


def test_redelivery_after_snapshots_expired_behind_lakeroutes_back_is_still_exactly_once(lake: Lake) -> None:
    """S3 Tables' snapshot management expires snapshots without archiving lakeroute's summaries:
    simulated by expiring with PyIceberg directly. The ledger recorded each commit's sources
    when it committed and counts an expired ancestor's: redelivered, nothing comes in twice."""
    lake.sync()
    first = [lake.put(f"orders/{i}.parquet", i) for i in range(3)]
    for n in first:
        assert lake.ingest(n) == {"batchItemFailures": []}
    table = lake.table("shop.orders")
    old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id != table.metadata.current_snapshot_id]
    assert len(old) == 2
    table.maintenance.expire_snapshots().by_ids(old).commit()
    table = lake.table("shop.orders")
    assert [s.snapshot_id for s in table.snapshots()] == [table.metadata.current_snapshot_id]
    assert lake.ingest(*first) == {"batchItemFailures": []}  # all three again, one batch
    after = lake.table("shop.orders")
    assert sorted(after.scan().to_arrow()["id"].to_pylist()) == [0, 1, 2]
    assert len(after.snapshots()) == 1
    # and a new object after the expiry still comes in (once)
    new = lake.put("orders/3.parquet", 3)
    assert lake.ingest(new) == {"batchItemFailures": []}
    assert lake.ingest(new) == {"batchItemFailures": []}
    assert sorted(lake.table("shop.orders").scan().to_arrow()["id"].to_pylist()) == [0, 1, 2, 3]


# ---------------------------------------------------------------- IAM enforced


def _role(iam: Any, name: str, trusted: str, actions: tuple[str, ...]) -> str:
    """A role with the stack's S3 Tables actions, readied for moto: moto authorizes s3tables
    calls by action against the resource ``*`` only (so the bucket/table scoping is proven by
    the CDK assertions, tests/infra/test_table_bucket.py), and the table storage's data calls
    as plain S3 (GetObject/PutObject on the storage bucket) where AWS authorizes
    s3tables:GetTableData/PutTableData on the table."""
    import json

    data = [a for a in ("s3:GetObject" if "s3tables:GetTableData" in actions else "",
                        "s3:PutObject" if "s3tables:PutTableData" in actions else "") if a]
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="s3tables", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": list(actions), "Resource": "*"},
            {"Effect": "Allow", "Action": data, "Resource": "arn:aws:s3:::*--table-s3/*"}]}))
    return str(arn)


def test_moto_enforces_iam_on_s3_tables_writes_only_and_the_stack_actions_suffice_there(lake: Lake) -> None:
    """What moto 5.2 can prove of the S3 Tables grants: it authorizes the POST/PUT calls
    (CreateTable, UpdateTableMetadataLocation) by action, and the stack's writer actions allow
    them while a role without one is refused. Its GET calls (GetNamespace,
    GetTableMetadataLocation, ...) fail SigV4 verification under auth even with valid
    credentials (SignatureDoesNotMatch), so the catalog cannot run end to end with IAM
    enforced: the scoping and the read set are proven by the CDK assertions instead."""
    from stacks.table_bucket import WRITE_ACTIONS
    from tests.support.iam import assume, client, iam_enforced, iam_user
    from tests.support.moto_server import REGION

    iam, admin = boto3.client("iam"), boto3.client("s3tables")
    arn = DEPLOYMENT.table_bucket_arn
    admin.create_namespace(tableBucketARN=arn, namespace=["shop"])
    tester, caller = iam_user(iam, "s3t-tester", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    writer = _role(iam, "s3t-writer", tester, WRITE_ACTIONS)
    no_update = _role(iam, "s3t-no-update", tester,
                      tuple(a for a in WRITE_ACTIONS if a != "s3tables:UpdateTableMetadataLocation"))
    endpoint = str(admin.meta.endpoint_url)
    with iam_enforced(endpoint):
        w = client("s3tables", endpoint, assume(endpoint, caller, writer, "writer", REGION), REGION)
        n = client("s3tables", endpoint, assume(endpoint, caller, no_update, "no-update", REGION), REGION)
        w.create_table(tableBucketARN=arn, namespace="shop", name="orders", format="ICEBERG")
        with pytest.raises(Exception, match="SignatureDoesNotMatch"):
            w.get_table_metadata_location(tableBucketARN=arn, namespace="shop", name="orders")
    got = admin.get_table_metadata_location(tableBucketARN=arn, namespace="shop", name="orders")
    location = got["warehouseLocation"] + "/metadata/00000-x.metadata.json"
    with iam_enforced(endpoint):
        with pytest.raises(Exception, match="AccessDenied|not authorized"):
            n.update_table_metadata_location(tableBucketARN=arn, namespace="shop", name="orders",
                                             versionToken=got["versionToken"], metadataLocation=location)
        w.update_table_metadata_location(tableBucketARN=arn, namespace="shop", name="orders",
                                         versionToken=got["versionToken"], metadataLocation=location)
    assert admin.get_table_metadata_location(tableBucketARN=arn, namespace="shop",
                                             name="orders")["metadataLocation"] == location


def test_maintain_on_an_s3_tables_stage_reconciles_and_expires_only(lake: Lake) -> None:
    """`lakeroute maintain` with the handler's environment (as with --stage): no compaction,
    no orphan listing (S3 Tables storage refuses it: without the split this run would fail)."""
    from lakeroute.cli import app
    from typer.testing import CliRunner

    lake.sync()
    for i in range(3):
        assert lake.ingest(lake.put(f"events/{i}.parquet", i)) == {"batchItemFailures": []}
    result = CliRunner().invoke(app, ["maintain", "shop.events", "--apply"])
    assert result.exit_code == 0, result.output
    assert "compaction:" not in result.stdout and "the catalog's own maintenance" in result.stdout
    assert "failed" not in result.stdout


def test_overwrite_partitions_and_table_through_the_handler(lake: Lake) -> None:
    """The write mode the e2e module does not cover on S3 Tables: overwrite (partitions, and
    table), partitioned and undeclared tables created by their first commit, redelivery skipped."""
    import json

    for name, target in (("daily", {"table": "shop.daily", "mode": "overwrite", "overwrite": "partitions",
                                     "partition_by": ["day"]}),
                         ("snap", {"table": "shop.snap", "mode": "overwrite", "overwrite": "table"})):
        (lake.routes_dir / f"{name}.yaml").write_text(json.dumps({
            "name": name, "source": {"bucket": LANDING, "prefix": f"{name}/"}, "target": target}), encoding="utf-8")
    lake.sync()

    def put(key: str, rows: list[tuple[int, int, str]]) -> dict[str, Any]:
        buf = io.BytesIO()
        pq.write_table(pa.table({"day": pa.array([r[0] for r in rows], pa.int64()),
                                 "id": pa.array([r[1] for r in rows], pa.int64()), "v": [r[2] for r in rows]}), buf)
        put = lake.s3.put_object(Bucket=LANDING, Key=key, Body=buf.getvalue())
        return s3_notification(LANDING, key, put, len(buf.getvalue()))

    first = put("daily/all.parquet", [(d, i, "old") for d in (1, 2, 3) for i in range(2)])
    assert lake.ingest(first) == {"batchItemFailures": []}
    again = put("daily/d2.parquet", [(2, 0, "new")])
    assert lake.ingest(again) == {"batchItemFailures": []}
    assert lake.ingest(again, first) == {"batchItemFailures": []}  # redelivered: nothing changes
    rows = sorted((r["day"], r["id"], r["v"]) for r in lake.table("shop.daily").scan().to_arrow().to_pylist())
    assert rows == [(1, 0, "old"), (1, 1, "old"), (2, 0, "new"), (3, 0, "old"), (3, 1, "old")]
    assert len(lake.table("shop.daily").snapshots()) == 2
    assert lake.ingest(put("snap/1.parquet", [(1, i, "a") for i in range(3)])) == {"batchItemFailures": []}
    assert lake.ingest(put("snap/2.parquet", [(1, 9, "b")])) == {"batchItemFailures": []}
    assert [(r["id"], r["v"]) for r in lake.table("shop.snap").scan().to_arrow().to_pylist()] == [(9, "b")]
