"""Lambda entry point of the scheduled table maintenance (``lakeroute.maintain.handler``).

Runs ``lakeroute maintain --apply`` on every table the routing table names, with each route's
``target.maintenance`` settings (``core.maintenance``): compaction, snapshot expiry, orphan
removal, in the same image as the ingest function. It is ledger-aware (reconciles before
expiring) and yields to ingest commits (a conflicted compaction retries, then gives way).
Tables start in a random order and none starts within ``MARGIN_SECONDS`` of the deadline:
a table left over is the next run's. The environment is the ingest function's
(``LAKEROUTE_ROUTES_TABLE``, ``LAKEROUTE_LEDGER_TABLE``, ``LAKEROUTE_WAREHOUSE``, ...).
With a commit lane (``LAKEROUTE_LANE_QUEUE``) it runs nothing itself: it puts one message
per table in the lane's FIFO queue, and the commit function maintains each table in its
lane (``lakeroute.lane_handler``), so maintenance never races the table's ingest commits.
Publishes the EMF metrics ``FilesCompacted``, ``SnapshotsExpired``, ``OrphansRemoved`` and
``MaintenanceYielded`` in the handler's namespace and ``service`` dimension.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from .handler import deadline as lambda_deadline

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from .core.ledger import Ledger
    from .core.maintain.maintenance import MaintenanceReport
    from .core.maintain.references import Lister
    from .core.routes import Maintenance

os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "lakeroute")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lakeroute"))
MARGIN_SECONDS = 120.0  # no table starts in the last 2 minutes of the invocation


@dataclass
class MaintenanceJob:
    catalog: Catalog
    ledger: Ledger
    lister: Lister
    settings: dict[str, Maintenance]

    @property
    def managed(self) -> bool:
        """S3 Tables compact and remove unreferenced files themselves (``aws.s3tables_maintenance``)."""
        from .aws.s3tables import S3TablesCatalog

        return isinstance(self.catalog, S3TablesCatalog)

    def run(self, deadline: float | None = None) -> tuple[list[MaintenanceReport], list[str]]:
        from .core.maintain.maintenance import maintain_tables

        if self.managed:  # also the tables created by a first commit since the last sync
            from .aws.s3tables_maintenance import configure_tables

            for line in configure_tables(self.catalog, self.settings):  # type: ignore[arg-type]
                logger.info(line)
        tables = [t for t in self.settings if self.catalog.table_exists(t)]
        random.shuffle(tables)  # a table left over by a deadline is not always the same one
        return maintain_tables(self.catalog, self.ledger, self.lister, self.settings, tables,
                               apply=True, deadline=deadline, managed=self.managed)


def build_job(env: dict[str, str] | None = None) -> MaintenanceJob:
    import boto3

    from .aws.catalog import make_catalog
    from .aws.clients import aws_client, botocore_session
    from .aws.config import AwsConfig
    from .aws.ledger import DynamoLedger
    from .aws.s3_listing import s3_lister
    from .aws.sweep import scan_routes
    from .core.maintain.maintenance import settings_by_table

    config = AwsConfig.from_env(dict(os.environ) if env is None else env)
    core = botocore_session()  # its loaded data shared with the catalog's session (make_catalog)
    session = boto3.session.Session(botocore_session=core)
    ddb = aws_client("dynamodb", session)
    return MaintenanceJob(
        catalog=make_catalog(config, core),
        ledger=DynamoLedger(config.ledger_table, ddb=ddb, ttl_days=config.ledger_ttl_days),
        lister=s3_lister(aws_client("s3", session)),
        settings=settings_by_table(scan_routes(ddb, config.routes_table)))


def handler(event: Any, context: Any) -> dict[str, Any]:
    job = build_job()
    queue = os.environ.get("LAKEROUTE_LANE_QUEUE", "").strip()
    if queue:  # the stage has a commit lane: each table's maintenance runs in its lane
        return {"enqueued": enqueue_in_lanes(job, queue)}
    reports, unfinished = job.run(deadline=lambda_deadline(context, MARGIN_SECONDS))
    publish(reports, unfinished)
    return {"tables": [r.table for r in reports], "unfinished": unfinished,
            "files_compacted": sum(r.compaction.plan.rewritten for r in reports
                                   if r.compaction and r.compaction.snapshot_id),
            "snapshots_expired": sum(r.snapshots_expired for r in reports),
            "orphans_removed": sum(r.orphans for r in reports)}


def enqueue_in_lanes(job: MaintenanceJob, queue_url: str) -> list[str]:
    """One ``{"maintain": table}`` message per existing table, in the table's message group,
    so that the commit function runs it between (never during) the table's commits. The
    deduplication id is the table and the hour: a re-run within SQS's five minutes adds none."""
    import json

    from .aws.clients import aws_client

    sqs = aws_client("sqs")
    hour = time.strftime("%Y%m%d%H", time.gmtime())
    tables = [t for t in job.settings if job.catalog.table_exists(t)]
    for table in tables:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"maintain": table}), MessageGroupId=table,
                         MessageDeduplicationId=f"maintain-{table}-{hour}")
    logger.info("maintenance enqueued in the commit lanes", extra={"tables": tables})
    return tables



def publish(reports: list[MaintenanceReport], unfinished: list[str]) -> None:
    compacted = expired = orphans = yielded = 0
    for r in reports:
        if r.error:
            logger.error("table maintenance failed", extra={"table": r.table, "error": r.error})
            continue
        logger.info("table maintained", extra={"table": r.table, "report": r.lines()[1:]})
        c = r.compaction
        if c is not None and c.snapshot_id is not None:
            compacted += c.plan.rewritten
        if (c is not None and c.yielded) or any("gave way" in n for n in r.notes):
            yielded += 1
            logger.warning("maintenance gave way to ingest commits", extra={"table": r.table})
        expired += r.snapshots_expired
        orphans += r.orphans
    if unfinished:
        logger.warning("tables left for the next run (deadline)", extra={"tables": unfinished})
    metrics.add_metric(name="FilesCompacted", unit=MetricUnit.Count, value=compacted)
    metrics.add_metric(name="SnapshotsExpired", unit=MetricUnit.Count, value=expired)
    metrics.add_metric(name="OrphansRemoved", unit=MetricUnit.Count, value=orphans)
    metrics.add_metric(name="MaintenanceYielded", unit=MetricUnit.Count, value=yielded)
    metrics.flush_metrics()
