"""DynamoDB tables: the routing table and the exactly-once ledger.

Both are on-demand, encrypted at rest (AWS owned key) and have point-in-time recovery on.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

# Exactly the calls of lakeroute/aws/: route_store.DynamoRouteStore reads a bucket's routes
# with Query (its GetItem is on a reference-design table, which the stack does not own:
# whoever sets LAKEROUTE_REFERENCE_TABLE grants it); ledger.DynamoLedger uses BatchGetItem
# (committed), GetItem (watermark), BatchWriteItem (entries) and PutItem (watermark);
# route_sync.sync_route_items uses Scan, PutItem and DeleteItem.
ROUTES_READ_ACTIONS = ("dynamodb:Query",)
LEDGER_READ_WRITE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
)
ROUTES_SYNC_ACTIONS = (
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
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
