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
- ``objects-quarantined``: the handler's EMF metric ``ObjectsQuarantined`` (it includes the
  objects no route takes, also counted apart as ``ObjectsUnrouted``; namespace and
  ``service`` dimension exactly as the function's Powertools environment sets them; the
  large-object tasks' quarantines are counted into it by metric filters, stacks/large_objects.py).

With the large-object tier (stacks/large_objects.py):

- ``large-object-tasks-failed``: the stop handler's EMF metric ``LargeObjectTasksFailed``: a
  Fargate task failed its last attempt and its object was quarantined.
- ``stopped-task-errors``: invocations of the stop handler failed (Lambda retries them twice).
- ``stopped-task-dlq``: a stopped-task event could not be handled at all (its object is
  neither retried nor quarantined): see the handler's logs, then send the object again.

The commit lane (stacks/commit_lane.py):

- ``freshness``: the commit function's EMF metric ``FreshnessMaxSeconds`` (stage-wide: the
  ``service`` dimension only), Maximum over 5 minutes, above the stage's
  ``freshness_alarm_seconds``: some object took longer from its pick-up by an ingest function
  to visible in its table (committed in the current snapshot).
- ``commit-lane-dlq``: the lane's DLQ holds a signal (a table's commit failed every receive;
  its hand-offs wait under the lane prefix for the next signal or sweep).
- ``commit-errors``: invocations of the commit function failed as a whole (environment,
  timeout, memory); a table whose commit fails transiently is a batch item failure instead.
- ``commit-lane-stuck``: the lane's oldest message is older than two commit-function timeouts
  (a healthy signal waits at most for the invocation in flight, then its own): a table's
  commit failed and its message group waits out the visibility timeout. Freshness cannot see
  this (a table that commits nothing publishes no freshness).

The dashboard shows the stage's totals, per-route graphs (CloudWatch ``SEARCH`` over the EMF
metrics with the dimensions {service, route, table}: a route appears once it has published)
the tier (objects handed off, tasks failed, the stop handler) and the commit lane
(freshness per table, commits and objects per table, hand-offs waiting, the lane queue).

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
OBJECT_METRICS = ("ObjectsCommitted", "ObjectsSkipped", "ObjectsQuarantined", "ObjectsFailed", "ObjectsUnrouted")
# Per-route metrics (dimensions service, route, table): dashboard title -> [(metric, statistic)].
ROUTE_DIMENSIONS = ("service", "route", "table")
# The commit function's per-table metrics (lakeroute/lane_handler.py `publish`).
TABLE_DIMENSIONS = ("service", "table")
ROUTE_WIDGETS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Rows committed by route", (("RowsCommitted", "Sum"),)),
    ("Objects committed by route", (("ObjectsCommitted", "Sum"),)),
    ("Objects quarantined and failed by route", (("ObjectsQuarantined", "Sum"), ("ObjectsFailed", "Sum"))),
    ("Objects skipped by route", (("ObjectsSkipped", "Sum"),)),
    ("Bytes read by route", (("BytesRead", "Sum"),)),
    ("Seconds per object by route (max)", (("ObjectSeconds", "Maximum"),)),
    ("Commit retries by route", (("CommitRetries", "Sum"),)),
)


