"""Glue Data Catalog: one database per Iceberg namespace of the route set.

The Iceberg tables themselves are created (and evolved) by the deploy-time route sync, which
knows their Iceberg schema; CloudFormation owns only the databases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from constructs import Construct

from .nag import acknowledge_wildcard_resource

INGEST_GLUE_ACTIONS = (
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
)
SYNC_GLUE_ACTIONS = INGEST_GLUE_ACTIONS


class GlueCatalog(Construct):
    """``AWS::Glue::Database`` per namespace, located under the warehouse prefix."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespaces: Sequence[str],
        location_for: Callable[[str], str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.namespaces = tuple(namespaces)
        self.databases: dict[str, glue.CfnDatabase] = {}
        for ns in self.namespaces:
            db = glue.CfnDatabase(
                self,
                f"Database-{ns}",
                catalog_id=Aws.ACCOUNT_ID,
                database_input=glue.CfnDatabase.DatabaseInputProperty(
                    name=ns,
                    description=f"lakeroute Iceberg namespace {ns} (tables created by the route sync)",
                    location_uri=location_for(ns),
                ),
            )
            db.apply_removal_policy(removal_policy)
            self.databases[ns] = db

    def resource_arns(self) -> list[str]:
        """The catalog, each namespace's database, and the tables inside it."""
        stack = Stack.of(self)
        arns = [stack.format_arn(service="glue", resource="catalog")]
        for ns in self.namespaces:
            arns.append(stack.format_arn(service="glue", resource="database", resource_name=ns))
            arns.append(stack.format_arn(service="glue", resource="table", resource_name=f"{ns}/*"))
        return arns

    def grant(self, role: iam.Role, actions: Sequence[str]) -> None:
        """``actions`` on the catalog, the namespaces' databases and the tables inside them."""
        if not self.namespaces:
            return
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="GlueNamespaces", actions=list(actions), resources=self.resource_arns(),
        ))
        stack = Stack.of(self)
        for ns in self.namespaces:
            acknowledge_wildcard_resource(
                role,
                stack.format_arn(service="glue", resource="table", resource_name=f"{ns}/*"),
                f"Iceberg tables of namespace '{ns}' are created and evolved by the route sync "
                "and on first load (a route may leave the schema to its SQL); access is limited "
                f"to the tables of the '{ns}' database.",
            )
