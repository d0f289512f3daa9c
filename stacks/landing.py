"""Landing buckets (one per distinct ``source.bucket``) and their S3 -> SQS notifications.

Bucket names are the ones written in the route files: they are the buckets users upload to.
A bucket declared ``existing: true`` in its routes is imported by name (never created,
never deleted); the stack only adds the notification to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .nag import acknowledge, acknowledge_wildcard_resource
from .route_plan import LandingBucketPlan
from .storage import secure_bucket_props

LANDING_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")


def construct_id(bucket_name: str) -> str:
    """Stable construct id per bucket name (logical ids follow it)."""
    return "Bucket-" + bucket_name


class LandingBuckets(Construct):
    """Creates or imports every landing bucket and notifies ``queue`` of new objects."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        plans: Sequence[LandingBucketPlan],
        queue: sqs.IQueue,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
        abort_multipart_days: int,
    ) -> None:
        super().__init__(scope, id)
        self.plans = tuple(plans)
        self.buckets: dict[str, s3.IBucket] = {}
        destination = s3n.SqsDestination(queue)
        for plan in self.plans:
            if plan.existing:
                bucket: s3.IBucket = s3.Bucket.from_bucket_name(
                    self, construct_id(plan.name), plan.name
                )
            else:
                bucket = s3.Bucket(
                    self,
                    construct_id(plan.name),
                    bucket_name=plan.name,
                    **secure_bucket_props(removal_policy=removal_policy),
                    server_access_logs_bucket=access_logs,
                    server_access_logs_prefix=f"s3-access/landing/{plan.name}/",
                    lifecycle_rules=[
                        s3.LifecycleRule(
                            id="abort-incomplete-multipart-uploads",
                            abort_incomplete_multipart_upload_after=Duration.days(
                                abort_multipart_days
                            ),
                        )
                    ],
                )
            for prefix in plan.notification_prefixes:
                filters = [s3.NotificationKeyFilter(prefix=prefix)] if prefix else []
                bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, *filters)
            self.buckets[plan.name] = bucket

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

    def grant_read(self, role: iam.Role) -> None:
        """Read-only: objects under the notified prefixes, and listing (404 rather than 403)."""
        if not self.plans:
            return
        objects = [(p.name, prefix, self._object_arn(p.name, prefix))
                   for p in self.plans for prefix in p.notification_prefixes]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LandingObjectsRead",
            actions=list(LANDING_READ_ACTIONS),
            resources=[arn for _, _, arn in objects],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LandingList",
            actions=["s3:ListBucket"],
            resources=[self._bucket_arn(p.name) for p in self.plans],
        ))
        for bucket, prefix, arn in objects:
            scope = f"the '{prefix}' prefix" if prefix else "the whole bucket (a route has no prefix)"
            acknowledge_wildcard_resource(
                role, arn,
                f"Landing bucket {bucket}: object keys are unknown until files arrive; read-only "
                f"(GetObject, GetObjectVersion) on {scope}, exactly what S3 notifies the queue "
                "about.",
            )
