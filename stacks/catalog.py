"""Glue Data Catalog: one database per Iceberg namespace of the route set.

The database of a namespace is named per stage (``stacks.naming.database_name``). The
Iceberg tables themselves are created (and evolved) by the deploy-time route sync, which
knows their Iceberg schema; CloudFormation owns only the databases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from constructs import Construct

from .nag import acknowledge_wildcard_resource
from .naming import output_id

# Exactly what PyIceberg 0.12's GlueCatalog calls for lakeroute (pyiceberg/catalog/glue.py):
# load_table / table_exists -> GetTable; namespace_exists and the S3 Tables check in
# create_table / commit_table -> GetDatabase; create_table and a first commit -> CreateTable;
# commit_table -> GetTable + UpdateTable (VersionId: optimistic locking). The route sync makes
# the same calls (table_exists, create_table, update_schema().commit). Neither lists tables
# (GetTables) nor creates databases (the stack owns them).
INGEST_GLUE_ACTIONS = (
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
)
SYNC_GLUE_ACTIONS = INGEST_GLUE_ACTIONS


class GlueCatalog(Construct):
    """``AWS::Glue::Database`` per namespace, located under the warehouse prefix.

    ``databases`` maps each (logical) namespace to its Glue database name in this stage;
    construct ids follow the namespace, so the naming rule is not part of the logical ids.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        databases: Mapping[str, str],
        location_for: Callable[[str], str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.names = dict(databases)
        self.databases: dict[str, glue.CfnDatabase] = {}
        for ns, name in self.names.items():
            db = glue.CfnDatabase(
                self,
                f"Database-{ns}",
                catalog_id=Aws.ACCOUNT_ID,
                database_input=glue.CfnDatabase.DatabaseInputProperty(
                    name=name,
                    description=f"lakeroute Iceberg namespace {ns} (tables created by the route sync)",
                    location_uri=location_for(name),
                ),
            )
            db.apply_removal_policy(removal_policy)
            self.databases[ns] = db

    @property
    def environment(self) -> dict[str, str]:
        """What the functions read (``lakeroute.aws.config``)."""
        return {"LAKEROUTE_CATALOG": "glue"}

    def add_outputs(self, output: Callable[[str, str, str], None], databases_json: str) -> None:
        """``GlueDatabases`` (JSON: namespace -> database, what ``--stage`` reads) and one output
        per database."""
        output("GlueDatabases", databases_json, "JSON: Iceberg namespace (route files) -> Glue database")
        for ns, db in self.names.items():
            output(output_id("GlueDatabase", ns), db, f"Glue database of namespace {ns}")

    def resource_arns(self) -> list[str]:
        """The catalog, each namespace's database, and the tables inside it."""
        stack = Stack.of(self)
        arns = [stack.format_arn(service="glue", resource="catalog")]
        for name in self.names.values():
            arns.append(stack.format_arn(service="glue", resource="database", resource_name=name))
            arns.append(stack.format_arn(service="glue", resource="table", resource_name=f"{name}/*"))
        return arns

    def grant(self, role: iam.Role, actions: Sequence[str]) -> None:
        """``actions`` on the catalog, the namespaces' databases and the tables inside them."""
        if not self.names:
            return
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="GlueNamespaces", actions=list(actions), resources=self.resource_arns(),
        ))
        stack = Stack.of(self)
        for ns, name in self.names.items():
            acknowledge_wildcard_resource(
                role,
                stack.format_arn(service="glue", resource="table", resource_name=f"{name}/*"),
                f"Iceberg tables of namespace '{ns}' are created and evolved by the route sync "
                "and on first load (a route may leave the schema to its SQL); access is limited "
                f"to the tables of this stage's '{name}' database.",
            )
