"""The ingest queue (S3 notifications in, Lambda out) and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

MAX_RECEIVE_COUNT = 5
RETENTION_PERIOD = Duration.days(4)
DLQ_RETENTION_PERIOD = Duration.days(14)  # the SQS maximum: time to inspect and redrive


class IngestQueue(Construct):
    """SQS queue with a DLQ after ``max_receive_count`` failed receives; SSE-SQS, SSL-only."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        visibility_timeout: Duration,
        retention_period: Duration = RETENTION_PERIOD,
        dlq_retention_period: Duration = DLQ_RETENTION_PERIOD,
        max_receive_count: int = MAX_RECEIVE_COUNT,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=dlq_retention_period,
            removal_policy=removal_policy,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=retention_period,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
            removal_policy=removal_policy,
        )
