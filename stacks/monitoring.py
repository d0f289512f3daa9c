"""Operations: CloudWatch alarms to one SNS topic, and a dashboard of the stage.

Alarms (each: one 5-minute period, missing data is not breaching, alarm and OK actions to
the topic):

- ``dlq-messages``: the DLQ holds a message (``ApproximateNumberOfMessagesVisible`` > 0):
  an object failed ``maxReceiveCount`` times (poison objects are quarantined *and* failed
  back, so they end here too).
- ``queue-oldest-message``: the oldest message of the ingest queue is older than the stage's
  ``oldest_message_alarm_seconds``: ingestion falls behind, or a failing message waits for
  its next try (a retry comes one visibility timeout later).
- ``ingest-errors`` / ``ingest-throttles``: failed or throttled invocations of the ingest
  function (an object that fails is a batch item failure, not an error: errors are the
  function itself: environment, routing table, timeout, memory).
- ``objects-quarantined``: the handler's EMF metric ``ObjectsQuarantined`` (namespace and
  ``service`` dimension exactly as the function's Powertools environment sets them).

The topic is encrypted with a customer managed KMS key (CloudWatch may use it: an AWS
managed key would drop alarm notifications) and accepts only TLS publishers.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(5)
# The handler's metrics (lakeroute/handler.py `publish`), each a Count per batch.
OBJECT_METRICS = ("ObjectsCommitted", "ObjectsSkipped", "ObjectsQuarantined", "ObjectsFailed")


@dataclass(frozen=True, kw_only=True)
class MetricsSource:
    """Where the handler's EMF metrics land: Powertools namespace and ``service`` dimension."""

    namespace: str
    service: str

    def metric(self, name: str, *, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
        return cw.Metric(namespace=self.namespace, metric_name=name,
                         dimensions_map={"service": self.service}, statistic=statistic,
                         period=PERIOD, label=label)


class Monitoring(Construct):
    """The alarm topic (optional e-mail subscription), the alarms and the dashboard."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        function: lambda_.IFunction,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        metrics: MetricsSource,
        oldest_message_alarm_seconds: int,
        alarm_email: str | None,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self, "TopicKey",
            description=f"{prefix}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # CloudWatch publishes alarm state changes to the encrypted topic.
        self.key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                       "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "AlarmTopic",
            display_name=f"{prefix} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(slug: str, metric: cw.IMetric, threshold: float, description: str) -> None:
            a = cw.Alarm(
                self, f"Alarm-{slug}",
                alarm_name=f"{prefix}-{slug}",
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            a.add_alarm_action(action)
            a.add_ok_action(action)
            self.alarms[slug] = a

        alarm("dlq-messages",
              dead_letter_queue.metric_approximate_number_of_messages_visible(
                  period=PERIOD, statistic="Maximum"),
              0, "Messages in the ingest DLQ: objects that failed every delivery. Inspect "
              "the quarantine, fix the route or the file, then redrive the DLQ.")
        alarm("queue-oldest-message",
              queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
              oldest_message_alarm_seconds,
              f"The oldest ingest message is older than {oldest_message_alarm_seconds} s: "
              "ingestion falls behind, or a failing object waits for its retry.")
        alarm("ingest-errors", function.metric_errors(period=PERIOD, statistic="Sum"), 0,
              "Ingest invocations failed as a whole (environment, routing table, timeout or "
              "memory); the batch is redelivered. See the function's logs.")
        alarm("ingest-throttles", function.metric_throttles(period=PERIOD, statistic="Sum"), 0,
              "Ingest invocations were throttled: account concurrency exhausted?")
        alarm("objects-quarantined", metrics.metric("ObjectsQuarantined"), 0,
              "Objects were quarantined (bad file, SQL, schema or expectation): see "
              "their error.json in the quarantine bucket.")

        self.dashboard = cw.Dashboard(
            self, "Dashboard",
            dashboard_name=f"{prefix}-{Aws.REGION}",  # dashboard names are per account
            default_interval=Duration.hours(24),
        )
        wide, third = 24, 8
        self.dashboard.add_widgets(
            cw.TextWidget(markdown=f"# {prefix}\nFiles routed into Iceberg; alarms go to the "
                          "stack output `AlarmTopicArn`.", width=wide, height=2),
        )
        # The alarms by ARN built from their (fixed) names, not GetAtt: the dashboard only
        # shows them (moto's CloudFormation, which has no alarm model, deploys it too).
        stack = Stack.of(self)
        by_name = [cw.Alarm.from_alarm_arn(self, f"Shown-{slug}", stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=f"{prefix}-{slug}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME)) for slug in self.alarms]
        self.dashboard.add_widgets(cw.AlarmStatusWidget(
            title="Alarms", alarms=by_name, width=wide, height=3))
        for a in self.alarms.values():
            self.dashboard.node.add_dependency(a)
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Files", width=third, left=[
                metrics.metric(name, label=name.removeprefix("Objects").lower())
                for name in OBJECT_METRICS]),
            cw.GraphWidget(title="Rows committed", width=third,
                           left=[metrics.metric("RowsCommitted", label="rows")]),
            cw.GraphWidget(title="Iceberg commits", width=third,
                           left=[metrics.metric("Commits", label="commits")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Ingest duration", width=third, left=[
                function.metric_duration(period=PERIOD, statistic=s, label=s)
                for s in ("Average", "p99", "Maximum")]),
            cw.GraphWidget(title="Ingest invocations, errors, throttles", width=third, left=[
                function.metric_invocations(period=PERIOD, statistic="Sum", label="invocations"),
                function.metric_errors(period=PERIOD, statistic="Sum", label="errors"),
                function.metric_throttles(period=PERIOD, statistic="Sum", label="throttles")]),
            cw.GraphWidget(title="Ingest concurrency", width=third, left=[
                function.metric("ConcurrentExecutions", period=PERIOD, statistic="Maximum",
                                label="concurrent executions")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Ingest queue depth", width=third, left=[
                queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="visible"),
                queue.metric_approximate_number_of_messages_not_visible(
                    period=PERIOD, statistic="Maximum", label="in flight")]),
            cw.GraphWidget(title="Ingest queue: oldest message (s)", width=third, left=[
                queue.metric_approximate_age_of_oldest_message(
                    period=PERIOD, statistic="Maximum", label="age")],
                left_annotations=[cw.HorizontalAnnotation(
                    value=oldest_message_alarm_seconds, label="alarm")]),
            cw.GraphWidget(title="DLQ depth", width=third, left=[
                dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="dead letters")]),
        )
