"""The large-object tier's shells (``aws.large_objects``): the ECS task and its stop handler.

- ``python -m lakeroute.task``: the container command of the Fargate task. Ingests the one
  object described by ``LAKEROUTE_TASK_OBJECT`` with the same pipeline and environment as
  the function (no deadline: the task has no time limit), publishes the same metrics, and
  exits 0 (committed, skipped or quarantined), 75 (retry) or 2 (misconfigured).
- ``lakeroute.task.on_stopped``: a Lambda handler (same image) for EventBridge's ECS Task
  State Change events of the cluster: a task that did not exit 0 is started again until
  its attempts run out; then the object is quarantined with the stop reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .aws.large_objects import EXIT_RETRY, OBJECT_ENV, LargeObjectTier, TierConfig, ref_from_json, stopped_task
from .core.errors import ConfigError, ObjectError


def main() -> int:
    from .handler import get_runtime, logger, publish

    os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
    try:
        ref, attempt = ref_from_json(os.environ.get(OBJECT_ENV, ""))
        runtime = get_runtime()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = runtime.prepare([ref], None).ingest([ref])
    publish(report)
    [outcome] = report.outcomes
    logger.info("large object", extra={"bucket": ref.bucket, "key": ref.key, "attempt": attempt,
                                       "status": outcome.status, "reason": outcome.message})
    return EXIT_RETRY if outcome.status == "failed" else 0


def on_stopped(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from aws_lambda_powertools.metrics import MetricUnit

    from .handler import get_runtime, logger, metrics

    config = TierConfig.from_env()
    if config is None:
        raise ConfigError("LAKEROUTE_TASK_CLUSTER is not set: this function serves the large-object tier")
    task = stopped_task(event, config.container)
    if task is None or task.succeeded:
        return {"action": "none"}
    if task.attempt < config.max_attempts:
        arn = LargeObjectTier(config).hand_off(task.ref, task.attempt + 1)
        logger.warning("large-object task failed; started again", extra={
            "bucket": task.ref.bucket, "key": task.ref.key, "attempt": task.attempt + 1,
            "reason": task.reason, "task": arn})
        return {"action": "retried", "attempt": task.attempt + 1, "task": arn}
    runtime = get_runtime()
    source, quarantine = runtime.pipeline.source, runtime.pipeline.quarantine
    error = ObjectError("task", f"large-object task failed {task.attempt} time(s): {task.reason} "
                        f"(exit code {task.exit_code})")
    try:
        obj = source.resolve(task.ref.bucket, task.ref.key, task.ref.version)
    except Exception:  # gone, or unreadable: the record still tells
        obj = None
    where = quarantine.put(task.ref.bucket, task.ref.key, obj, error)
    metrics.add_metric(name="ObjectsQuarantined", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="LargeObjectTasksFailed", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    logger.error("large object quarantined", extra={"bucket": task.ref.bucket, "key": task.ref.key,
                                                    "reason": task.reason, "quarantined_to": where})
    return {"action": "quarantined", "quarantined_to": where}


if __name__ == "__main__":
    sys.exit(main())
