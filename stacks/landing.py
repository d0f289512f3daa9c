"""Landing buckets (one per distinct ``source.bucket``) and their S3 -> SQS notifications.

Route files name LOGICAL buckets; each stage maps them to physical ones (``stacks.naming``):
the buckets users upload to. An imported bucket (a route's ``existing: true``, or the stage's
``buckets.<logical>.existing``) is never created nor deleted; the stack only adds the
notification to it. Construct (and so logical) ids follow the logical name, so a stage
override changes the bucket's name, not its place in the template.

A bucket the stack creates notifies the queue of EVERY new object (one notification, no
filter): a file no route takes is quarantined "no route" and counted, never silent. The
built-in ignore rules (``_SUCCESS``, ``*.crc``, ``_temporary/``, ``.``-files, a route's
``exclude``) cannot be expressed as S3 filters (one prefix and one suffix per rule, no
negation, no overlap on one bucket): those keys reach the function and are ignored there
before any read. An imported bucket keeps one notification per route prefix: it may hold
other data, and its notification configuration may have rules of its own that a whole-bucket
rule would overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct, IDependable

from .nag import acknowledge, acknowledge_wildcard_resource
from .naming import LandingBucket
from .storage import secure_bucket_props

LANDING_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
# What S3 needs to deliver event notifications (and its test event) to the queue.
NOTIFICATION_QUEUE_ACTIONS = ("sqs:SendMessage",)


def construct_id(logical_name: str) -> str:
    """Stable construct id per logical bucket name (logical ids follow it)."""
    return "Bucket-" + logical_name


@jsii.implements(s3.IBucketNotificationDestination)
class _QueueDestination:
    """The ingest queue as a notification target, its policy written once for every bucket.

    CDK's ``SqsDestination`` adds one statement per bucket conditioned on ``aws:SourceArn``
    only, with actions S3 never uses; this one allows ``sqs:SendMessage`` from
    s3.amazonaws.com for these buckets (``aws:SourceArn``) owned by this account
    (``aws:SourceAccount``): a bucket of the same name in another account cannot send.
    """

    def __init__(self, queue: sqs.IQueue, bucket_arns: Sequence[str]) -> None:
        self.queue = queue
        result = queue.add_to_resource_policy(iam.PolicyStatement(
            sid="S3LandingNotifications",
            principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=list(NOTIFICATION_QUEUE_ACTIONS),
            resources=[queue.queue_arn],
            conditions={
                "ArnLike": {"aws:SourceArn": list(bucket_arns)},
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            },
        ))
        self.dependencies: list[IDependable] = (
            [result.policy_dependable] if result.policy_dependable is not None else [])

    def bind(self, scope: Construct, bucket: IBucketRef) -> s3.BucketNotificationDestinationConfig:
        # S3 checks the queue policy when the notification is put: the policy must exist first.
        return s3.BucketNotificationDestinationConfig(
            arn=self.queue.queue_arn, type=s3.BucketNotificationDestinationType.QUEUE,
            dependencies=self.dependencies)


class LandingBuckets(Construct):
    """Creates or imports every landing bucket and notifies ``queue`` of new objects."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        buckets: Sequence[LandingBucket],
        queue: sqs.IQueue,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
        abort_multipart_days: int,
    ) -> None:
        super().__init__(scope, id)
        self.landing = tuple(buckets)
        self.buckets: dict[str, s3.IBucket] = {}
        if not self.landing:
            return
        destination = _QueueDestination(queue, [self._bucket_arn(b.physical) for b in self.landing])
        for landing in self.landing:
            if landing.imported:
                bucket: s3.IBucket = s3.Bucket.from_bucket_name(
                    self, construct_id(landing.logical), landing.physical
                )
            else:
                bucket = s3.Bucket(
                    self,
                    construct_id(landing.logical),
                    bucket_name=landing.physical,
                    **secure_bucket_props(removal_policy=removal_policy),
                    server_access_logs_bucket=access_logs,
                    server_access_logs_prefix=f"s3-access/landing/{landing.logical}/",
                    lifecycle_rules=[
                        s3.LifecycleRule(
                            id="abort-incomplete-multipart-uploads",
                            abort_incomplete_multipart_upload_after=Duration.days(
                                abort_multipart_days
                            ),
                        )
                    ],
                )
            for prefix in landing.notified_prefixes:
                filters = [s3.NotificationKeyFilter(prefix=prefix)] if prefix else []
                bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, *filters)
            self.buckets[landing.logical] = bucket

        self._acknowledge_notifications_handler()

    def _acknowledge_notifications_handler(self) -> None:
        """CDK's singleton Custom::S3BucketNotifications handler (created by the first bucket)."""
        stack = Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                role = child.node.try_find_child("Role")
                if role is not None:
                    acknowledge(
                        role,
                        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                        "service-role/AWSLambdaBasicExecutionRole]",
                        "CDK's bucket-notifications handler runs only at deploy time to put the "
                        "S3->SQS notification configuration; the managed policy only lets it "
                        "write its own CloudWatch logs, and its S3 permission "
                        "(s3:PutBucketNotification) is scoped per landing bucket.",
                    )

    # ------------------------------------------------------------------ grants

    def _object_arn(self, bucket: str, prefix: str) -> str:
        return Stack.of(self).format_arn(
            service="s3", region="", account="", resource=bucket, resource_name=f"{prefix}*"
        )

    def _bucket_arn(self, bucket: str) -> str:
        return Stack.of(self).format_arn(service="s3", region="", account="", resource=bucket)

    def grant_read(self, role: iam.Role, object_actions: Sequence[str] = LANDING_READ_ACTIONS) -> None:
        """Read-only: objects under the notified prefixes (the whole bucket the stack creates:
        an unrouted key is HEADed and copied into the quarantine too), and listing (404 rather
        than 403).

        ``object_actions``: the object actions granted (the reconcile sweep HEADs only:
        ``s3:GetObject``)."""
        if not self.landing:
            return
        objects = [(b.logical, prefix, self._object_arn(b.physical, prefix))
                   for b in self.landing for prefix in b.notified_prefixes]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LandingObjectsRead",
            actions=list(object_actions),
            resources=[arn for _, _, arn in objects],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LandingList",
            actions=["s3:ListBucket"],
            resources=[self._bucket_arn(b.physical) for b in self.landing],
        ))
        imported = {b.logical for b in self.landing if b.imported}
        for bucket, prefix, arn in objects:
            scope = (f"the '{prefix}' prefix" if prefix else
                     "the whole bucket (a route has no prefix)" if bucket in imported else
                     "the whole bucket, which the stack creates for this stage's routes only: a key no "
                     "route takes is read to be quarantined 'no route' (never silently left)")
            acknowledge_wildcard_resource(
                role, arn,
                f"Landing bucket {bucket} (logical name): object keys are unknown until files arrive; read-only "
                f"({', '.join(a.split(':', 1)[1] for a in object_actions)}) on {scope}, exactly what S3 "
                "notifies the queue about.",
            )
