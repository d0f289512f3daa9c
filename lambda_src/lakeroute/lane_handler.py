"""Lambda entry point of the commit lane (``lakeroute.lane_handler.handler``).

Fed by the lane's SQS FIFO queue, whose message group is the table: Lambda hands a group to
one invocation at a time, so each table has one committer (and its maintenance runs in the
same lane, never racing an ingest commit), while tables commit in parallel. Messages:

- ``{"table": T, "handoff": ID}``: hand-offs wait for T. The committer commits every waiting
  hand-off of T (its own listing, so lost signals are covered), lingering while the table's
  triggers allow (``target.commit``, stage defaults ``LAKEROUTE_COMMIT_DEFAULTS``) and the
  invocation's time does; objects whose rows cannot be written are quarantined as in ingest.
- ``{"maintain": T}``: compaction, expiry and orphan removal of T (the scheduled maintenance
  sends these when the stage has a lane), in T's lane.

A table whose commit fails transiently has its messages reported as failures (SQS retries
them; the hand-offs wait). Publishes per table ``FreshnessP50Seconds`` / ``FreshnessMaxSeconds``
(from an object's pick-up by an ingest function to visible in the table), ``LaneCommits``,
``LaneObjects``, ``CommitRetries``, ``LaneWaiting`` (hand-offs left for the next run).
The environment is the ingest function's, plus ``LAKEROUTE_LANE``.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from .core.startup import COMMIT_STACK
from .handler import deadline as lambda_deadline

if TYPE_CHECKING:
    from .core.lane.committer import LaneReport

os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "lakeroute")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lakeroute"))
MARGIN_SECONDS = 20.0  # kept back from the deadline: the last commit and the answer to SQS
RETRY_SECONDS = int(os.environ.get("LAKEROUTE_LANE_RETRY_SECONDS", "30"))  # a failed table's lane, again


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from . import handler as ingest_handler

    commits: dict[str, list[str]] = {}  # table -> message ids
    maintain: dict[str, list[str]] = {}
    failed: list[str] = []
    for record in event.get("Records", []):
        mid = record.get("messageId", "")
        try:
            body = json.loads(record.get("body") or "{}")
        except ValueError:
            body = {}
        if isinstance(body, dict) and isinstance(body.get("table"), str):
            commits.setdefault(body["table"], []).append(mid)
        elif isinstance(body, dict) and isinstance(body.get("maintain"), str):
            maintain.setdefault(body["maintain"], []).append(mid)
        else:
            logger.error("malformed commit-lane message", extra={"item": mid})  # nothing to retry
    runtime = ingest_handler.get_runtime(COMMIT_STACK)  # it reads no object: no DuckDB unless a commit needs it
    deadline = lambda_deadline(context, MARGIN_SECONDS)
    for table, ids in commits.items():
        try:
            report = commit_table(runtime, table, deadline)
            publish(report)
        except Exception as e:
            logger.exception("commit lane failed", extra={"table": table, "error": str(e)})
            failed += ids
    for table, ids in maintain.items():
        try:
            maintain_in_lane(runtime, table, deadline)
        except Exception as e:
            logger.exception("maintenance in the lane failed", extra={"table": table, "error": str(e)})
            failed += ids
    retry_soon([r for r in event.get("Records", []) if r.get("messageId") in set(failed)])
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def retry_soon(records: list[dict[str, Any]]) -> None:
    """Failed messages come back after ``RETRY_SECONDS``, not the queue's visibility timeout
    (6x the function's): a FIFO group is blocked while its message is in flight, so a commit
    that failed transiently would otherwise hold the table's lane for half an hour or more.
    Best effort: the consume permission the event source needs includes this call."""
    if not records:
        return
    from .aws.clients import aws_client

    sqs = aws_client("sqs")
    urls: dict[str, str] = {}
    for r in records:
        arn = str(r.get("eventSourceARN", ""))
        try:
            if arn not in urls:  # arn:aws:sqs:REGION:ACCOUNT:NAME -> ENDPOINT/ACCOUNT/NAME (no extra call)
                parts = arn.split(":")
                urls[arn] = f"{sqs.meta.endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"
            sqs.change_message_visibility(QueueUrl=urls[arn], ReceiptHandle=r["receiptHandle"],
                                          VisibilityTimeout=RETRY_SECONDS)
        except Exception as e:  # the message still comes back, after the queue's visibility timeout
            logger.warning("could not shorten a failed message's visibility", extra={"error": str(e)})


def commit_table(runtime: Any, table: str, deadline: float | None) -> LaneReport:
    """Everything waiting in ``table``'s lane, committed by this invocation."""
    lane = runtime.lane
    if lane is None:
        raise RuntimeError("LAKEROUTE_LANE is not set: this function has no commit lane")
    pipeline = runtime.pipeline
    handoff, pipeline.handoff = pipeline.handoff, None  # the committer commits, never hands off
    try:
        return _commit(runtime, pipeline, lane, table, deadline)
    finally:
        pipeline.handoff = handoff


def _commit(runtime: Any, pipeline: Any, lane: Any, table: str, deadline: float | None) -> LaneReport:
    from .core.lane.committer import commit_lane
    from .core.lane.triggers import Triggers


    def reingest(refs: list[Any]) -> Any:
        return runtime.prepare(refs, deadline).ingest(refs)

    defaults = Triggers(**{k: (int(v) if k == "max_files" else v)
                           for k, v in (runtime.config.commit_defaults or {}).items()})
    until = None if deadline is None else time.time() + (deadline - time.monotonic())
    pipeline.deadline = deadline
    report = commit_lane(pipeline, lane, table, defaults=defaults, until=until, reingest=reingest)
    if pipeline.journal is not None:
        from .core.pipeline.outcomes import attempts_of

        try:
            pipeline.journal.record(attempts_of(report.report))
        except Exception as e:  # the journal is a trail, never a reason to fail a commit
            logger.error("could not write the journal", extra={"error": str(e)})
    return report


def maintain_in_lane(runtime: Any, table: str, deadline: float | None) -> None:
    from .maintain import build_job
    from .maintain import publish as publish_maintenance

    job = build_job()
    job.settings = {t: s for t, s in job.settings.items() if t == table}
    reports, unfinished = job.run(deadline=deadline)
    publish_maintenance(reports, unfinished)


def publish(report: LaneReport) -> None:
    """One line and one EMF document per table committed."""
    fresh = sorted(report.freshness)
    retries = sum(max(0, int(c.get("attempts", 1)) - 1) for c in report.report.commits)
    objects = report.report.count("committed")
    logger.info("lane committed", extra={
        "table": report.table, "commits": report.commits, "objects": objects, "handoffs": report.handoffs,
        "retries": retries, "freshness_p50": _p50(fresh), "freshness_max": fresh[-1] if fresh else None,
        "quarantined": report.report.count("quarantined"), "waiting": report.waiting})
    for o in report.report.outcomes:
        if o.status in ("quarantined", "failed"):
            logger.warning(o.status, extra={"bucket": o.ref.bucket, "key": o.ref.key, "table": o.table,
                                            "reason": o.message, "quarantined_to": o.quarantined_to})
    m = EphemeralMetrics(namespace=metrics.namespace)
    m.add_dimension(name="table", value=report.table)
    m.add_metric(name="LaneCommits", unit=MetricUnit.Count, value=report.commits)
    m.add_metric(name="LaneObjects", unit=MetricUnit.Count, value=objects)
    m.add_metric(name="CommitRetries", unit=MetricUnit.Count, value=retries)
    m.add_metric(name="LaneWaiting", unit=MetricUnit.Count, value=report.waiting)
    m.add_metric(name="ObjectsQuarantined", unit=MetricUnit.Count, value=report.report.count("quarantined"))
    if fresh:
        m.add_metric(name="FreshnessP50Seconds", unit=MetricUnit.Seconds, value=round(_p50(fresh), 3))
        m.add_metric(name="FreshnessMaxSeconds", unit=MetricUnit.Seconds, value=round(fresh[-1], 3))
    m.flush_metrics()
    # The stage-wide figures the alarms watch (no table dimension): freshness, and the objects
    # quarantined here (rows that cannot be written), which `objects-quarantined` counts too.
    metrics.add_metric(name="FreshnessMaxSeconds", unit=MetricUnit.Seconds, value=round(fresh[-1], 3) if fresh else 0)
    metrics.add_metric(name="ObjectsQuarantined", unit=MetricUnit.Count, value=report.report.count("quarantined"))
    metrics.flush_metrics()


def _p50(values: list[float]) -> float:
    return values[len(values) // 2] if values else 0.0
