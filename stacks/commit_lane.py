"""The commit lane: ingest functions stage in parallel, one committer per table commits.

An ingest function stages each object (data files in the table's location, invisible) and
hands the batch off per table: a record under ``s3://<warehouse bucket>/lane/<table>/`` plus a
message to this construct's SQS FIFO queue whose message group is the table
(``lakeroute.aws.lane``). The commit function (``lakeroute.lane_handler.handler``, same image
as the ingest function, only the CMD differs) consumes the queue: Lambda's FIFO event source
keeps one batch of a message group in flight, so each table has one committer at a time while
tables commit in parallel, and a table's maintenance (``{"maintain": table}`` messages from
the scheduled maintenance) runs between, never during, its commits.

The queue:

- FIFO, content-based deduplication off: the sender sets the deduplication id (the hand-off
  id; ``maintain-<table>-<hour>``; ``sweep-<table>-<minute>``), so a re-sent signal within
  five minutes is dropped, while two hand-offs with equal bodies never are.
- High-throughput FIFO (``DeduplicationScope=messageGroup``, ``FifoThroughputLimit=
  perMessageGroupId``): the deduplication ids never repeat across tables (hand-off ids are
  unique, the others name their table), so deduplicating within the group loses nothing, and
  the throughput limit applies per table instead of to the queue as a whole: one busy table
  never slows the signals of the others.
- Named ``<name>.fifo`` and ``<name>-dlq.fifo`` (``name``: ``lakeroute-<stage>-commit-lane``,
  the stage with its generation from 2 on): a FIFO queue's name must end in ``.fifo``, which
  an unnamed queue's generated name does not promise (moto's CloudFormation refuses it).
- SSE-SQS, SSL-only (as the ingest queue); visibility timeout 6x the commit function's timeout
  (AWS's guidance for Lambda event sources: a message is never visible again while an
  invocation may still hold it, so a table never gets a second committer from a redelivery).
- A FIFO dead-letter queue after ``MAX_RECEIVE_COUNT`` failed receives. A dead-lettered signal
  loses no data: the hand-off records stay under the lane prefix and are committed with the
  table's next signal, or the reconcile sweep's.

The event source: batches of 10 (the FIFO maximum), ReportBatchItemFailures (a table whose
commit failed transiently is retried alone), no batching window (FIFO sources have none).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import SQS_CONSUME_ACTIONS, FunctionSettings, ImageFunction

LANE_CMD = ("lakeroute.lane_handler.handler",)
BATCH_SIZE = 10  # the most an SQS FIFO event source takes
MAX_RECEIVE_COUNT = 5
RETENTION_PERIOD = Duration.days(4)
DLQ_RETENTION_PERIOD = Duration.days(14)  # the SQS maximum
SEND_ACTIONS = ("sqs:SendMessage",)


class CommitLane(Construct):
    """The lane's FIFO queue and DLQ, and the commit function fed by the queue.

    ``settings.environment`` must hold ``LAKEROUTE_LANE`` (and the stage's
    ``LAKEROUTE_COMMIT_DEFAULTS``) and must not hold ``LAKEROUTE_LANE_QUEUE``: the committer
    commits, it never hands off. Data permissions are granted by the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: FunctionSettings,
        removal_policy: RemovalPolicy,
        cmd: Sequence[str] = LANE_CMD,
        max_receive_count: int = MAX_RECEIVE_COUNT,
    ) -> None:
        super().__init__(scope, id)
        if "LAKEROUTE_LANE" not in settings.environment or "LAKEROUTE_LANE_QUEUE" in settings.environment:
            raise ValueError("the commit function needs LAKEROUTE_LANE and must not get LAKEROUTE_LANE_QUEUE "
                             "(it would hand its work off again instead of committing it)")
        fifo = {
            "fifo": True,
            "content_based_deduplication": False,
            "encryption": sqs.QueueEncryption.SQS_MANAGED,
            "enforce_ssl": True,
            "removal_policy": removal_policy,
        }
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue", queue_name=f"{name}-dlq.fifo", retention_period=DLQ_RETENTION_PERIOD, **fifo,
        )
        self.visibility_timeout = Duration.seconds(6 * int(settings.timeout.to_seconds()))
        self.queue = sqs.Queue(
            self, "Queue",
            queue_name=f"{name}.fifo",
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            visibility_timeout=self.visibility_timeout,
            retention_period=RETENTION_PERIOD,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=max_receive_count),
            **fifo,
        )
        image_fn = ImageFunction(
            self, "Handler", cmd=cmd, settings=settings,
            description="commit lane: commit each table's staged hand-offs, one committer per table",
        )
        self.function = image_fn.function
        self.role = image_fn.role
        self.log_group = image_fn.log_group
        # The mapping itself (as the ingest function's): SqsEventSource would also grant
        # sqs:GetQueueUrl, which nothing calls. sqs:ChangeMessageVisibility is the handler's own:
        # a failed table's messages come back after 30 s, not the 6x visibility timeout.
        self.event_source = self.function.add_event_source_mapping(
            "FifoEventSource",
            event_source_arn=self.queue.queue_arn,
            batch_size=BATCH_SIZE,
            report_batch_item_failures=True,
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="CommitLaneConsume", actions=[*SQS_CONSUME_ACTIONS, "sqs:ChangeMessageVisibility"],
            resources=[self.queue.queue_arn],
        ))

    def grant_send(self, role: iam.Role) -> None:
        """Signal a table's committer: a message in the table's group (ingest hand-offs, the
        maintenance's ``{"maintain": table}``, the sweep's signals for waiting hand-offs)."""
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="CommitLaneSend", actions=list(SEND_ACTIONS), resources=[self.queue.queue_arn],
        ))
