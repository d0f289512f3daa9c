"""Stack-owned buckets: S3 access logs, the Iceberg warehouse and the quarantine.

All three are encrypted (SSE-S3), SSL-only (TLS 1.2+), block every kind of public access and
enforce bucket-owner object ownership. The warehouse is versioned (a bad overwrite of an
Iceberg metadata file can be undone) with noncurrent versions expiring; quarantined objects
expire after the stage's retention; incomplete multipart uploads are aborted everywhere.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .nag import acknowledge_wildcard_resource

WAREHOUSE_PREFIX = "warehouse"
QUARANTINE_PREFIX = "quarantine"
# The commit lane's hand-offs (records and their blobs, lakeroute.aws.lane): beside the
# warehouse prefix, not inside it, so that the roles that only hand off or list get exactly
# this prefix, and no table location's orphan removal ever sees a waiting hand-off.
LANE_PREFIX = "lane"


def secure_bucket_props(*, removal_policy: RemovalPolicy) -> dict:
    """Settings every bucket of the stack shares (landing buckets included)."""
    return {
        "encryption": s3.BucketEncryption.S3_MANAGED,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "removal_policy": removal_policy,
    }


class AccessLogsBucket(Construct):
    """Target of the S3 server access logs of every other bucket of the stack."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        removal_policy: RemovalPolicy,
        auto_delete_objects: bool,
        expiry_days: int,
        abort_multipart_days: int,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            **secure_bucket_props(removal_policy=removal_policy),
            auto_delete_objects=auto_delete_objects,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(expiry_days),
                    abort_incomplete_multipart_upload_after=Duration.days(abort_multipart_days),
                )
            ],
        )
        # No access logging of its own: it is the log destination (cdk-nag's S1 knows that).


