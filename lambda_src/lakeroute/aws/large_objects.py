"""The large-object tier: objects too big for the function run on ECS Fargate (RunTask).

The same image and the same pipeline (``lakeroute.task``) run one object per task, with up
to 200 GiB of ephemeral storage and no 15-minute limit. The handler hands an object off
when its size (from the event) reaches ``LAKEROUTE_LARGE_OBJECT_BYTES`` or when the time
the invocation has left could never cover it; the hand-off is the message's success (the
task owns the object from then on). The task's own retry and failure path:

- the task exits 0 when the object is committed, skipped or quarantined (its record is in
  the quarantine), 75 when it failed for a reason worth retrying;
- an EventBridge rule sends every STOPPED task of the cluster to ``lakeroute.task.on_stopped``:
  a task that did not exit 0 (75, a crash, out of memory, a stopped Spot host) is started
  again, up to ``LAKEROUTE_TASK_MAX_ATTEMPTS``; after the last attempt the object is
  quarantined with the task's stop reason and counted in ``ObjectsQuarantined`` and
  ``LargeObjectTasksFailed`` (an alarm). Exactly once holds as everywhere: the task commits
  through the ledger and snapshot summaries, so a retried task that had committed skips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError, TransientError
from ..core.pipeline import ObjectRef
from .clients import aws_client, aws_errors, transient

OBJECT_ENV = "LAKEROUTE_TASK_OBJECT"
EXIT_RETRY = 75  # EX_TEMPFAIL


@dataclass(frozen=True)
class TierConfig:
    threshold: int  # bytes; objects at least this big go to a task
    cluster: str
    task_definition: str
    container: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    max_attempts: int = 3
    public_ip: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TierConfig | None:
        """None when the tier is not configured (``LAKEROUTE_TASK_CLUSTER`` unset)."""
        env = os.environ if env is None else env
        cluster = env.get("LAKEROUTE_TASK_CLUSTER", "").strip()
        if not cluster:
            return None
        problems = []
        try:
            threshold = int(env.get("LAKEROUTE_LARGE_OBJECT_BYTES", "0") or 0)
            attempts = int(env.get("LAKEROUTE_TASK_MAX_ATTEMPTS", "3") or 3)
        except ValueError:
            raise ConfigError("LAKEROUTE_LARGE_OBJECT_BYTES and LAKEROUTE_TASK_MAX_ATTEMPTS must be "
                              "whole numbers") from None
        task_definition = env.get("LAKEROUTE_TASK_DEFINITION", "").strip()
        subnets = tuple(s for s in env.get("LAKEROUTE_TASK_SUBNETS", "").replace(" ", "").split(",") if s)
        if not task_definition:
            problems.append("LAKEROUTE_TASK_DEFINITION is not set (the large-object task definition)")
        if not subnets:
            problems.append("LAKEROUTE_TASK_SUBNETS is not set (comma-separated subnet ids)")
        if threshold <= 0:
            problems.append("LAKEROUTE_LARGE_OBJECT_BYTES must be a positive number of bytes")
        if problems:
            raise ConfigError("large-object tier is misconfigured:\n  - " + "\n  - ".join(problems))
        groups = tuple(s for s in env.get("LAKEROUTE_TASK_SECURITY_GROUPS", "").replace(" ", "").split(",") if s)
        return cls(threshold=threshold, cluster=cluster, task_definition=task_definition,
                   container=env.get("LAKEROUTE_TASK_CONTAINER", "").strip() or "lakeroute",
                   subnets=subnets, security_groups=groups, max_attempts=max(1, attempts),
                   public_ip=env.get("LAKEROUTE_TASK_PUBLIC_IP", "true").strip().lower() != "false")


def object_json(ref: ObjectRef, attempt: int) -> str:
    return json.dumps({"bucket": ref.bucket, "key": ref.key, "version": ref.version, "size": ref.size,
                       "id": ref.id, "attempt": attempt}, ensure_ascii=False)


def ref_from_json(text: str) -> tuple[ObjectRef, int]:
    try:
        data = json.loads(text)
        ref = ObjectRef(bucket=str(data["bucket"]), key=str(data["key"]), version=data.get("version"),
                        id=str(data.get("id") or ""), size=data.get("size"))
        return ref, int(data.get("attempt") or 1)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{OBJECT_ENV} is not an object description: {e}") from None


class LargeObjectTier:
    def __init__(self, config: TierConfig, ecs: Any = None, session: Any = None) -> None:
        self.config = config
        self._ecs = ecs
        self._session = session

    @property
    def ecs(self) -> Any:
        """The ECS client, made by the first hand-off: most batches hand nothing off, and a
        client is ~20 ms of a cold start (its service model loaded)."""
        if self._ecs is None:
            self._ecs = aws_client("ecs", self._session)
        return self._ecs

    def takes(self, ref: ObjectRef, seconds_left: float | None, estimate: float | None) -> bool:
        if ref.size is None:
            return False
        if ref.size >= self.config.threshold:
            return True
        return seconds_left is not None and estimate is not None and estimate > seconds_left

    def hand_off(self, ref: ObjectRef, attempt: int = 1) -> str:
        """Start the task for one object; its ARN. Raises TransientError when ECS did not start it."""
        c = self.config
        network: dict[str, Any] = {"subnets": list(c.subnets),
                                   "assignPublicIp": "ENABLED" if c.public_ip else "DISABLED"}
        if c.security_groups:
            network["securityGroups"] = list(c.security_groups)
        try:
            response = self.ecs.run_task(
                cluster=c.cluster, taskDefinition=c.task_definition, launchType="FARGATE", count=1,
                startedBy="lakeroute", networkConfiguration={"awsvpcConfiguration": network},
                overrides={"containerOverrides": [{"name": c.container, "environment": [
                    {"name": OBJECT_ENV, "value": object_json(ref, attempt)}]}]})
        except aws_errors() as e:
            raise transient(f"ECS RunTask for s3://{ref.bucket}/{ref.key}", e) from e
        tasks = response.get("tasks") or []
        if not tasks:
            reasons = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip()
                                for f in response.get("failures") or []) or "no task started"
            raise TransientError(f"ECS RunTask for s3://{ref.bucket}/{ref.key}: {reasons}")
        return str(tasks[0].get("taskArn", ""))


@dataclass(frozen=True)
class StoppedTask:
    """What an ECS Task State Change event says about one of our tasks."""

    ref: ObjectRef
    attempt: int
    exit_code: int | None
    reason: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def stopped_task(event: Mapping[str, Any], container: str) -> StoppedTask | None:
    """The task of an EventBridge ``ECS Task State Change`` event, if it is a stopped lakeroute task."""
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else None
    if not detail or detail.get("lastStatus") != "STOPPED":
        return None
    described = None
    for override in (detail.get("overrides") or {}).get("containerOverrides") or []:
        if override.get("name") == container:
            for var in override.get("environment") or []:
                if var.get("name") == OBJECT_ENV:
                    described = var.get("value")
    if not described:
        return None
    ref, attempt = ref_from_json(described)
    code = None
    for c in detail.get("containers") or []:
        if c.get("name") == container:
            code = c.get("exitCode")
            reason = c.get("reason") or ""
            break
    else:
        reason = ""
    why = "; ".join(r for r in (str(detail.get("stoppedReason") or ""), reason) if r)
    return StoppedTask(ref, attempt, int(code) if code is not None else None, why or "stopped")
