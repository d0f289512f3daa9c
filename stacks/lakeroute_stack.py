"""The lakeroute stack: every construct of one stage, wired and granted.

Stateful constructs (buckets, tables, Glue databases, queues), compute (functions, route
sync, the large-object tier on ECS Fargate and its network) and operations (alarms, topic,
dashboard) are separate constructs; with
``removal_policy: retain`` every stateful resource survives a stack deletion or a
refactoring that moves compute elsewhere. Route files name logical buckets and namespaces;
``stacks.naming`` gives the stage's physical names, published as stack outputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Annotations, Aws, CfnOutput, Duration, Environment, Fn, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk.aws_lambda import Tracing
from constructs import Construct
from lakeroute.core.routes import Route

from . import route_plan
from .catalog import INGEST_GLUE_ACTIONS, SYNC_GLUE_ACTIONS, GlueCatalog
from .commit_lane import CommitLane
from .config import StageConfig
from .functions import FunctionSettings, IngestFunction
from .image import INGEST_CMD, SYNC_CMD
from .landing import LandingBuckets
from .large_objects import LargeObjectTier, TaskSize
from .maintenance import ENQUEUE_GLUE_ACTIONS, MAINTAIN_CMD, TableMaintenance
from .maintenance import ROUTES_SCAN_ACTIONS as MAINTAIN_ROUTES_ACTIONS
from .monitoring import CommitLaneSignals, LargeObjectSignals, MetricsSource, Monitoring
from .naming import StageNames, output_id, stage_names, stage_tag
from .network import AZ_COUNT, TaskNetwork
from .producers import ProducerPolicies, producer_output_id
from .queue import IngestQueue
from .route_sync import RouteSync
from .storage import AccessLogsBucket, DataLakeStorage
from .sweep import (
    LEDGER_SWEEP_ACTIONS,
    ROUTES_SCAN_ACTIONS,
    SWEEP_CMD,
    SWEEP_GLUE_ACTIONS,
    SWEEP_LANDING_OBJECT_ACTIONS,
    ReconcileSweep,
)
from .table_bucket import TableBucketCatalog
from .tables import ROUTES_READ_ACTIONS, RoutingTables

METRICS_NAMESPACE = "lakeroute"

DEFAULT_ROUTES_DIR = Path(__file__).resolve().parent.parent / "routes"


class LakerouteStack(Stack):
    """Landing buckets -> SQS (DLQ) -> ingest functions (stage, hand off) -> SQS FIFO per table
    -> commit function -> Iceberg on Glue + S3."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        routes: list[Route] | None = None,
        routes_dir: Path = DEFAULT_ROUTES_DIR,
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(
            scope, id, env=env,
            description=description or f"lakeroute ({config.name}): S3 files routed into Iceberg",
        )
        self.config = config
        self.routes = route_plan.load_route_set(routes_dir) if routes is None else list(routes)
        if not self.routes:
            Annotations.of(self).add_warning_v2(
                "lakeroute:NoRoutes",
                f"no route files under {routes_dir}: no landing bucket is created",
            )
        plans = route_plan.landing_buckets(self.routes)
        # Logical names (route files) -> this stage's physical names (stacks/naming.py).
        self.names = stage_names(config, plans, route_plan.namespaces(self.routes),
                                 account=Aws.ACCOUNT_ID, region=Aws.REGION)
        removal = config.cdk_removal_policy

        # ---------------------------------------------------------- stateful
        self.access_logs = AccessLogsBucket(
            self, "AccessLogs",
            removal_policy=removal,
            auto_delete_objects=config.auto_delete_objects,
            expiry_days=config.access_log_expiry_days,
            abort_multipart_days=config.abort_multipart_days,
        )
        self.storage = DataLakeStorage(
            self, "Storage",
            access_logs=self.access_logs.bucket,
            removal_policy=removal,
            auto_delete_objects=config.auto_delete_objects,
            quarantine_expiry_days=config.quarantine_expiry_days,
            warehouse_noncurrent_expiry_days=config.warehouse_noncurrent_expiry_days,
            abort_multipart_days=config.abort_multipart_days,
        )
        self.tables = RoutingTables(
            self, "Tables", removal_policy=removal, deletion_protection=config.retain,
        )
        self.catalog: GlueCatalog | TableBucketCatalog = GlueCatalog(
            self, "Catalog", databases=self.names.databases,
            location_for=self.storage.namespace_location, removal_policy=removal,
        ) if config.catalog == "glue" else TableBucketCatalog(  # cdk.json `catalog: s3tables`
            self, "TableBucketCatalog", bucket_name=f"lakeroute-{stage_tag(config)}-tables",
            databases=self.names.databases, removal_policy=removal)
        self.queue = IngestQueue(
            self, "IngestQueue",
            visibility_timeout=Duration.seconds(config.queue_visibility_timeout_seconds),
            removal_policy=removal,
        )
        self.landing = LandingBuckets(
            self, "Landing",
            buckets=self.names.buckets,
            queue=self.queue.queue,
            access_logs=self.access_logs.bucket,
            removal_policy=removal,
            abort_multipart_days=config.abort_multipart_days,
        )
        # What producers attach to upload (stack outputs ProducerPolicyArn<Bucket>).
        self.producers = ProducerPolicies(self, "Producers", landing=self.names.buckets,
                                          buckets=self.landing.buckets, stage=config.name)

        # ---------------------------------------------------------- compute
        # The handler's EMF metrics: Powertools takes the namespace and the `service`
        # dimension from these variables; the service is the stack's name, so the metrics
        # (and the alarms on them) of two stages in one account never mix.
        metrics = MetricsSource(namespace=METRICS_NAMESPACE, service=self.stack_name)
        environment = {
            "LAKEROUTE_ROUTES_TABLE": self.tables.routes.table_name,
            "LAKEROUTE_LEDGER_TABLE": self.tables.ledger.table_name,
            "LAKEROUTE_WAREHOUSE": self.storage.warehouse_uri,
            "LAKEROUTE_QUARANTINE": self.storage.quarantine_uri,
            **self.catalog.environment,
            "LAKEROUTE_STAGE": config.name,
            "POWERTOOLS_SERVICE_NAME": metrics.service,
            "POWERTOOLS_METRICS_NAMESPACE": metrics.namespace,
            "LOG_LEVEL": config.log_level,
        }
        # Objects the function cannot finish: ECS Fargate tasks of the same image
        # (``large_object_tier: false``: none, and the function never hands off).
        self.network: TaskNetwork | None = None
        self.large_objects: LargeObjectTier | None = None
        if config.large_object_tier:
            self.network = TaskNetwork(self, "TaskNetwork", log_retention=config.log_retention,
                                       removal_policy=removal)
            self.large_objects = LargeObjectTier(
                self, "LargeObjects",
                network=self.network,
                environment=environment,
                size=TaskSize(cpu=config.task_cpu, memory_mb=config.task_memory_mb,
                              ephemeral_storage_gb=config.task_ephemeral_storage_gb),
                threshold_bytes=config.large_object_threshold,
                max_attempts=config.task_max_attempts,
                container_insights=config.task_container_insights,
                metrics_namespace=metrics.namespace,
                log_retention=config.log_retention,
                removal_policy=removal,
            )
        tier = self.large_objects
        # The commit lane (stacks/commit_lane.py): ingest functions stage and hand off, one
        # committer per table commits. The committer gets the lane but not its queue: it commits
        # what it reads again (a changed schema) instead of handing it off once more.
        lane_root = {"LAKEROUTE_LANE": self.storage.lane_uri}
        self.lane = CommitLane(
            self, "CommitLane",
            name=f"lakeroute-{stage_tag(config)}-commit-lane",
            settings=FunctionSettings(
                memory_mb=config.commit_memory_mb,
                timeout=Duration.seconds(config.commit_timeout_seconds),
                # re-reading an object whose staged files no longer fit the table downloads it
                ephemeral_storage_mb=config.ephemeral_storage_mb,
                environment={**environment, **lane_root,
                             "LAKEROUTE_COMMIT_DEFAULTS": json.dumps(config.commit_defaults, sort_keys=True)},
                log_retention=config.log_retention,
                removal_policy=removal,
            ),
            removal_policy=removal,
        )
        lane = {**lane_root, "LAKEROUTE_LANE_QUEUE": self.lane.queue.queue_url}
        self.ingest = IngestFunction(
            self, "Ingest",
            cmd=INGEST_CMD,
            settings=FunctionSettings(
                memory_mb=config.memory_mb,
                timeout=Duration.seconds(config.timeout_seconds),
                ephemeral_storage_mb=config.ephemeral_storage_mb,
                environment={**environment, **lane, **(tier.environment if tier else {})},
                log_retention=config.log_retention,
                removal_policy=removal,
            ),
            queue=self.queue.queue,
            batch_size=config.batch_size,
            max_batching_window=Duration.seconds(config.max_batching_window_seconds),
            max_concurrency=config.max_concurrency,
        )
        self.route_sync = RouteSync(
            self, "RouteSync",
            cmd=SYNC_CMD,
            settings=FunctionSettings(
                memory_mb=config.memory_mb,
                timeout=Duration.seconds(config.sync_timeout_seconds),
                ephemeral_storage_mb=512,
                environment=environment,
                log_retention=config.log_retention,
                removal_policy=removal,
                tracing=Tracing.DISABLED,  # runs once per deploy; its logs suffice
            ),
            routes_json=route_plan.routes_payload(self.routes),
            buckets=self.names.bucket_map(),
            namespaces=self.names.databases,
        )
        # Lost notifications: a scheduled sweep re-sends what the ledger does not hold.
        self.sweep: ReconcileSweep | None = None
        if config.sweep_interval_minutes is not None:
            self.sweep = ReconcileSweep(
                self, "Sweep",
                cmd=SWEEP_CMD,
                settings=FunctionSettings(
                    memory_mb=min(config.memory_mb, 2048),
                    timeout=Duration.seconds(config.timeout_seconds),
                    ephemeral_storage_mb=512,
                    # + the lane: each run signals the tables whose hand-offs wait (lost signals)
                    environment={**environment, **lane,
                                 "LAKEROUTE_INGEST_QUEUE_URL": self.queue.queue.queue_url,
                                 # Listed whole, their unrouted keys quarantined (lakeroute.aws.sweep).
                                 "LAKEROUTE_OWNED_BUCKETS": ",".join(
                                     b.physical for b in self.names.buckets if not b.imported)},
                    log_retention=config.log_retention,
                    removal_policy=removal,
                ),
                interval=Duration.minutes(config.sweep_interval_minutes),
                queue=self.queue.queue,
            )
        # Table maintenance: the same `maintain` as the CLI, on a schedule (docs/operations.md, Maintenance),
        # run by the commit function in each table's lane: this function only enqueues it.
        self.maintenance: TableMaintenance | None = None
        if config.maintenance_interval_minutes is not None:
            self.maintenance = TableMaintenance(
                self, "Maintenance",
                cmd=MAINTAIN_CMD,
                settings=FunctionSettings(
                    memory_mb=min(config.memory_mb, 1024),  # lists the routes, sends messages
                    timeout=Duration.minutes(5),
                    ephemeral_storage_mb=512,
                    environment={**environment, **lane},
                    log_retention=config.log_retention,
                    removal_policy=removal,
                ),
                interval=Duration.minutes(config.maintenance_interval_minutes),
            )
        # Tables are created inside the databases: sync after they exist.
        for db in self.catalog.databases.values():
            self.route_sync.resource.node.add_dependency(db)

        # ---------------------------------------------------------- grants
        ingest = self.ingest.role
        self._grant_ingest_data(ingest)
        self.storage.grant_lane_hand_off(ingest)
        self.lane.grant_send(ingest)

        # The committer: what ingest calls (it commits, re-reads objects whose staged files no
        # longer fit the table, quarantines rows that cannot be written), the lane's records, and
        # each table's maintenance in its lane (+ routes Scan: the maintenance settings).
        committer = self.lane.role
        self._grant_ingest_data(committer, routes_actions=(
            *ROUTES_READ_ACTIONS, *(MAINTAIN_ROUTES_ACTIONS if self.maintenance is not None else ())))
        self.storage.grant_lane_read_write(committer)
        if tier is not None:
            # The task ingests like the function: the same data permissions, nothing else.
            self._grant_ingest_data(tier.task_role)
            tier.grant_hand_off(ingest)
            # The stop handler quarantines an object after its last attempt: it reads the
            # landing object (HEAD, the copy's source) and writes the quarantine.
            self.landing.grant_read(tier.stop_role)
            self.storage.grant_quarantine_write(tier.stop_role)

        if self.sweep is not None:
            swept = self.sweep.role
            self.tables.routes.grant(swept, *ROUTES_SCAN_ACTIONS)
            self.tables.ledger.grant(swept, *LEDGER_SWEEP_ACTIONS)
            self.catalog.grant(swept, SWEEP_GLUE_ACTIONS)
            self.storage.grant_warehouse_read(swept)
            self.landing.grant_read(swept, SWEEP_LANDING_OBJECT_ACTIONS)
            self.storage.grant_quarantine_records_read(swept)
            self.storage.grant_lane_list(swept)
            self.lane.grant_send(swept)

        if self.maintenance is not None:
            # {"maintain": table} per existing table (Glue GetTable + metadata) into its lane.
            maintainer = self.maintenance.role
            self.tables.routes.grant(maintainer, *MAINTAIN_ROUTES_ACTIONS)
            self.catalog.grant(maintainer, ENQUEUE_GLUE_ACTIONS)
            self.storage.grant_warehouse_read(maintainer)
            self.lane.grant_send(maintainer)

        sync = self.route_sync.role
        self.tables.grant_routes_sync(sync)
        self.storage.grant_warehouse_read_write(sync)
        self.catalog.grant(sync, SYNC_GLUE_ACTIONS)

        # ---------------------------------------------------------- operations
        self.monitoring = Monitoring(
            self, "Monitoring",
            prefix=self.stack_name,
            function=self.ingest.function,
            queue=self.queue.queue,
            dead_letter_queue=self.queue.dead_letter_queue,
            metrics=metrics,
            large_objects=None if tier is None else LargeObjectSignals(
                stop_function=tier.stop_function, dead_letter_queue=tier.dead_letter_queue),
            commit_lane=CommitLaneSignals(
                function=self.lane.function, queue=self.lane.queue,
                dead_letter_queue=self.lane.dead_letter_queue,
                freshness_alarm_seconds=config.freshness_alarm_seconds,
                stuck_message_seconds=2 * config.commit_timeout_seconds),
            oldest_message_alarm_seconds=config.oldest_message_alarm_seconds,
            alarm_email=config.alarm_email,
            removal_policy=removal,
        )
        self._outputs(self.names)

        # CDK adds explicit DependsOn that duplicate a GetAtt dependency (function -> role,
        # notifications -> queue): harmless, and not ours to remove. Every other check applies.
        self.template_options.metadata = {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}}

        Tags.of(self).add("project", "lakeroute")
        Tags.of(self).add("stage", config.name)

    @property
    def availability_zones(self) -> list[str]:
        """The first AZs of the region, resolved by CloudFormation (``Fn::GetAZs``).

        What CDK does for an environment-agnostic stack; with a stage's account and region
        pinned, CDK would look them up in the account instead (synth must stay offline).
        """
        return [Fn.select(i, Fn.get_azs()) for i in range(AZ_COUNT)]

    def _grant_ingest_data(self, role: iam.Role, *, routes_actions: Sequence[str] = ROUTES_READ_ACTIONS) -> None:
        """What ingesting an object calls: landing read, warehouse read/write, quarantine,
        routes Query, the ledger, Glue (stacks/tables.py, catalog.py, storage.py, landing.py)."""
        self.landing.grant_read(role)
        self.storage.grant_warehouse_read_write(role)
        self.storage.grant_quarantine_write(role)
        self.tables.routes.grant(role, *routes_actions)
        self.tables.grant_ledger_read_write(role)
        self.catalog.grant(role, INGEST_GLUE_ACTIONS)

    def _outputs(self, names: StageNames) -> None:
        """Stack outputs, each exported as ``<stack name>-<output id>``.

        What a ``--stage`` command reads with DescribeStacks: the JSON maps
        (``LandingBuckets``, ``GlueDatabases``: logical -> physical) plus one output per
        bucket and per database, the queues, tables, locations and the alarm topic.
        """
        def output(id: str, value: str, description: str) -> None:
            if self.node.try_find_child(id) is not None:
                raise route_plan.RoutePlanError(
                    f"two logical names give the stack output id {id}: rename one ({description})")
            CfnOutput(self, id, value=value, description=description,
                      export_name=f"{self.stack_name}-{id}")

        output("Stage", self.config.name, "lakeroute stage of this stack")
        output("LandingBuckets", self.to_json_string(names.bucket_map()),
               "JSON: logical landing bucket (route files) -> physical S3 bucket")
        for b in names.buckets:
            output(output_id("LandingBucket", b.logical), b.physical,
                   f"landing bucket {b.logical}" + (" (imported)" if b.imported else ""))
            output(producer_output_id(b.logical), self.producers.policies[b.logical].managed_policy_arn,
                   f"IAM managed policy for producers of landing bucket {b.logical}: attach it to the "
                   "role or user that uploads")
        self.catalog.add_outputs(output, self.to_json_string(dict(names.databases)))
        output("IngestQueueUrl", self.queue.queue.queue_url, "SQS queue of the S3 notifications")
        output("DeadLetterQueueUrl", self.queue.dead_letter_queue.queue_url,
               "DLQ: messages that failed maxReceiveCount times")
        output("RoutesTableName", self.tables.routes.table_name, "DynamoDB routing table")
        output("LedgerTableName", self.tables.ledger.table_name, "DynamoDB exactly-once ledger")
        output("WarehouseUri", self.storage.warehouse_uri, "Iceberg warehouse (s3://bucket/prefix)")
        output("QuarantineUri", self.storage.quarantine_uri, "quarantine (s3://bucket/prefix)")
        output("IngestFunctionName", self.ingest.function.function_name, "ingest Lambda function")
        output("CommitLaneQueueUrl", self.lane.queue.queue_url, "commit lane: SQS FIFO queue, group = table")
        output("CommitLaneDeadLetterQueueUrl", self.lane.dead_letter_queue.queue_url,
               "DLQ of the commit lane: signals that failed maxReceiveCount times (hand-offs wait in S3)")
        output("CommitLaneUri", self.storage.lane_uri, "commit-lane hand-offs (s3://bucket/prefix)")
        output("CommitFunctionName", self.lane.function.function_name,
               "commit function: one committer per table, fed by the commit lane")
        if self.sweep is not None:
            output("SweepFunctionName", self.sweep.function.function_name,
                   "reconcile sweep: re-sends landed objects whose notification was lost")
        if self.maintenance is not None:
            output("MaintenanceFunctionName", self.maintenance.function.function_name,
                   "table maintenance: compaction, snapshot expiry, orphan-file removal")
        if self.large_objects is not None:
            tier = self.large_objects
            output("LargeObjectClusterName", tier.cluster.cluster_name,
                   "ECS cluster of the large-object tasks")
            output("LargeObjectTaskFamily", tier.family,
                   "task definition family of the large-object tasks (one revision per deploy)")
            output("StoppedTaskFunctionName", tier.stop_function.function_name,
                   "stop handler: restarts failed large-object tasks, quarantines after the last")
        output("AlarmTopicArn", self.monitoring.topic.topic_arn, "SNS topic of every alarm")
        output("DashboardName", self.monitoring.dashboard.dashboard_name, "CloudWatch dashboard")
