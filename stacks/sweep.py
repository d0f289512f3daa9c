"""The reconcile sweep: a scheduled function that re-sends objects whose notification was lost.

``lakeroute.sweep.handler`` in the same image as the ingest function (only the CMD differs),
run by an EventBridge rule every ``sweep_interval_minutes`` of the stage (null: no function,
no rule). It lists each route prefix since its watermark (ledger table, pk ``#sweep``) and
sends the objects the ledger does not hold to the ingest queue as S3 notifications; see
``lakeroute.aws.sweep``. Its role (granted by the stack): routes ``Scan``; ledger
``GetItem``/``PutItem``/``BatchGetItem``; Glue ``GetDatabase``/``GetTable``; warehouse
``GetObject`` (table metadata); landing ``ListBucket`` and ``GetObject`` (HEAD, for the
VersionId of versioned buckets); quarantine ``GetObject`` on the ``error.json`` records and
``ListBucket`` (is an unrouted key of a bucket the stack created quarantined already?);
``sqs:SendMessage`` on the ingest queue; its log group. Its environment names the buckets the
stack created (``LAKEROUTE_OWNED_BUCKETS``): those are listed whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import FunctionSettings, ImageFunction

SWEEP_CMD = ("lakeroute.sweep.handler",)
ROUTES_SCAN_ACTIONS = ("dynamodb:Scan",)
LEDGER_SWEEP_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem")
SWEEP_GLUE_ACTIONS = ("glue:GetDatabase", "glue:GetTable")
SWEEP_LANDING_OBJECT_ACTIONS = ("s3:GetObject",)
SEND_ACTIONS = ("sqs:SendMessage",)


class ReconcileSweep(Construct):
    """The sweep function and its schedule; ``environment`` must hold the ingest queue URL."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: FunctionSettings,
        interval: Duration,
        queue: sqs.IQueue,
        cmd: Sequence[str] = SWEEP_CMD,
    ) -> None:
        super().__init__(scope, id)
        image_fn = ImageFunction(
            self, "Handler", cmd=cmd, settings=settings,
            description="reconcile sweep: re-send landed objects whose notification was lost",
        )
        self.function = image_fn.function
        self.role = image_fn.role
        self.log_group = image_fn.log_group
        # A missed run is made up by the next one (its window starts at the watermark).
        self.rule = events.Rule(
            self, "Schedule", schedule=events.Schedule.rate(interval),
            description="lakeroute: reconcile sweep of the route prefixes",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="IngestQueueSend", actions=list(SEND_ACTIONS), resources=[queue.queue_arn],
        ))
