"""Lambda entry point of the reconcile sweep (``lakeroute.sweep.handler``), run on a schedule.

Lists every route prefix since its watermark and sends the objects the tables do not hold
(lost notifications) to the ingest queue; see ``lakeroute.aws.sweep``. The environment is
the ingest function's (``LAKEROUTE_ROUTES_TABLE``, ``LAKEROUTE_LEDGER_TABLE``,
``LAKEROUTE_WAREHOUSE``, ...) plus ``LAKEROUTE_INGEST_QUEUE_URL``; optional
``LAKEROUTE_SWEEP_OVERLAP_SECONDS`` (900), ``LAKEROUTE_SWEEP_SETTLE_SECONDS`` (120),
``LAKEROUTE_SWEEP_LOOKBACK_SECONDS`` (86400; without a watermark; 0: every object),
``LAKEROUTE_OWNED_BUCKETS`` (comma-separated: the landing buckets the stack created, listed
whole; their keys no route takes are sent once, to be quarantined "no route").
Publishes the EMF metrics ``ObjectsSwept`` (candidates listed), ``ObjectsEnqueued`` (sent to
the queue) and ``ObjectsSweptUnrouted`` (of those, keys no route takes) in the handler's
namespace and ``service`` dimension.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from .core.errors import ConfigError
from .handler import deadline as lambda_deadline

if TYPE_CHECKING:
    from .aws.sweep import Sweep, SweepReport

os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "lakeroute")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lakeroute"))
MARGIN_SECONDS = 30.0  # no prefix starts in the last 30 s of the invocation


def handler(event: Any, context: Any) -> dict[str, Any]:
    sweep = build_sweep()
    report = sweep.run(deadline=lambda_deadline(context, MARGIN_SECONDS))
    publish(report)
    return {"swept": report.swept, "enqueued": report.enqueued, "unrouted": report.unrouted,
            "unfinished": report.unfinished,
            "lanes_signalled": signal_waiting_lanes()}


def signal_waiting_lanes(env: dict[str, str] | None = None) -> list[str]:
    """Tables whose commit lane holds hand-offs get a signal: a hand-off whose own signal was
    lost (a crash between its record and its message) is committed by the next sweep at the
    latest. The deduplication id is per table and minute, so a sweep adds at most one."""

    from .aws.clients import aws_client
    from .aws.lane import S3Lane

    environ = dict(os.environ) if env is None else env
    root, queue = environ.get("LAKEROUTE_LANE", "").strip(), environ.get("LAKEROUTE_LANE_QUEUE", "").strip()
    if not root or not queue:
        return []
    lane = S3Lane(root, aws_client("s3"), aws_client("sqs"), queue)
    minute = time.strftime("%Y%m%d%H%M", time.gmtime())
    tables = lane.tables()
    for table in tables:
        lane.signal(table, f"sweep-{table}-{minute}")
    if tables:
        logger.info("signalled waiting commit lanes", extra={"tables": tables})
    return tables


def build_sweep(env: dict[str, str] | None = None) -> Sweep:
    import boto3

    from .aws.catalog import make_catalog
    from .aws.clients import aws_client, botocore_session
    from .aws.config import AwsConfig
    from .aws.ledger import DynamoLedger
    from .aws.sweep import Sweep, SweepSettings

    environ = dict(os.environ) if env is None else env
    config = AwsConfig.from_env(environ)
    queue_url = environ.get("LAKEROUTE_INGEST_QUEUE_URL", "").strip()
    if not queue_url:
        raise ConfigError("lakeroute sweep is misconfigured: LAKEROUTE_INGEST_QUEUE_URL is not set "
                          "(the ingest queue the sweep sends missing objects to)")

    def seconds(name: str, default: float) -> float:
        raw = environ.get(name, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value

    settings = SweepSettings(overlap=seconds("LAKEROUTE_SWEEP_OVERLAP_SECONDS", 900),
                             settle=seconds("LAKEROUTE_SWEEP_SETTLE_SECONDS", 120),
                             lookback=seconds("LAKEROUTE_SWEEP_LOOKBACK_SECONDS", 86400))
    core = botocore_session()  # its loaded data shared with the catalog's session (make_catalog)
    session = boto3.session.Session(botocore_session=core)
    ddb = aws_client("dynamodb", session)
    from .aws.s3_quarantine import S3Quarantine

    s3 = aws_client("s3", session)
    owned = [b.strip() for b in environ.get("LAKEROUTE_OWNED_BUCKETS", "").split(",") if b.strip()]
    return Sweep(s3=s3, ddb=ddb, sqs=aws_client("sqs", session),
                 catalog=make_catalog(config, core), ledger=DynamoLedger(config.ledger_table, ddb=ddb),
                 routes_table=config.routes_table, ledger_table=config.ledger_table,
                 queue_url=queue_url, settings=settings, owned_buckets=owned,
                 quarantine=S3Quarantine(config.quarantine, s3) if owned else None)



def publish(report: SweepReport) -> None:
    for where, (swept, enqueued) in report.prefixes.items():
        if enqueued:
            logger.warning("objects without an ingestion enqueued",
                           extra={"prefix": where, "swept": swept, "enqueued": enqueued})
    for bucket, key in report.sent:
        logger.info("enqueued", extra={"bucket": bucket, "key": key})
    if report.unrouted:
        logger.warning("keys no route takes enqueued, to be quarantined 'no route'",
                       extra={"unrouted": report.unrouted})
    if report.unfinished:
        logger.warning("prefixes left for the next sweep (deadline)", extra={"prefixes": report.unfinished})
    logger.info("sweep done", extra={"swept": report.swept, "enqueued": report.enqueued,
                                     "prefixes": len(report.prefixes)})
    metrics.add_metric(name="ObjectsSwept", unit=MetricUnit.Count, value=report.swept)
    metrics.add_metric(name="ObjectsEnqueued", unit=MetricUnit.Count, value=report.enqueued)
    metrics.add_metric(name="ObjectsSweptUnrouted", unit=MetricUnit.Count, value=report.unrouted)
    metrics.flush_metrics()
