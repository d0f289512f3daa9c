"""Lambda entry point: a batch of S3 notifications (via SQS), ingested in ONE pipeline call.

One ``Pipeline.ingest`` per batch, so the objects of a batch that target one table commit
together (group commit). Powertools' batch utilities (``process_partial_response``) call a
record handler per record, which would make every object its own commit: they do not fit.
The response has their shape all the same: ``{"batchItemFailures": [{"itemIdentifier": id}]}``
(the event source mapping has ReportBatchItemFailures on).

Reported back as failures, so SQS redelivers them and, after maxReceiveCount, dead-letters:
``failed`` objects (transient: commit conflicts past their retries, throttling), malformed
messages, and ``quarantined`` objects (``LAKEROUTE_FAIL_QUARANTINED``, default true): a poison
object is in the quarantine bucket with its error JSON and its message ends in the DLQ as the
alert. Redeliveries retry it (a fixed route takes effect) without copying it again. An object
no route takes is the exception: quarantined "no route" (with the closest route and why it
does not match) once, counted (``ObjectsUnrouted``, and in ``ObjectsQuarantined``, which the
quarantine alarm watches) and never failed back: every redelivery would find the same routes
(the route cache follows the routing table, ``aws.route_store``), so retrying it would only
bounce it into the DLQ. Moving the file to a routed key or adding a route ingests it. Direct
invocations (S3, EventBridge, SNS) raise instead, so Lambda's async retries apply. When the
batch cannot start at all (bad environment, routing table unreachable with nothing cached),
the invocation fails and SQS redelivers the whole batch.

Everything heavy (boto3, DuckDB, PyIceberg) is imported when the runtime is built (the first
batch), not at import. Both imports run with the garbage collector paused (``core.startup``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .core.startup import STACK, first_use, gc_paused

with gc_paused():  # the route model, powertools: a cold start's first imports
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    from .aws.events import parse_event

if TYPE_CHECKING:
    from .aws.runtime import AwsRuntime
    from .core.pipeline import IngestReport, Outcome

os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "lakeroute")  # also formats lakeroute.*
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lakeroute"))
DEADLINE_MARGIN_SECONDS = float(os.environ.get("LAKEROUTE_DEADLINE_MARGIN_SECONDS", "10"))
_runtime: AwsRuntime | None = None


class BatchFailed(RuntimeError):
    """Some objects of a direct (non-SQS) invocation failed: raising makes Lambda retry."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    parsed = parse_event(event)
    failed = dict.fromkeys(item for item, _ in parsed.malformed)
    for item, why in parsed.ignored:
        logger.info("ignored", extra={"item": item, "reason": why})
    for item, why in parsed.malformed:
        logger.error("malformed event", extra={"item": item, "reason": why})
    if parsed.refs:
        runtime = get_runtime()
        pipeline = runtime.prepare(parsed.refs, deadline(context))
        refs, handed = runtime.hand_off(parsed.refs)  # too big for this function: a Fargate task
        for ref, status, detail in handed:
            (logger.info if status == "handed_off" else logger.warning)(
                status, extra={"item": ref.id, "bucket": ref.bucket, "key": ref.key, "size": ref.size,
                               "detail": detail})
            if status == "failed":
                failed[ref.id] = None
        if handed:
            metrics.add_metric(name="ObjectsHandedOff", unit=MetricUnit.Count,
                               value=sum(1 for _, s, _ in handed if s == "handed_off"))
        report = pipeline.ingest(refs)
        retry = {"failed", "quarantined"} if runtime.config.fail_quarantined else {"failed"}
        failed.update(dict.fromkeys(o.ref.id for o in report.outcomes if o.status in retry and not o.unrouted))
        try:
            publish(report)
        except Exception:  # logging/metrics must never turn a batch's outcome into an error
            logger.exception("could not publish the batch's metrics")
    if failed and not parsed.is_sqs:
        raise BatchFailed(f"{len(failed)} item(s) not ingested: {', '.join(failed)}")
    return {"batchItemFailures": [{"itemIdentifier": item} for item in failed]}


def get_runtime(stack: tuple[str, ...] = STACK) -> AwsRuntime:
    """The warm container's adapters and pipeline, built (and the environment checked) once;
    the first time with ``stack`` imported alongside (``core.startup``)."""
    global _runtime
    if _runtime is None:
        with first_use(stack):  # boto3, the catalog, DuckDB, pyarrow, PyIceberg: imported together
            from .aws.runtime import AwsRuntime

            _runtime = AwsRuntime.from_env()
    return _runtime


