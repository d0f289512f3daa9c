"""The moto server subprocess works for S3 / Glue / DynamoDB / SQS and catches lost commits.

One server for the module; every test starts from a reset moto.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from tests.support.moto_server import MotoServer, reset

BUCKET = "lake"
DATABASE = "analytics"
REGION = "us-east-1"

ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("writer", pa.string())])


pytestmark = pytest.mark.usefixtures("clean_aws")  # every test: a reset moto, aws_env set


def _client(moto: MotoServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _catalog(moto: MotoServer) -> GlueCatalog:
    ep = moto.endpoint
    return GlueCatalog(
        "glue",
        **{
            "glue.endpoint": ep,
            "glue.region": REGION,
            "glue.access-key-id": "testing",
            "glue.secret-access-key": "testing",
            "s3.endpoint": ep,
            "s3.region": REGION,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "warehouse": f"s3://{BUCKET}/wh",
        },
    )


@pytest.fixture
def iceberg_table(moto: MotoServer) -> str:
    """Bucket + Glue database + empty Iceberg table; returns its identifier."""
    _client(moto, "s3").create_bucket(Bucket=BUCKET)
    _client(moto, "glue").create_database(DatabaseInput={"Name": DATABASE})
    identifier = f"{DATABASE}.events"
    table = _catalog(moto).create_table(identifier, schema=ARROW_SCHEMA)
    assert table.location().startswith(f"s3://{BUCKET}/wh/")
    return identifier


def _rows(writer: str, n: int) -> pa.Table:
    return pa.table({"id": list(range(n)), "writer": [writer] * n}, schema=ARROW_SCHEMA)


def _append(table: Table, rows: pa.Table) -> None:
    """Append; if pyiceberg gives up on a conflict, reload and append once more."""
    try:
        table.append(rows)
    except CommitFailedException:
        table.refresh()
        table.append(rows)


def _row_counts(moto: MotoServer, identifier: str) -> dict[str, int]:
    data = _catalog(moto).load_table(identifier).scan().to_arrow()
    counts: dict[str, int] = {}
    for writer in data.column("writer").to_pylist():
        counts[writer] = counts.get(writer, 0) + 1
    return counts


def test_two_table_objects_at_same_version_lose_no_commit(
    moto: MotoServer, iceberg_table: str
) -> None:
    catalog = _catalog(moto)
    first = catalog.load_table(iceberg_table)
    second = catalog.load_table(iceberg_table)
    assert first.metadata_location == second.metadata_location

    first.append(_rows("first", 3))
    _append(second, _rows("second", 2))  # stale: must conflict, then retry

    assert _row_counts(moto, iceberg_table) == {"first": 3, "second": 2}
    assert len(catalog.load_table(iceberg_table).snapshots()) == 2


def test_glue_version_lock_catches_race_between_read_and_update(
    moto: MotoServer, iceberg_table: str
) -> None:
    """Writer B reads the Glue table, writer A commits, then B calls UpdateTable.

    Iceberg requirements cannot catch this (B validated against the state it
    read); only Glue's VersionId check can. Without the server patch B's update
    would overwrite A's metadata_location and A's rows would vanish.
    """
    catalog_a = _catalog(moto)
    catalog_b = _catalog(moto)
    original_update = catalog_b._update_glue_table
    conflicts: list[CommitFailedException] = []

    def racing_update(**kwargs: Any) -> None:
        if not conflicts:
            catalog_a.load_table(iceberg_table).append(_rows("a", 4))
        try:
            original_update(**kwargs)
        except CommitFailedException as e:
            conflicts.append(e)
            raise

    catalog_b._update_glue_table = racing_update  # type: ignore[method-assign]
    _append(catalog_b.load_table(iceberg_table), _rows("b", 5))

    assert len(conflicts) == 1
    cause = conflicts[0].__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "ConcurrentModificationException"
    assert _row_counts(moto, iceberg_table) == {"a": 4, "b": 5}


def test_update_table_with_stale_version_id_is_rejected(moto: MotoServer) -> None:
    glue = _client(moto, "glue")
    glue.create_database(DatabaseInput={"Name": DATABASE})
    glue.create_table(DatabaseName=DATABASE, TableInput={"Name": "t", "Description": "v1"})

    def version() -> str:
        return glue.get_table(DatabaseName=DATABASE, Name="t")["Table"]["VersionId"]

    v1 = version()
    glue.update_table(
        DatabaseName=DATABASE, TableInput={"Name": "t", "Description": "v2"}, VersionId=v1
    )
    v2 = version()
    assert int(v2) == int(v1) + 1

    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        glue.update_table(
            DatabaseName=DATABASE, TableInput={"Name": "t", "Description": "stale"}, VersionId=v1
        )
    table = glue.get_table(DatabaseName=DATABASE, Name="t")["Table"]
    assert (table["VersionId"], table["Description"]) == (v2, "v2")

    # No VersionId: unconditional update, and the version still advances.
    glue.update_table(DatabaseName=DATABASE, TableInput={"Name": "t", "Description": "v3"})
    assert int(version()) == int(v2) + 1
    glue.update_table(
        DatabaseName=DATABASE, TableInput={"Name": "t", "Description": "v4"}, VersionId=version()
    )
    assert int(version()) == int(v2) + 2


def test_default_clients_from_aws_env_reach_s3_dynamodb_sqs(moto: MotoServer) -> None:
    # No endpoint_url / credentials: everything comes from aws_env() via the environment.
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"

    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="locks",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="locks", Item={"pk": {"S": "x"}})
    assert ddb.get_item(TableName="locks", Key={"pk": {"S": "x"}})["Item"]["pk"]["S"] == "x"

    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="m")
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in messages] == ["m"]

    reset(moto.endpoint)
    assert s3.list_buckets()["Buckets"] == []
    assert ddb.list_tables()["TableNames"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
