"""Table maintenance: a scheduled function running the same ``maintain`` as the CLI.

``lakeroute.maintain.handler`` in the same image as the ingest function (only the CMD
differs), run by an EventBridge rule every ``maintenance_interval_minutes`` of the stage
(null: no function, no rule), one invocation at a time (reserved concurrency 1: a long run
never overlaps the next). It compacts, expires snapshots and removes orphan files of every
routed table by its route's ``target.maintenance`` (README, "Maintenance", for why this
rather than Glue table optimizers). Its role (granted by the stack): routes ``Scan``; ledger
``GetItem``/``BatchWriteItem``/``PutItem`` (reconcile before expiry); Glue ``GetTable``/
``UpdateTable`` on the stage's tables; warehouse objects read/write/delete and ``ListBucket``
(orphans); its log group.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .functions import FunctionSettings, ImageFunction

MAINTAIN_CMD = ("lakeroute.maintain.handler",)
ROUTES_SCAN_ACTIONS = ("dynamodb:Scan",)
LEDGER_MAINTAIN_ACTIONS = ("dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem")
MAINTAIN_GLUE_ACTIONS = ("glue:GetTable", "glue:UpdateTable")


class TableMaintenance(Construct):
    """The maintenance function and its schedule."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: FunctionSettings,
        interval: Duration,
        cmd: Sequence[str] = MAINTAIN_CMD,
    ) -> None:
        super().__init__(scope, id)
        image_fn = ImageFunction(
            self, "Handler", cmd=cmd, settings=settings,
            description="table maintenance: compaction, snapshot expiry, orphan-file removal",
        )
        self.function = image_fn.function
        self.role = image_fn.role
        self.log_group = image_fn.log_group
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.reserved_concurrent_executions = 1
        # A missed run is made up by the next one: maintenance is idempotent.
        self.rule = events.Rule(
            self, "Schedule", schedule=events.Schedule.rate(interval),
            description="lakeroute: table maintenance (compaction, expiry, orphans)",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
