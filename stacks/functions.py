"""Functions from the lakeroute image: the ingest function and its building block."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .image import ARCHITECTURE, lakeroute_image
from .nag import acknowledge

# What the Lambda SQS poller needs (the actions of AWSLambdaSQSQueueExecutionRole).
SQS_CONSUME_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    """Sizing, configuration and log handling of one function."""

    memory_mb: int
    timeout: Duration
    ephemeral_storage_mb: int
    environment: Mapping[str, str] = field(default_factory=dict)
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    tracing: lambda_.Tracing = lambda_.Tracing.ACTIVE


class ImageFunction(Construct):
    """A function from the lakeroute image with a dedicated role and log group.

    The role starts empty (no managed policy): it may write to this function's log group only;
    every other permission is granted explicitly by the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cmd: Sequence[str],
        description: str,
        settings: FunctionSettings,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"lakeroute: {description}",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lakeroute_image(cmd=cmd),
            description=f"lakeroute: {description}",
            architecture=ARCHITECTURE,
            memory_size=settings.memory_mb,
            timeout=settings.timeout,
            ephemeral_storage_size=Size.mebibytes(settings.ephemeral_storage_mb),
            environment=dict(settings.environment),
            role=self.role,
            log_group=self.log_group,
            tracing=settings.tracing,
            # Asynchronous invocations (EventBridge) that failed every retry.
            dead_letter_queue=dead_letter_queue,
        )
        if settings.tracing == lambda_.Tracing.ACTIVE:
            acknowledge(
                self.role,
                "AwsSolutions-IAM5[Resource::*]",
                "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not "
                "support resource-level permissions, so '*' is the only valid resource.",
            )


class IngestFunction(Construct):
    """The ingest handler fed by ``queue``, reporting partial batch failures."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: FunctionSettings,
        queue: sqs.IQueue,
        batch_size: int,
        max_batching_window: Duration,
        max_concurrency: int,
        cmd: Sequence[str],
    ) -> None:
        super().__init__(scope, id)
        image_fn = ImageFunction(
            self, "Handler", cmd=cmd, settings=settings,
            description="ingest S3 objects announced on the queue into Iceberg tables",
        )
        self.function = image_fn.function
        self.role = image_fn.role
        self.log_group = image_fn.log_group
        # The mapping itself rather than SqsEventSource: that one also grants
        # sqs:ChangeMessageVisibility and sqs:GetQueueUrl, which the Lambda poller never calls.
        self.event_source = self.function.add_event_source_mapping(
            "SqsEventSource",
            event_source_arn=queue.queue_arn,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            max_concurrency=max_concurrency,
            report_batch_item_failures=True,
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="IngestQueueConsume", actions=list(SQS_CONSUME_ACTIONS), resources=[queue.queue_arn],
        ))
