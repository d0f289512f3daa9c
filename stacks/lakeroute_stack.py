"""The lakeroute stack: every construct of one stage, wired and granted.

Stateful constructs (buckets, tables, Glue databases, queues) and compute (functions, route
sync) are separate constructs; with ``removal_policy: retain`` every stateful resource
survives a stack deletion or a refactoring that moves compute elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, Duration, Environment, Stack, Tags
from aws_cdk.aws_lambda import Tracing
from constructs import Construct
from lakeroute.core.routes import Route

from . import route_plan
from .catalog import INGEST_GLUE_ACTIONS, SYNC_GLUE_ACTIONS, GlueCatalog
from .config import StageConfig
from .functions import FunctionSettings, IngestFunction
from .image import INGEST_CMD, SYNC_CMD
from .landing import LandingBuckets
from .queue import IngestQueue
from .route_sync import RouteSync
from .storage import AccessLogsBucket, DataLakeStorage
from .tables import RoutingTables

DEFAULT_ROUTES_DIR = Path(__file__).resolve().parent.parent / "routes"


class LakerouteStack(Stack):
    """Landing buckets -> SQS (DLQ) -> ingest function -> Iceberg on Glue + S3."""

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
        namespaces = route_plan.namespaces(self.routes)
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
        self.catalog = GlueCatalog(
            self, "Catalog",
            namespaces=namespaces,
            location_for=self.storage.namespace_location,
            removal_policy=removal,
        )
        self.queue = IngestQueue(
            self, "IngestQueue",
            visibility_timeout=Duration.seconds(config.queue_visibility_timeout_seconds),
            removal_policy=removal,
        )
        self.landing = LandingBuckets(
            self, "Landing",
            plans=plans,
            queue=self.queue.queue,
            access_logs=self.access_logs.bucket,
            removal_policy=removal,
            abort_multipart_days=config.abort_multipart_days,
        )

        # ---------------------------------------------------------- compute
        environment = {
            "LAKEROUTE_ROUTES_TABLE": self.tables.routes.table_name,
            "LAKEROUTE_LEDGER_TABLE": self.tables.ledger.table_name,
            "LAKEROUTE_WAREHOUSE": self.storage.warehouse_uri,
            "LAKEROUTE_QUARANTINE": self.storage.quarantine_uri,
            "LAKEROUTE_CATALOG": "glue",
            "LAKEROUTE_STAGE": config.name,
            "POWERTOOLS_SERVICE_NAME": "lakeroute",
            "POWERTOOLS_METRICS_NAMESPACE": "lakeroute",
            "LOG_LEVEL": config.log_level,
        }
        self.ingest = IngestFunction(
            self, "Ingest",
            cmd=INGEST_CMD,
            settings=FunctionSettings(
                memory_mb=config.memory_mb,
                timeout=Duration.seconds(config.timeout_seconds),
                ephemeral_storage_mb=config.ephemeral_storage_mb,
                environment=environment,
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
        )
        # Tables are created inside the databases: sync after they exist.
        for db in self.catalog.databases.values():
            self.route_sync.resource.node.add_dependency(db)

        # ---------------------------------------------------------- grants
        ingest = self.ingest.role
        self.landing.grant_read(ingest)
        self.storage.grant_warehouse_read_write(ingest)
        self.storage.grant_quarantine_write(ingest)
        self.tables.grant_routes_read(ingest)
        self.tables.grant_ledger_read_write(ingest)
        self.catalog.grant(ingest, INGEST_GLUE_ACTIONS)

        sync = self.route_sync.role
        self.tables.grant_routes_sync(sync)
        self.storage.grant_warehouse_read_write(sync)
        self.catalog.grant(sync, SYNC_GLUE_ACTIONS)

        # CDK adds explicit DependsOn that duplicate a GetAtt dependency (function -> role,
        # notifications -> queue): harmless, and not ours to remove. Every other check applies.
        self.template_options.metadata = {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}}

        Tags.of(self).add("project", "lakeroute")
        Tags.of(self).add("stage", config.name)
