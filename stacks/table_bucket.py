"""S3 Tables as the stage's catalog (``catalog: s3tables`` in cdk.json): one table bucket, one
namespace per Iceberg namespace of the route set.

The namespace of a route namespace is named like its Glue database would be
(``stacks.naming.database_name``), so routes, the route sync and the ``--stage`` commands map
names the same way on both catalogs. The tables themselves are created (and evolved) by the
deploy-time route sync through ``lakeroute.aws.s3tables``, which also configures each table's
S3 Tables compaction and snapshot management from its ``target.maintenance``
(``lakeroute.aws.s3tables_maintenance``); the bucket's unreferenced-file removal is set here.

Grants: the stack names the work of each role by its Glue action set (``stacks.catalog``); this
construct grants the S3 Tables calls ``lakeroute.aws.s3tables`` makes for the same work
(``ACTIONS_FOR``), on this bucket and its tables only. Table data (the metadata and data
files in each table's storage, read and written through the S3 API) is authorized by
``s3tables:GetTableData`` / ``s3tables:PutTableData`` on the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3tables as s3tables
from constructs import Construct

from .catalog import INGEST_GLUE_ACTIONS, SYNC_GLUE_ACTIONS
from .maintenance import ENQUEUE_GLUE_ACTIONS
from .nag import acknowledge_wildcard_resource
from .naming import output_id
from .sweep import SWEEP_GLUE_ACTIONS

# lakeroute.aws.s3tables: load_table / table_exists -> GetTableMetadataLocation + the metadata
# file (GetTableData); namespace_exists -> GetNamespace; a first commit of an undeclared table
# -> CreateTable; commit_table -> GetTableMetadataLocation, UpdateTableMetadataLocation (the
# version token) and the new files (PutTableData). Maintenance in the lane (the committer) also
# configures S3 Tables' own maintenance (Get/PutTableMaintenanceConfiguration). Nothing lists
# or deletes: namespaces are the stack's, unreferenced files S3 Tables' own removal.
READ_ACTIONS = ("s3tables:GetNamespace", "s3tables:GetTableMetadataLocation", "s3tables:GetTableData")
WRITE_ACTIONS = (*READ_ACTIONS, "s3tables:CreateTable", "s3tables:UpdateTableMetadataLocation",
                 "s3tables:PutTableData", "s3tables:GetTableMaintenanceConfiguration",
                 "s3tables:PutTableMaintenanceConfiguration")
ACTIONS_FOR: Mapping[tuple[str, ...], tuple[str, ...]] = {
    INGEST_GLUE_ACTIONS: WRITE_ACTIONS,  # ingest, the committer, the large-object task; sync (the same set)
    SYNC_GLUE_ACTIONS: WRITE_ACTIONS,
    SWEEP_GLUE_ACTIONS: READ_ACTIONS,  # loads tables to check their snapshots
    ENQUEUE_GLUE_ACTIONS: READ_ACTIONS,  # table_exists before enqueuing maintenance
}
# What S3 Tables' own unreferenced-file removal keeps: 3 days unreferenced (as lakeroute's
# orphan grace, target.maintenance.orphan_days' default), then 10 days noncurrent.
UNREFERENCED_DAYS = 3
NONCURRENT_DAYS = 10


class TableBucketCatalog(Construct):
    """``AWS::S3Tables::TableBucket`` + ``AWS::S3Tables::Namespace`` per namespace.

    ``databases`` maps each (logical) namespace to its namespace name in the table bucket (the
    name its Glue database would have). ``databases`` (the CloudFormation resources) is what the
    route sync waits for, as with ``stacks.catalog.GlueCatalog``.
    """

    def __init__(self, scope: Construct, id: str, *, bucket_name: str, databases: Mapping[str, str],
                 removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, id)
        self.names = dict(databases)
        self.bucket = s3tables.CfnTableBucket(
            self, "TableBucket", table_bucket_name=bucket_name,
            unreferenced_file_removal=s3tables.CfnTableBucket.UnreferencedFileRemovalProperty(
                status="Enabled", unreferenced_days=UNREFERENCED_DAYS, noncurrent_days=NONCURRENT_DAYS))
        self.bucket.apply_removal_policy(removal_policy)
        self.databases: dict[str, s3tables.CfnNamespace] = {}
        for ns, name in self.names.items():
            namespace = s3tables.CfnNamespace(self, f"Namespace-{ns}", namespace=name,
                                              table_bucket_arn=self.bucket.attr_table_bucket_arn)
            namespace.apply_removal_policy(removal_policy)
            self.databases[ns] = namespace

    @property
    def arn(self) -> str:
        return self.bucket.attr_table_bucket_arn

    @property
    def environment(self) -> dict[str, str]:
        """What the functions read (``lakeroute.aws.config``)."""
        return {"LAKEROUTE_CATALOG": "s3tables", "LAKEROUTE_TABLE_BUCKET_ARN": self.arn}

    def add_outputs(self, output: Callable[[str, str, str], None], databases_json: str) -> None:
        """What ``--stage`` reads (``lakeroute.aws.stage``): ``StageCatalog``, ``TableBucketArn``,
        ``Namespaces`` (JSON: namespace -> namespace in the table bucket); one output per namespace."""
        output("StageCatalog", "s3tables", "where the Iceberg tables live: s3tables (glue when absent)")
        output("TableBucketArn", self.arn, "S3 table bucket of the Iceberg tables")
        output("Namespaces", databases_json, "JSON: Iceberg namespace (route files) -> table bucket namespace")
        for ns, name in self.names.items():
            output(output_id("Namespace", ns), name, f"table bucket namespace of namespace {ns}")

    def resource_arns(self) -> list[str]:
        """The table bucket and its tables (namespaces are authorized on the bucket)."""
        return [self.arn, f"{self.arn}/table/*"]

    def grant(self, role: iam.Role, actions: Sequence[str]) -> None:
        """The S3 Tables calls of the work ``actions`` names (``ACTIONS_FOR``), on this bucket."""
        granted = ACTIONS_FOR.get(tuple(actions))
        if granted is None:
            raise ValueError(f"no S3 Tables grant for the catalog actions {tuple(actions)}")
        if not self.names:
            return
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="S3TablesNamespaces", actions=list(granted), resources=self.resource_arns()))
        acknowledge_wildcard_resource(
            role, f"{self.arn}/table/*",
            "Iceberg tables of this stage's table bucket are created by the route sync and on a "
            "first commit (a route may leave the schema to its SQL), so their ids are not known "
            "at deploy time; access is limited to the tables of this stage's bucket.")
