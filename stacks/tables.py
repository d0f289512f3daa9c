"""DynamoDB tables: the routing table and the exactly-once ledger.

Both are on-demand, encrypted at rest (AWS owned key) and have point-in-time recovery on.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

ROUTES_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")
LEDGER_READ_WRITE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
ROUTES_SYNC_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)


def _table(
    scope: Construct, id: str, *, pk: str, sk: str, removal_policy: RemovalPolicy,
    deletion_protection: bool, ttl_attribute: str | None = None,
) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        id,
        partition_key=dynamodb.Attribute(name=pk, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=sk, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=ttl_attribute,
        deletion_protection=deletion_protection,
        removal_policy=removal_policy,
    )


class RoutingTables(Construct):
    """``routes`` (pk ``bucket``, sk ``name``) and ``ledger`` (pk ``pk``, sk ``sk``, TTL ``expires_at``)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, id)
        self.routes = _table(self, "Routes", pk="bucket", sk="name",
                             removal_policy=removal_policy, deletion_protection=deletion_protection)
        self.ledger = _table(self, "Ledger", pk="pk", sk="sk", ttl_attribute="expires_at",
                             removal_policy=removal_policy, deletion_protection=deletion_protection)

    def grant_routes_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.routes.grant(grantee, *ROUTES_READ_ACTIONS)

    def grant_routes_sync(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.routes.grant(grantee, *ROUTES_SYNC_ACTIONS)

    def grant_ledger_read_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.ledger.grant(grantee, *LEDGER_READ_WRITE_ACTIONS)
