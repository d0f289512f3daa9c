"""The synthesized producer policy of a landing bucket, enforced by moto's IAM: a producer with
only that policy uploads (single-part and multipart, and may abort) under the routed prefixes,
and is refused anywhere else and for anything else (read, list, delete).

The policy document is the template's, rendered for moto's account and region; moto's
CloudFormation would create the same managed policy (``test_stages_on_moto.py`` deploys the
whole template), here it is created directly so that the test needs no deploy.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.infra.synth import Synth, render
from tests.support.iam import iam_enforced
from tests.support.moto_server import REGION, MotoServer

ACCOUNT = "123456789012"  # moto's default account
BUCKET = "lr-test-sales"  # routes: orders/ and refunds/


@pytest.fixture
def producer(clean_aws: MotoServer, dev: Synth) -> dict[str, Any]:
    """The landing bucket (moto name) and a user holding only its producer policy."""
    from stacks.producers import producer_output_id

    physical = render(dev.stack.resolve(dev.stack.names.bucket_map()[BUCKET]), account=ACCOUNT, region=REGION)
    policy_id = dev.json["Outputs"][producer_output_id(BUCKET)]["Value"]["Ref"]
    document = render(dev.json["Resources"][policy_id]["Properties"]["PolicyDocument"],
                      account=ACCOUNT, region=REGION)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=physical)
    iam = boto3.client("iam")
    arn = iam.create_policy(PolicyName="producer", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.create_user(UserName="partner")
    iam.attach_user_policy(UserName="partner", PolicyArn=arn)
    keys = iam.create_access_key(UserName="partner")["AccessKey"]
    client = boto3.client("s3", aws_access_key_id=keys["AccessKeyId"],
                          aws_secret_access_key=keys["SecretAccessKey"])
    return {"bucket": physical, "s3": client, "admin": s3, "document": document}


def denied(call: Any) -> bool:
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_producer_uploads_under_the_routed_prefixes_only(clean_aws: MotoServer, producer: dict[str, Any]) -> None:
    s3, bucket = producer["s3"], producer["bucket"]
    print("policy:", producer["document"])
    with iam_enforced(clean_aws.endpoint):
        s3.put_object(Bucket=bucket, Key="orders/2026/a.parquet", Body=b"PAR1")
        s3.put_object(Bucket=bucket, Key="refunds/r.csv", Body=b"id\n1\n")
        # Multipart: create, upload part and complete are s3:PutObject; abort its own action.
        big = s3.create_multipart_upload(Bucket=bucket, Key="orders/big.parquet")["UploadId"]
        part = s3.upload_part(Bucket=bucket, Key="orders/big.parquet", UploadId=big, PartNumber=1, Body=b"x" * 1024)
        s3.complete_multipart_upload(Bucket=bucket, Key="orders/big.parquet", UploadId=big,
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
        dropped = s3.create_multipart_upload(Bucket=bucket, Key="refunds/partial.csv")["UploadId"]
        s3.abort_multipart_upload(Bucket=bucket, Key="refunds/partial.csv", UploadId=dropped)
        # A misplaced upload fails at the producer instead of landing where no route reads.
        assert denied(lambda: s3.put_object(Bucket=bucket, Key="order/a.parquet", Body=b"PAR1"))
        assert denied(lambda: s3.put_object(Bucket=bucket, Key="a.parquet", Body=b"PAR1"))
        assert denied(lambda: s3.create_multipart_upload(Bucket=bucket, Key="other/big.parquet"))
        # Write-only: no read, list or delete, not even of its own uploads.
        assert denied(lambda: s3.get_object(Bucket=bucket, Key="orders/2026/a.parquet"))
        assert denied(lambda: s3.list_objects_v2(Bucket=bucket))
        assert denied(lambda: s3.delete_object(Bucket=bucket, Key="orders/2026/a.parquet"))
        # Another bucket is out of reach.
        assert denied(lambda: s3.put_object(Bucket=f"not-{bucket}-{uuid.uuid4().hex[:6]}", Key="orders/a", Body=b""))
    keys = sorted(o["Key"] for o in producer["admin"].list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["orders/2026/a.parquet", "orders/big.parquet", "refunds/r.csv"]
