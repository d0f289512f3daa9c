"""Table maintenance: a scheduled function that puts each table's maintenance in its lane.

``lakeroute.maintain.handler`` in the same image as the ingest function (only the CMD
differs), run by an EventBridge rule every ``maintenance_interval_minutes`` of the stage
(null: no function, no rule), one invocation at a time (reserved concurrency 1). The stage has
a commit lane (``LAKEROUTE_LANE_QUEUE``), so it maintains nothing itself: it sends one
``{"maintain": table}`` message per existing routed table to the lane's FIFO queue, in the
table's message group, and the commit function (stacks/commit_lane.py) runs the same
``maintain --apply`` as the CLI between that table's commits: compaction, snapshot expiry and
orphan removal never race an ingest commit (docs/operations.md, "Maintenance", for why this rather than
Glue table optimizers). Its role (granted by the stack): routes ``Scan``; Glue ``GetTable`` and
warehouse ``GetObject`` (does the table exist: PyIceberg loads its metadata);
``sqs:SendMessage`` on the lane's queue; its log group.
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
# PyIceberg's GlueCatalog.table_exists is a load_table: GetTable, then the metadata file.
ENQUEUE_GLUE_ACTIONS = ("glue:GetTable",)


class TableMaintenance(Construct):
    """The maintenance function (it enqueues each table's maintenance in its lane) and its schedule."""

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
            description="table maintenance: enqueue compaction, expiry, orphan removal in each table's lane",
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