@dataclass(frozen=True, kw_only=True)
class MetricsSource:
    """Where the handler's EMF metrics land: Powertools namespace and ``service`` dimension."""

    namespace: str
    service: str

    def metric(self, name: str, *, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
        return cw.Metric(namespace=self.namespace, metric_name=name,
                         dimensions_map={"service": self.service}, statistic=statistic,
                         period=PERIOD, label=label)

    def table_search(self, name: str, statistic: str, *, prefix: str = "") -> cw.MathExpression:
        """One line per table of this stage's service (the commit function's metrics)."""
        schema = ",".join((self.namespace, *TABLE_DIMENSIONS))
        return cw.MathExpression(
            expression=(f"SEARCH('{{{schema}}} service=\"{self.service}\" "
                        f"MetricName=\"{name}\"', '{statistic}', {int(PERIOD.to_seconds())})"),
            using_metrics={}, period=PERIOD, label=prefix + "${PROP('Dim.table')}",
        )

    def route_search(self, name: str, statistic: str, *, prefix: str = "") -> cw.MathExpression:
        """One line per (route, table) of this stage's service: a CloudWatch SEARCH, each line
        labelled with its route and table (dynamic labels)."""
        schema = ",".join((self.namespace, *ROUTE_DIMENSIONS))
        return cw.MathExpression(
            expression=(f"SEARCH('{{{schema}}} service=\"{self.service}\" "
                        f"MetricName=\"{name}\"', '{statistic}', {int(PERIOD.to_seconds())})"),
            using_metrics={}, period=PERIOD,
            label=prefix + "${PROP('Dim.route')} (${PROP('Dim.table')})",
        )


@dataclass(frozen=True, kw_only=True)
class LargeObjectSignals:
    """What the large-object tier's alarms watch besides its EMF metric."""

    stop_function: lambda_.IFunction
    dead_letter_queue: sqs.IQueue


@dataclass(frozen=True, kw_only=True)
class CommitLaneSignals:
    """What the commit lane's alarms watch besides its EMF metrics."""

    function: lambda_.IFunction
    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    freshness_alarm_seconds: int
    stuck_message_seconds: int


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
        large_objects: LargeObjectSignals | None = None,
        commit_lane: CommitLaneSignals | None = None,
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
              "Objects were quarantined (no route, bad file, SQL, schema or expectation): see "
              "their error.json in the quarantine bucket (`lakeroute quarantine ls --stage S`). "
              "A 'no route' entry names the closest route and why it did not match: move the "
              "file to a routed key or add a route (ObjectsUnrouted counts these).")
        if large_objects is not None:
            alarm("large-object-tasks-failed", metrics.metric("LargeObjectTasksFailed"), 0,
                  "A large-object Fargate task failed its last attempt: the object is "
                  "quarantined with the task's stop reason (error.json). See the task's logs.")
            alarm("stopped-task-errors",
                  large_objects.stop_function.metric_errors(period=PERIOD, statistic="Sum"), 0,
                  "The stop handler of large-object tasks failed (retried twice by Lambda): a "
                  "failed task may not have been restarted or quarantined yet. See its logs.")
            alarm("stopped-task-dlq",
                  large_objects.dead_letter_queue.metric_approximate_number_of_messages_visible(
                      period=PERIOD, statistic="Maximum"),
                  0, "Stopped-task events nobody handled: their objects were neither retried "
                  "nor quarantined. Read the event (the object is in its overrides), fix the "
                  "cause, then copy the object in place to ingest it again.")

        if commit_lane is not None:
            lane = commit_lane
            alarm("freshness", metrics.metric("FreshnessMaxSeconds", statistic="Maximum"),
                  lane.freshness_alarm_seconds,
                  f"An object took more than {lane.freshness_alarm_seconds} s from its pick-up by an "
                  "ingest function to visible in its table. See the dashboard's freshness per table "
                  "and the commit function's logs (retries, waiting hand-offs).")
            alarm("commit-lane-dlq",
                  lane.dead_letter_queue.metric_approximate_number_of_messages_visible(
                      period=PERIOD, statistic="Maximum"),
                  0, "Commit-lane signals failed every receive: a table's commit keeps failing (see "
                  "the commit function's logs). Its hand-offs wait in the lane prefix; fix the cause, "
                  "then redrive the DLQ (or let the next signal or sweep commit them).")
            alarm("commit-errors", lane.function.metric_errors(period=PERIOD, statistic="Sum"), 0,
                  "Commit-function invocations failed as a whole (environment, timeout or memory); "
                  "the tables' signals are redelivered after the lane's visibility timeout.")
            alarm("commit-lane-stuck",
                  lane.queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                  lane.stuck_message_seconds,
                  f"A commit-lane signal is older than {lane.stuck_message_seconds} s (two commit "
                  "timeouts): a table's commit failed and its lane waits for the visibility timeout. "
                  "See the commit function's logs for the table.")

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
        self.dashboard.add_widgets(
            *(cw.GraphWidget(title=title, width=third, left=[
                metrics.route_search(name, statistic,
                                     prefix=f"{name.removeprefix('Objects').lower()}: " if len(searches) > 1 else "")
                for name, statistic in searches])
              for title, searches in ROUTE_WIDGETS),
        )
        if large_objects is not None:
            stop = large_objects.stop_function
            self.dashboard.add_widgets(
                cw.GraphWidget(title="Large objects: handed off, tasks failed", width=third, left=[
                    metrics.metric("ObjectsHandedOff", label="handed off to Fargate"),
                    metrics.metric("LargeObjectTasksFailed", label="tasks failed (quarantined)")]),
                cw.GraphWidget(title="Stopped-task handler", width=third, left=[
                    stop.metric_invocations(period=PERIOD, statistic="Sum", label="invocations"),
                    stop.metric_errors(period=PERIOD, statistic="Sum", label="errors")]),
                cw.GraphWidget(title="Stopped-task DLQ depth", width=third, left=[
                    large_objects.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="unhandled events")]),
            )
        if commit_lane is not None:
            self._lane_widgets(metrics, commit_lane, third)

    def _lane_widgets(self, metrics: MetricsSource, lane: CommitLaneSignals, width: int) -> None:
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Freshness: pick-up to visible (s, max)", width=width, left=[
                metrics.metric("FreshnessMaxSeconds", statistic="Maximum", label="stage max"),
                metrics.table_search("FreshnessMaxSeconds", "Maximum", prefix="max: "),
                metrics.table_search("FreshnessP50Seconds", "Maximum", prefix="p50: ")],
                left_annotations=[cw.HorizontalAnnotation(value=lane.freshness_alarm_seconds, label="alarm")]),
            cw.GraphWidget(title="Lane commits and objects by table", width=width, left=[
                metrics.table_search("LaneCommits", "Sum", prefix="commits: ")], right=[
                metrics.table_search("LaneObjects", "Sum", prefix="objects: ")]),
            cw.GraphWidget(title="Hand-offs waiting, commit retries by table", width=width, left=[
                metrics.table_search("LaneWaiting", "Maximum", prefix="waiting: "),
                metrics.table_search("CommitRetries", "Sum", prefix="retries: ")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Commit function", width=width, left=[
                lane.function.metric_invocations(period=PERIOD, statistic="Sum", label="invocations"),
                lane.function.metric_errors(period=PERIOD, statistic="Sum", label="errors")], right=[
                lane.function.metric_duration(period=PERIOD, statistic="Maximum", label="duration max")]),
            cw.GraphWidget(title="Commit lane queue", width=width, left=[
                lane.queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="visible"),
                lane.queue.metric_approximate_number_of_messages_not_visible(
                    period=PERIOD, statistic="Maximum", label="in flight")], right=[
                lane.queue.metric_approximate_age_of_oldest_message(
                    period=PERIOD, statistic="Maximum", label="oldest (s)")]),
            cw.GraphWidget(title="Commit lane DLQ depth", width=width, left=[
                lane.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="dead signals")]),
        )
