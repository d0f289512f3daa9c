"""The AWS side of the handler tests on a moto server (the ``clean_aws`` fixture first).

``Deployment`` names one stack's resources and gives the environment the handler reads them
from; ``handler_environment`` sets it for the handler run in this process; ``MotoLake``
creates the resources and turns SQS messages into the records Lambda hands the function.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3
from lakeroute import handler as lambda_handler
from lakeroute.aws.catalog import catalog_for

from tests.support.moto_server import REGION, MotoServer, aws_env

if TYPE_CHECKING:
    import pytest

ACCOUNT = "123456789012"  # moto's default account
# Handler settings a test must not inherit from outside (it sets those it means).
OUTSIDE_HANDLER_VARIABLES = ("LAKEROUTE_READER", "LAKEROUTE_REFERENCE_TABLE", "ROUTING_TABLE",
                             "LAKEROUTE_FAIL_QUARANTINED")


class LambdaContext:
    """The parts of the Lambda context the handler reads."""

    function_name = "lakeroute-ingest"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lakeroute-ingest"

    def __init__(self, request_id: str, remaining_ms: int) -> None:
        self.aws_request_id = request_id
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass(frozen=True)
class Deployment:
    """One stack's resource names, as the handler reads them from its environment."""

    routes_table: str
    ledger_table: str
    warehouse_bucket: str
    quarantine_bucket: str
    metrics_namespace: str
    reference_table: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    catalog: str = "glue"  # or s3tables: the tables in the S3 table bucket ``table_bucket``
    table_bucket: str = "lr-tables"

    @property
    def warehouse(self) -> str:
        return f"s3://{self.warehouse_bucket}/wh"

    @property
    def table_bucket_arn(self) -> str:
        return f"arn:aws:s3tables:{REGION}:{ACCOUNT}:bucket/{self.table_bucket}"

    def catalog_env(self) -> dict[str, str]:
        """What the functions of a stage with this catalog get (``stacks``: LAKEROUTE_CATALOG...)."""
        if self.catalog == "glue":
            return {}
        return {"LAKEROUTE_CATALOG": self.catalog, "LAKEROUTE_TABLE_BUCKET_ARN": self.table_bucket_arn}

    def with_catalog(self, catalog: str) -> Deployment:
        return dataclasses.replace(self, catalog=catalog)

    def env(self, endpoint: str, tmp: Path) -> dict[str, str]:
        """``aws_env`` plus the handler's variables; its scratch folder is ``tmp/lambda-tmp``."""
        reference = {"LAKEROUTE_REFERENCE_TABLE": self.reference_table} if self.reference_table else {}
        return {
            **aws_env(endpoint),
            "LAKEROUTE_ROUTES_TABLE": self.routes_table,
            "LAKEROUTE_LEDGER_TABLE": self.ledger_table,
            **reference,
            "LAKEROUTE_WAREHOUSE": self.warehouse,
            "LAKEROUTE_QUARANTINE": f"s3://{self.quarantine_bucket}/quarantine",
            "LAKEROUTE_TMP": str(tmp / "lambda-tmp"),
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            **self.catalog_env(),
            **self.extra_env,
        }


@contextlib.contextmanager
def handler_environment(deployment: Deployment, moto: MotoServer, tmp: Path,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The deployment's environment set (outside handler settings unset), its scratch folder
    made, and a fresh handler runtime, forgotten again on exit; yields the environment."""
    for key in OUTSIDE_HANDLER_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    env = deployment.env(moto.endpoint, tmp)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (tmp / "lambda-tmp").mkdir()
    lambda_handler.reset_runtime()
    try:
        yield env
    finally:
        lambda_handler.reset_runtime()


def dynamodb_table(name: str, *keys: str, client: Any = None) -> None:
    """An on-demand table with string keys: the first the hash key, a second the range key."""
    (client or boto3.client("dynamodb")).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"), strict=False)],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys])


def s3_notification(bucket: str, key: str, put: dict[str, Any], size: int) -> dict[str, Any]:
    """An S3 event notification for a ``put_object`` response, as S3 sends it (key form-encoded;
    versionId only in a versioned bucket)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": put["ETag"].strip('"'),
                           "sequencer": "0055AED6DCD90281E5"}
    if put.get("VersionId"):
        obj["versionId"] = put["VersionId"]
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2026-11-02T10:15:30.123Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "EXAMPLE"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "lakeroute",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj}}]}


class MotoLake:
    """A deployment's resources on the moto server: the landing, warehouse and quarantine
    buckets, the routes, ledger (and reference-design) tables; clients and queue helpers."""

    def __init__(self, tmp: Path, deployment: Deployment, landing: Iterable[str]) -> None:
        self.tmp = tmp
        self.deployment = deployment
        self.s3 = boto3.client("s3")
        self.ddb = boto3.client("dynamodb")
        self.sqs = boto3.client("sqs")
        for bucket in (*landing, deployment.warehouse_bucket, deployment.quarantine_bucket):
            self.s3.create_bucket(Bucket=bucket)
        tables = [(deployment.routes_table, ("bucket", "name")), (deployment.ledger_table, ("pk", "sk"))]
        if deployment.reference_table:
            tables.append((deployment.reference_table, ("PartitionKey",)))
        for name, keys in tables:
            dynamodb_table(name, *keys, client=self.ddb)
        if deployment.catalog == "s3tables":
            arn = boto3.client("s3tables").create_table_bucket(name=deployment.table_bucket)["arn"]
            assert arn == deployment.table_bucket_arn, arn

    def queue(self, name: str, **attributes: str) -> tuple[str, str]:
        """A new queue: (URL, ARN)."""
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def notify(self, bucket: str, queue_arn: str) -> None:
        """S3 -> SQS notifications (moto sends the s3:TestEvent now, and one message per put)."""
        self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})

    def receive_records(self, url: str, *, max_messages: int = 10,
                        visibility: int | None = None) -> list[dict[str, Any]]:
        """One ReceiveMessage, as the Lambda SQS event source hands the messages to the function."""
        args: dict[str, Any] = {"QueueUrl": url, "MaxNumberOfMessages": max_messages,
                                "AttributeNames": ["All"], "WaitTimeSeconds": 0}
        if visibility is not None:
            args["VisibilityTimeout"] = visibility
        return [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[-1]}",
            "awsRegion": REGION,
        } for m in self.sqs.receive_message(**args).get("Messages", [])]

    def drain(self, url: str, visibility: int = 600) -> list[dict[str, Any]]:
        """Every message on the queue (each kept invisible for ``visibility`` seconds)."""
        records: list[dict[str, Any]] = []
        while batch := self.receive_records(url, visibility=visibility):
            records += batch
        return records

    def catalog(self) -> Any:
        """The deployment's catalog (Glue, or S3 Tables)."""
        d = self.deployment
        return catalog_for(d.catalog, d.warehouse, d.table_bucket_arn)

    def table(self, name: str) -> Any:
        """The Iceberg table, through the deployment's catalog."""
        return self.catalog().load_table(name)