def reset_runtime() -> None:
    """Forget the warm runtime (tests, or after the environment changed)."""
    global _runtime
    _runtime = None


def deadline(context: Any, margin: float | None = None) -> float | None:
    """time.monotonic() by which work gives up, leaving ``margin`` seconds (at most a quarter
    of the time left; default ``DEADLINE_MARGIN_SECONDS``) to answer; None without a context."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return None
    remaining = remaining_ms() / 1000
    keep = DEADLINE_MARGIN_SECONDS if margin is None else margin
    return time.monotonic() + remaining - min(keep, remaining / 4)


def publish(report: IngestReport) -> None:
    """One log line per object not committed, a summary line, and EMF metrics."""
    for o in report.outcomes:
        if o.status != "committed":
            log = logger.warning if o.status in ("failed", "quarantined") else logger.info
            log(o.status, extra={"item": o.ref.id, "bucket": o.ref.bucket, "key": o.ref.key,
                                 "route": o.route, "table": o.table, "reason": o.message,
                                 "quarantined_to": o.quarantined_to, "unrouted": o.unrouted})
    counts = {s: report.count(s) for s in ("committed", "skipped", "ignored", "quarantined", "failed")}
    for o in report.outcomes:
        if o.status == "committed" and (o.rejected or o.rescued):
            logger.warning("rows set aside", extra={"item": o.ref.id, "bucket": o.ref.bucket, "key": o.ref.key,
                                                    "route": o.route, "table": o.table, "rejected": o.rejected,
                                                    "rescued": o.rescued, "rejects_to": o.rejects_to})
    logger.info("batch ingested", extra={**counts, "rows": report.rows, "commits": report.commits,
                                          "seconds": round(report.seconds, 3)})
    for status, n in counts.items():
        metrics.add_metric(name=f"Objects{status.capitalize()}", unit=MetricUnit.Count, value=n)
    # Also in ObjectsQuarantined (the quarantine alarm); apart, so a dashboard shows misplaced files.
    metrics.add_metric(name="ObjectsUnrouted", unit=MetricUnit.Count, value=sum(o.unrouted for o in report.outcomes))
    metrics.add_metric(name="RowsCommitted", unit=MetricUnit.Count, value=report.rows)
    done = [o for o in report.outcomes if o.status == "committed"]
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=sum(o.rejected for o in done))
    metrics.add_metric(name="RowsRescued", unit=MetricUnit.Count, value=sum(o.rescued for o in done))
    metrics.add_metric(name="Commits", unit=MetricUnit.Count, value=len(report.commits))
    metrics.flush_metrics()
    publish_per_route(report)


def publish_per_route(report: IngestReport) -> None:
    """The same figures per (route, table), for the dashboard: one EMF document per pair."""
    from aws_lambda_powertools.metrics import EphemeralMetrics

    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in report.outcomes:
        groups.setdefault((o.route or "(none)", o.table or "(none)"), []).append(o)
    retries: dict[str, int] = {}
    for c in report.commits:
        retries[c["table"]] = retries.get(c["table"], 0) + max(0, int(c.get("attempts", 1)) - 1)
    for (route, table), outcomes in groups.items():
        m = EphemeralMetrics(namespace=metrics.namespace)
        m.add_dimension(name="route", value=route)
        m.add_dimension(name="table", value=table)
        for status in ("committed", "skipped", "quarantined", "failed"):
            m.add_metric(name=f"Objects{status.capitalize()}", unit=MetricUnit.Count,
                         value=sum(1 for o in outcomes if o.status == status))
        done = [o for o in outcomes if o.status == "committed"]
        m.add_metric(name="RowsCommitted", unit=MetricUnit.Count, value=sum(o.rows for o in done))
        m.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=sum(o.rejected for o in done))
        m.add_metric(name="RowsRescued", unit=MetricUnit.Count, value=sum(o.rescued for o in done))
        m.add_metric(name="BytesRead", unit=MetricUnit.Bytes, value=sum(o.ref.size or 0 for o in done))
        for o in done:
            m.add_metric(name="ObjectSeconds", unit=MetricUnit.Seconds, value=round(o.seconds, 3))
        m.add_metric(name="CommitRetries", unit=MetricUnit.Count, value=retries.pop(table, 0))
        m.flush_metrics()
