"""The AWS adapters one by one (moto server), plus their pure helpers."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute.aws.catalog import catalog_properties
from lakeroute.aws.config import AwsConfig
from lakeroute.aws.duckdb_s3 import duckdb_s3_setup
from lakeroute.aws.ledger import DynamoLedger
from lakeroute.aws.reference import reference_route, reference_sql
from lakeroute.aws.route_store import DynamoRouteStore
from lakeroute.aws.route_sync import sync_route_items
from lakeroute.aws.s3_quarantine import S3Quarantine
from lakeroute.aws.s3_source import S3ObjectSource
from lakeroute.core.errors import ConfigError, ObjectError
from lakeroute.core.ledger import Mark
from lakeroute.core.pipeline import ObjectRef
from lakeroute.core.read.engine import Engine
from lakeroute.core.routes import Route

from tests.support.aws_lake import dynamodb_table
from tests.support.moto_server import MotoServer

BUCKET = "lr-adapters"


@pytest.fixture
def aws(clean_aws: MotoServer) -> MotoServer:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return clean_aws


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- S3 objects


def test_resolve_uses_etag_or_version_id_and_user_metadata(aws: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    source = S3ObjectSource(s3, tmp_dir=str(tmp_path))
    s3.put_object(Bucket=BUCKET, Key="a b.csv", Body=b"x\n1\n", Metadata={"dataset": "orders"})
    obj = source.resolve(BUCKET, "a b.csv", "0" * 32)  # a stale ETag: the current version is read
    etag = s3.head_object(Bucket=BUCKET, Key="a b.csv")["ETag"].strip('"')
    assert (obj.version, obj.size, obj.metadata, obj.path) == (
        etag, 4, {"dataset": "orders"}, f"s3://{BUCKET}/a b.csv")
    # unversioned: an upload is the ETag plus the LastModified second (key-oriented modes)
    modified = s3.head_object(Bucket=BUCKET, Key="a b.csv")["LastModified"]
    assert obj.upload == modified.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert obj.upload_id == f"{BUCKET}/a b.csv@{etag}#{obj.upload}" and obj.ledger_id("append") == obj.source_id

    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="v.csv", Body=b"x\n1\n")["VersionId"]
    v2 = s3.put_object(Bucket=BUCKET, Key="v.csv", Body=b"x\n22\n")["VersionId"]
    old = source.fetch(source.resolve(BUCKET, "v.csv", v1))
    new = source.fetch(source.resolve(BUCKET, "v.csv", None))
    assert (old.version, new.version) == (v1, v2)
    assert old.upload == "" and old.ledger_id("replace") == f"{BUCKET}/v.csv@{v1}"  # a version id is per upload
    assert Path(old.path).read_bytes() == b"x\n1\n"  # the announced version, not the latest
    assert Path(new.path).read_bytes() == b"x\n22\n"
    for o in (old, new):
        source.release(o)
        assert not Path(o.path).exists()

    with pytest.raises(ObjectError, match="not found"):
        source.resolve(BUCKET, "missing.csv")


def test_fetch_keeps_compression_suffix_and_duckdb_reads_it(aws: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="refunds/ä [1]?.csv.gz", Body=gzip.compress(b"id;r\n1;x\n2;y\n"))
    source = S3ObjectSource(s3, reader="download", tmp_dir=str(tmp_path))
    obj = source.fetch(source.resolve(BUCKET, "refunds/ä [1]?.csv.gz"))
    assert obj.path.endswith(".csv.gz") and obj.path.startswith(source.dir)
    route = Route.model_validate({"name": "r", "source": {"bucket": BUCKET, "options": {"delim": ";"}},
                                  "target": {"table": "a.b"}})
    with Engine().run(route, obj) as reader:
        assert reader.read_all().to_pydict() == {"id": [1, 2], "r": ["x", "y"]}
    source.release(obj)


def test_metadata_reads_only_the_parquet_footer(aws: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    big_meta = {"sensor_type": "humidity", "padding": "x" * 100_000}  # footer > first ranged GET
    s3.put_object(Bucket=BUCKET, Key="r/h.parquet", Metadata={"site": "north"},
                  Body=_parquet(pa.table({"v": [1.0]}).replace_schema_metadata(big_meta)))
    s3.put_object(Bucket=BUCKET, Key="r/bad.parquet", Body=b"garbage, not parquet")
    source = S3ObjectSource(s3, tmp_dir=str(tmp_path))
    meta = source.metadata(source.resolve(BUCKET, "r/h.parquet"))
    assert meta["sensor_type"] == "humidity" and meta["site"] == "north"
    assert len(meta["padding"]) == 100_000 and "ARROW:schema" not in meta
    with pytest.raises(ObjectError, match="not a Parquet file"):
        source.metadata(source.resolve(BUCKET, "r/bad.parquet"))


def test_httpfs_refuses_keys_it_cannot_address(aws: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="x[1].parquet", Body=b"...")
    source = S3ObjectSource(s3, reader="httpfs", tmp_dir=str(tmp_path))
    with pytest.raises(ObjectError, match=r"cannot address a key containing \[ \]"):
        source.fetch(source.resolve(BUCKET, "x[1].parquet"))


def test_quarantine_is_idempotent_per_version(aws: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lr-q")
    s3.put_object(Bucket=BUCKET, Key="d/bad.json", Body=b"{oops")
    quarantine = S3Quarantine("s3://lr-q/q", s3)
    obj = S3ObjectSource(s3, tmp_dir=str(tmp_path)).resolve(BUCKET, "d/bad.json")
    where = quarantine.put(BUCKET, "d/bad.json", obj, ObjectError("read", "first", "r"), "ns.t")
    entry = where.removeprefix("s3://lr-q/")
    assert entry.startswith("q/lr-adapters/d/bad.json/~v=")
    first = s3.head_object(Bucket="lr-q", Key=f"{entry}/object.json")["LastModified"]
    quarantine.put(BUCKET, "d/bad.json", obj, ObjectError("read", "second", "r"), "ns.t")
    assert s3.head_object(Bucket="lr-q", Key=f"{entry}/object.json")["LastModified"] == first
    record = json.loads(s3.get_object(Bucket="lr-q", Key=f"{entry}/error.json")["Body"].read())
    assert (record["message"], record["version"], record["attempts"]) == ("second", obj.version, 2)
    assert (record["bucket"], record["key"], record["route"], record["table"]) == (BUCKET, "d/bad.json", "r", "ns.t")
    assert record["object_copied"] is True and record["first_quarantined_at"] <= record["quarantined_at"]
    # no object (e.g. not found): only the record
    where = quarantine.put(BUCKET, "gone.csv", None, ObjectError("read", "not found"))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lr-q")["Contents"]}
    assert where == "s3://lr-q/q/lr-adapters/gone.csv/~unresolved"
    assert {k for k in keys if "gone.csv" in k} == {"q/lr-adapters/gone.csv/~unresolved/error.json"}


# ---------------------------------------------------------------- ledger


def test_dynamo_ledger(aws: MotoServer) -> None:
    dynamodb_table("lr-ledger", "pk", "sk")
    ledger = DynamoLedger("lr-ledger", ttl_days=7)
    long_id = f"{BUCKET}/{'k' * 1100}@etag"
    ids = [f"{BUCKET}/f{i}.csv@e{i}" for i in range(130)] + [long_id]
    assert ledger.committed("ns.t", "u1", ids) == {}
    assert ledger.watermark("ns.t", "u1") is None
    ledger.record("ns.t", "u1", [(s, 42, 7, "route-a") for s in ids[::2]] + [(long_id, 42, 7, "route-a")],
                  Mark(42, frozenset({41})))
    assert ledger.committed("ns.t", "u1", ids + ids[:3]) == dict.fromkeys(set(ids[::2]) | {long_id}, (42, 7))
    assert ledger.committed("ns.t", "u2", ids) == {}, "another table UUID (a recreated table) holds nothing"
    assert ledger.committed("ns.other", "u1", ids) == {}
    assert ledger.watermark("ns.t", "u1") == Mark(42, frozenset({41}))
    assert ledger.watermark("ns.t", "u2") is None
    ledger.record("ns.t", "u1", [], Mark(2**63 - 1))
    assert ledger.watermark("ns.t", "u1") == Mark(2**63 - 1)
    item = boto3.client("dynamodb").get_item(
        TableName="lr-ledger", Key={"pk": {"S": "ns.t"}, "sk": {"S": DynamoLedger.sort_key(long_id)}})["Item"]
    assert item["source_id"]["S"] == long_id and "expires_at" in item


# ---------------------------------------------------------------- routes


def _route(name: str, bucket: str, prefix: str = "", **source: Any) -> Route:
    return Route.model_validate({"name": name, "source": {"bucket": bucket, "prefix": prefix, **source},
                                 "target": {"table": "ns.t"}})


def test_route_store_one_query_per_bucket_cached_with_ttl(aws: MotoServer) -> None:
    dynamodb_table("lr-routes", "bucket", "name")
    routes = [_route("a", "b-one", "x/"), _route("b", "b-one", "y/", format="csv", options={"delim": ";", "x": 0.5}),
              _route("c", "b-two")]
    assert sync_route_items("lr-routes", [r.to_item() for r in routes]) == [
        "added route a (s3://b-one/x/ -> ns.t)", "added route b (s3://b-one/y/ -> ns.t)",
        "added route c (s3://b-two/ -> ns.t)"]
    now = [0.0]
    store = DynamoRouteStore("lr-routes", ttl=30, clock=lambda: now[0])
    refs = [ObjectRef("b-one", "x/1.csv"), ObjectRef("b-one", "y/2.csv"), ObjectRef("b-two", "z"),
            ObjectRef("b-none", "q")]
    table = store.route_table(refs)
    assert store.lookups == 3  # one Query per bucket, however many objects
    assert table.match("b-one", "y/2.csv") == routes[1]  # options survive DynamoDB numbers
    assert table.match("b-two", "anything").name == "c"
    store.route_table(refs)
    assert store.lookups == 3
    now[0] = 31
    store.route_table(refs[:1])
    assert store.lookups == 4
    assert sync_route_items("lr-routes", [r.to_item() for r in routes]) == ["3 routes unchanged in lr-routes"]


def test_route_store_honours_reference_design_items(aws: MotoServer) -> None:
    dynamodb_table("lr-routes", "bucket", "name")
    dynamodb_table("lr-ref", "PartitionKey")
    ddb = boto3.client("dynamodb")
    sync_route_items("lr-routes", [_route("native", "shared", "native/").to_item()])
    for pk, table in (("shared", "legacy.everything"), ("clicks", "legacy.clicks")):
        ddb.put_item(TableName="lr-ref", Item={
            "PartitionKey": {"S": pk}, "target_table": {"S": table},
            "query_sql": {"S": "SELECT * FROM read_parquet('{s3_input_path}')"}})
    # a reference-shaped item stored in the routing table itself
    ddb.put_item(TableName="lr-routes", Item={
        "bucket": {"S": "old-bucket"}, "name": {"S": "legacy"}, "target_table": {"S": "legacy.old"},
        "query_sql": {"S": "SELECT *, {s3_input_path} AS p FROM '{s3_input_path}'"}})
    store = DynamoRouteStore("lr-routes", reference_table="lr-ref")
    refs = [ObjectRef("shared", "native/a.parquet"), ObjectRef("shared", "clicks/b.parquet"),
            ObjectRef("shared", "c.parquet"), ObjectRef("old-bucket", "d.parquet")]
    table = store.route_table(refs)
    assert table.match("shared", "native/a.parquet").name == "native"
    assert table.match("shared", "clicks/b.parquet").target.table == "legacy.clicks"
    assert table.match("shared", "c.parquet").target.table == "legacy.everything"
    old = table.match("old-bucket", "d.parquet")
    assert (old.target.table, old.sql) == (
        "legacy.old", "SELECT *, getvariable('source_uri') AS p FROM source")
    lookups = store.lookups
    store.route_table(refs)
    assert store.lookups == lookups  # misses and hits are cached alike


@pytest.mark.parametrize(("query", "sql", "fmt", "options"), [
    ("SELECT * FROM read_parquet('{s3_input_path}')", "SELECT * FROM source", "parquet", {}),
    ("select a from READ_PARQUET( \"{s3_input_path}\" , hive_partitioning = false)",
     "select a from source", "parquet", {"hive_partitioning": False}),
    ("SELECT * FROM read_csv_auto('{s3_input_path}', delim=';', header=true, skip := 2)",
     "SELECT * FROM source", "csv", {"delim": ";", "header": True, "skip": 2}),
    ("SELECT * FROM read_json('{s3_input_path}', format='newline_delimited')",
     "SELECT * FROM source", "json", {"format": "newline_delimited"}),
    ("SELECT *, '{s3_input_path}' AS src FROM '{s3_input_path}' WHERE x = '{{a}}'",
     "SELECT *, getvariable('source_uri') AS src FROM source WHERE x = '{a}'", "auto", {}),
    ("SELECT {s3_input_path} AS p FROM parquet_scan('{s3_input_path}') s JOIN '{s3_input_path}' t USING (id)",
     "SELECT getvariable('source_uri') AS p FROM source s JOIN source t USING (id)", "parquet", {}),
])
def test_reference_sql_binds_the_path(query: str, sql: str, fmt: str, options: dict[str, Any]) -> None:
    assert reference_sql(query, "item") == (sql, fmt, options)


@pytest.mark.parametrize(("query", "error"), [
    ("SELECT * FROM read_parquet('{s3_input_path}') WHERE d = '{date}'", "unknown placeholder {date}"),
    ("SELECT * FROM read_csv('{s3_input_path}', columns={{'a': 'INT'}})", "cannot translate reader options"),
    ("SELECT * FROM read_csv('{s3_input_path}', columns={'a': 'INT'})", "unknown placeholder"),
    ("SELECT * FROM read_parquet('{s3_input_path}') UNION ALL SELECT * FROM read_csv('{s3_input_path}')",
     "different readers"),
    ("SELECT '{unclosed", "query_sql"),
])
def test_reference_sql_rejects_what_it_cannot_translate(query: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        reference_sql(query, "item")


def test_reference_route_bucket_and_folder_routing() -> None:
    item = {"target_table": "legacy.t", "query_sql": "SELECT * FROM read_parquet('{s3_input_path}')"}
    bucket_route = reference_route({**item, "PartitionKey": "my-bucket"}, "my-bucket")
    folder_route = reference_route({**item, "PartitionKey": "Sales Data"}, "my-bucket")
    assert (bucket_route.source.prefix, folder_route.source.prefix) == ("", "Sales Data/")
    assert folder_route.name.startswith("ref-sales-data-") and bucket_route.name != folder_route.name
    assert folder_route.sql == "SELECT * FROM source" and folder_route.source.format == "parquet"


# ---------------------------------------------------------------- configuration


def test_config_from_env_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as e:
        AwsConfig.from_env({"LAKEROUTE_WAREHOUSE": "/local", "LAKEROUTE_QUARANTINE": "s3://q",
                            "LAKEROUTE_READER": "mmap", "LAKEROUTE_ROUTES_TTL_SECONDS": "soon"})
    text = str(e.value)
    for part in ("LAKEROUTE_ROUTES_TABLE is not set", "LAKEROUTE_LEDGER_TABLE is not set",
                 "LAKEROUTE_WAREHOUSE='/local' must be s3://", "LAKEROUTE_READER='mmap'",
                 "LAKEROUTE_ROUTES_TTL_SECONDS='soon' is not a number"):
        assert part in text
    config = AwsConfig.from_env({
        "LAKEROUTE_ROUTES_TABLE": "r", "LAKEROUTE_LEDGER_TABLE": "l", "LAKEROUTE_WAREHOUSE": "s3://w/p/",
        "LAKEROUTE_QUARANTINE": "s3://q/x", "ROUTING_TABLE": "ref", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "LAKEROUTE_FAIL_QUARANTINED": "no"})
    assert (config.warehouse, config.catalog, config.reference_table, config.duckdb_memory,
            config.fail_quarantined, config.reader) == ("s3://w/p", "glue", "ref", "1024MB", False, "auto")


def test_endpoints_and_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2",
                       "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
                       "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    props = catalog_properties("s3://w/p")
    assert props["glue.endpoint"] == "http://127.0.0.1:1" and props["s3.endpoint"] == "http://127.0.0.1:2"
    assert (props["s3.region"], props["glue.session-token"]) == ("eu-west-1", "t")
    ((stmt, params),) = duckdb_s3_setup()
    assert "?" in stmt and "'" not in stmt  # every value bound
    assert params == ["k", "s", "t", "eu-west-1", "127.0.0.1:2", "path", False]


# ---------------------------------------------------------------- custom resource / direct invoke


def test_custom_resource_on_event_syncs_routes(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakeroute.sync import on_event

    dynamodb_table("lr-routes", "bucket", "name")
    boto3.client("s3").create_bucket(Bucket="lr-wh")
    monkeypatch.setenv("LAKEROUTE_ROUTES_TABLE", "lr-routes")
    monkeypatch.setenv("LAKEROUTE_WAREHOUSE", "s3://lr-wh/wh")
    route = Route.model_validate({"name": "t", "source": {"bucket": "b-one"},
                                  "target": {"table": "ns.t", "columns": {"a": "long"}}})
    event = {"RequestType": "Create", "ResourceProperties": {"Routes": json.dumps([route.to_item()])}}
    assert on_event(event, None)["Data"] == {"Routes": "1"}
    assert boto3.client("glue").get_table(DatabaseName="ns", Name="t")["Table"]["Name"] == "t"
    assert on_event({"RequestType": "Delete", "PhysicalResourceId": "p"}, None) == {"PhysicalResourceId": "p"}


def test_direct_invocation_raises_when_an_object_fails(aws: MotoServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dynamodb_table("lr-routes", "bucket", "name")
    dynamodb_table("lr-ledger", "pk", "sk")
    s3 = boto3.client("s3")
    for bucket in ("lr-wh", "lr-q"):
        s3.create_bucket(Bucket=bucket)
    for key, value in {"LAKEROUTE_ROUTES_TABLE": "lr-routes", "LAKEROUTE_LEDGER_TABLE": "lr-ledger",
                       "LAKEROUTE_WAREHOUSE": "s3://lr-wh/wh", "LAKEROUTE_QUARANTINE": "s3://lr-q/q",
                       "LAKEROUTE_TMP": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    lambda_handler.reset_runtime()
    s3.put_object(Bucket=BUCKET, Key="nothing routes here.csv", Body=b"a\n1\n")
    event = json.loads((Path(__file__).parent.parent / "events" / "s3_direct.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    event["Records"][0]["s3"]["object"] = {"key": "nothing+routes+here.csv", "size": 4, "eTag": "x" * 32}
    try:
        with pytest.raises(lambda_handler.BatchFailed, match="1 item"):
            lambda_handler.handler(event, None)
    finally:
        lambda_handler.reset_runtime()
    assert [f for _, _, files in os.walk(tmp_path / "lakeroute-objects") for f in files] == []


def test_download_folders_of_dead_processes_are_removed(aws: MotoServer, tmp_path: Path) -> None:
    stale = tmp_path / "lakeroute-objects" / "999999999"
    stale.mkdir(parents=True)
    (stale / "leftover.parquet").write_bytes(b"x")
    source = S3ObjectSource(boto3.client("s3"), tmp_dir=str(tmp_path))
    assert not stale.exists() and Path(source.dir).name == str(os.getpid())