class DataLakeStorage(Construct):
    """The Iceberg warehouse bucket and the quarantine bucket."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
        auto_delete_objects: bool,
        quarantine_expiry_days: int,
        warehouse_noncurrent_expiry_days: int,
        abort_multipart_days: int,
    ) -> None:
        super().__init__(scope, id)
        abort = Duration.days(abort_multipart_days)
        common = secure_bucket_props(removal_policy=removal_policy)
        self.warehouse = s3.Bucket(
            self,
            "Warehouse",
            **common,
            auto_delete_objects=auto_delete_objects,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="s3-access/warehouse/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(warehouse_noncurrent_expiry_days),
                    abort_incomplete_multipart_upload_after=abort,
                )
            ],
        )
        self.quarantine = s3.Bucket(
            self,
            "Quarantine",
            **common,
            auto_delete_objects=auto_delete_objects,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="s3-access/quarantine/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-quarantined-objects",
                    expiration=Duration.days(quarantine_expiry_days),
                    abort_incomplete_multipart_upload_after=abort,
                )
            ],
        )

    # ------------------------------------------------------------------ locations

    @property
    def warehouse_uri(self) -> str:
        return f"s3://{self.warehouse.bucket_name}/{WAREHOUSE_PREFIX}"

    @property
    def quarantine_uri(self) -> str:
        return f"s3://{self.quarantine.bucket_name}/{QUARANTINE_PREFIX}"

    @property
    def lane_uri(self) -> str:
        return f"s3://{self.warehouse.bucket_name}/{LANE_PREFIX}"

    def namespace_location(self, namespace: str) -> str:
        """Glue database LocationUri: the layout PyIceberg uses under the warehouse."""
        return f"{self.warehouse_uri}/{namespace}.db"

    # ------------------------------------------------------------------ grants

    def grant_warehouse_read_write(self, role: iam.Role) -> None:
        """Iceberg data and metadata files: read, write, list, delete.

        Delete is needed: PyIceberg removes superseded metadata files
        (write.metadata.delete-after-commit) and lakeroute removes staged data files of
        commits that never happened. The bucket is versioned, so a delete is recoverable.
        """
        objects = self.warehouse.arn_for_objects(f"{WAREHOUSE_PREFIX}/*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WarehouseObjectsReadWrite",
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[objects],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WarehouseList", actions=["s3:ListBucket"], resources=[self.warehouse.bucket_arn],
        ))
        acknowledge_wildcard_resource(
            role, objects,
            "Iceberg writes data and metadata files under new, generated keys below the "
            f"'{WAREHOUSE_PREFIX}/' prefix; access is limited to that prefix of the stack's own "
            "warehouse bucket (versioned, so deletes of superseded metadata are recoverable).",
        )

    def grant_warehouse_read(self, role: iam.Role) -> None:
        """Iceberg metadata and data files: read only (loading a table's metadata)."""
        objects = self.warehouse.arn_for_objects(f"{WAREHOUSE_PREFIX}/*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WarehouseObjectsRead", actions=["s3:GetObject"], resources=[objects],
        ))
        acknowledge_wildcard_resource(
            role, objects,
            "Iceberg metadata files have generated keys below the "
            f"'{WAREHOUSE_PREFIX}/' prefix; read-only, limited to that prefix of the stack's own "
            "warehouse bucket.",
        )

    def grant_quarantine_write(self, role: iam.Role) -> None:
        """Failed objects and their error JSON: write, and read back to skip re-copying.

        GetObject: a redelivered poison object reads its error record instead of copying the
        object again. ListBucket: without it S3 answers that GetObject on a record that does
        not exist yet (every first quarantine) with 403 instead of 404, which the quarantine
        treats as a failure. AbortMultipartUpload: the copy of a large object is multipart.
        """
        objects = self.quarantine.arn_for_objects(f"{QUARANTINE_PREFIX}/*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="QuarantineWrite",
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[objects],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="QuarantineList", actions=["s3:ListBucket"], resources=[self.quarantine.bucket_arn],
        ))
        acknowledge_wildcard_resource(
            role, objects,
            "Quarantined objects and their error reports get keys derived from the failed "
            f"object; read/write access limited to the '{QUARANTINE_PREFIX}/' prefix of the "
            "stack's own quarantine bucket.",
        )

    def grant_quarantine_records_read(self, role: iam.Role) -> None:
        """The reconcile sweep asks whether an unrouted key is quarantined already: HEAD of
        its entry's ``error.json`` (s3:GetObject on the records only, never the copies), and
        ListBucket so that a record not there yet is a 404, not a 403."""
        records = self.quarantine.arn_for_objects(f"{QUARANTINE_PREFIX}/*/error.json")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="QuarantineRecordsRead", actions=["s3:GetObject"], resources=[records]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="QuarantineList", actions=["s3:ListBucket"], resources=[self.quarantine.bucket_arn]))
        acknowledge_wildcard_resource(
            role, records,
            "Quarantine entries are keyed by the failed object's bucket, key and version, unknown "
            "in advance; read-only, and only the error.json records under the "
            f"'{QUARANTINE_PREFIX}/' prefix of the stack's own quarantine bucket.",
        )

    def grant_lane_hand_off(self, role: iam.Role) -> None:
        """An ingest function's hand-off: the record and its blobs (manifest, Arrow rows) are
        written under new keys; nothing is read back or deleted."""
        objects = self.warehouse.arn_for_objects(f"{LANE_PREFIX}/*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LaneHandOff", actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[objects],
        ))
        acknowledge_wildcard_resource(
            role, objects,
            "Commit-lane hand-offs are written under generated keys (<table>/<time>-<id>) below the "
            f"'{LANE_PREFIX}/' prefix of the stack's own warehouse bucket; write-only.",
        )

    def grant_lane_read_write(self, role: iam.Role) -> None:
        """The committer: reads the records and blobs, removes them once committed (``s3:ListBucket``
        on the bucket comes with the warehouse grant)."""
        objects = self.warehouse.arn_for_objects(f"{LANE_PREFIX}/*")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LaneReadWrite",
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[objects],
        ))
        acknowledge_wildcard_resource(
            role, objects,
            "The committer reads and removes commit-lane hand-offs, whose keys are generated per "
            f"table and hand-off, below the '{LANE_PREFIX}/' prefix of the stack's own warehouse bucket.",
        )

    def grant_lane_list(self, role: iam.Role) -> None:
        """Which tables have waiting hand-offs (the sweep's signal for lost signals): listing the
        lane prefix only, no object access."""
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LaneList", actions=["s3:ListBucket"], resources=[self.warehouse.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{LANE_PREFIX}/*"]}},
        ))
