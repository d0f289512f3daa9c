"""Per-stage settings, read from ``cdk.json`` context (``lakeroute:stages``).

A stage is a named set of sizing and retention choices (``dev``, ``prod``, ...). The stage is
picked with ``-c stage=NAME`` (default: ``lakeroute:defaultStage``, else ``dev``). Every key
is required, so a typo or a missing setting fails the synth with a message that names the
stage and the key instead of silently falling back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

STAGES_CONTEXT_KEY = "lakeroute:stages"
DEFAULT_STAGE_CONTEXT_KEY = "lakeroute:defaultStage"
STAGE_CONTEXT_KEY = "stage"

# CloudWatch Logs only accepts these retention periods (days).
_RETENTION_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Stage names end up in physical names (S3 buckets, Glue databases, stack and export names).
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
DATABASE_SCOPES = ("stage", "account")
# An exact S3 bucket name (general purpose bucket rules; dots allowed, no IP-address form).
_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Fargate task sizes: vCPU units -> (smallest, largest, step) memory in MiB.
FARGATE_MEMORY_MB: dict[int, tuple[int, int, int]] = {
    256: (512, 2048, 512),  # 512, 1024, 2048 (1536 is not offered; checked below)
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
MIB = 1024 * 1024
# The large-object threshold derived from the function (see StageConfig.large_object_threshold):
# the download reader copies the object to /tmp (ephemeral storage, minus room for DuckDB's
# spill and the runtime), and the object has to be read, converted and committed in half the
# timeout at a conservative 20 MiB/s.
LARGE_OBJECT_TMP_RESERVE_MB = 512
LARGE_OBJECT_THROUGHPUT_MB_S = 20
LARGE_OBJECT_TIMEOUT_SHARE = 0.5


CATALOGS = ("glue", "s3tables")


class StageConfigError(ValueError):
    """A stage in cdk.json context is missing, incomplete or out of range."""


@dataclass(frozen=True, kw_only=True)
class BucketOverride:
    """``buckets.<logical>`` of a stage: the physical landing bucket of one logical name.

    ``name``: the exact physical name (default: the stage's generated name, see
    ``stacks.naming``). ``existing``: that bucket exists already (e.g. retained by a deleted
    stack): the stack imports it by name instead of creating it.
    """

    name: str | None = None
    existing: bool = False

    @classmethod
    def parse(cls, where: str, raw: Any) -> BucketOverride:
        if not isinstance(raw, Mapping):
            raise StageConfigError(f"{where}: expected a mapping like {{\"name\": \"my-bucket\"}}, "
                                   f"got {raw!r}")
        unknown = sorted(set(raw) - {"name", "existing"})
        if unknown:
            raise StageConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                                   "existing, name")
        name, existing = raw.get("name"), raw.get("existing", False)
        if name is not None and (not isinstance(name, str) or not _BUCKET_NAME_RE.match(name)
                                 or ".." in name):
            raise StageConfigError(f"{where}.name: not an S3 bucket name (3-63 characters: "
                                   f"lowercase letters, digits, '.', '-'): {name!r}")
        if not isinstance(existing, bool):
            raise StageConfigError(f"{where}.existing: expected true or false, got {existing!r}")
        return cls(name=name, existing=existing)


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Settings of one deployment stage (one ``lakeroute:stages.<name>`` entry)."""

    name: str
    # Ingest function sizing.
    memory_mb: int
    timeout_seconds: int
    ephemeral_storage_mb: int
    # SQS event source: how many messages per invocation, how long to wait to fill a batch,
    # and how many concurrent invocations the event source may drive.
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int
    # Deploy-time route sync function.
    sync_timeout_seconds: int
    log_retention_days: int
    log_level: str
    # "retain" keeps buckets, tables, log groups and Glue databases when the stack is
    # deleted (and turns on table deletion protection); "destroy" removes them.
    removal_policy: str
    # Empty the stack-owned buckets (warehouse, quarantine, access logs) on stack deletion.
    # Only meaningful with removal_policy "destroy"; never applied to landing buckets.
    auto_delete_objects: bool
    quarantine_expiry_days: int
    warehouse_noncurrent_expiry_days: int
    access_log_expiry_days: int
    abort_multipart_days: int
    # Commit lane (stacks/commit_lane.py): ingest functions stage and hand off; per table one
    # committer at a time (an SQS FIFO message group per table) commits. The stage's defaults
    # of the triggers (a route's ``target.commit`` overrides them): commit what waits once it
    # holds ``commit_max_files`` objects or ``commit_max_mb`` MB, or its oldest hand-off has
    # waited ``commit_max_seconds``. The commit function's time limit and memory (it also runs
    # each table's maintenance, in the table's lane). Alarm when an object takes longer than
    # ``freshness_alarm_seconds`` from its pick-up by an ingest function to visible.
    commit_max_files: int = 1000
    commit_max_mb: int = 512
    commit_max_seconds: int = 5
    commit_timeout_seconds: int = 300
    commit_memory_mb: int = 2048
    freshness_alarm_seconds: int = 300
    # Physical names (stacks/naming.py). Landing buckets: logical name -> BucketOverride
    # (default: <logical>-<stage>-<account>-<region>). Glue databases: "stage" gives
    # <namespace>_<stage>, "account" the plain namespace (one stage per account).
    # ``generation`` > 1 gives every generated name a fresh suffix (-g2 / _g2): a redeploy
    # next to resources retained by a deleted stack.
    buckets: Mapping[str, BucketOverride] = field(default_factory=dict)
    databases: str = "stage"
    generation: int = 1
    # Operations: alarm when the oldest message of the ingest queue is older than this;
    # alarms (and OK transitions) go to one SNS topic, e-mailed to ``alarm_email`` if set.
    oldest_message_alarm_seconds: int = 3600
    alarm_email: str | None = None
    # Large-object tier (stacks/large_objects.py): objects the function cannot finish run on
    # ECS Fargate. ``large_object_tier: false``: no VPC, cluster or stop handler, and the
    # function never hands off. ``large_object_bytes``: the size threshold (null: derived from
    # the function's ephemeral storage and timeout, see ``large_object_threshold``). The task:
    # vCPU units, memory (MiB; a valid Fargate combination), ephemeral storage (21..200 GiB),
    # attempts before the object is quarantined, Container Insights on the cluster.
    large_object_tier: bool = True
    large_object_bytes: int | None = None
    task_cpu: int = 1024
    task_memory_mb: int = 4096
    task_ephemeral_storage_gb: int = 50
    task_max_attempts: int = 3
    task_container_insights: bool = False
    # Reconcile sweep (stacks/sweep.py): every ``sweep_interval_minutes`` a function lists the
    # route prefixes and enqueues the objects the ledger does not hold (lost notifications).
    # null: no sweep function and no schedule.
    sweep_interval_minutes: int | None = None
    # Table maintenance (stacks/maintenance.py): every ``maintenance_interval_minutes`` a function
    # runs `lakeroute maintain --apply` over the routed tables. null: no function, no schedule
    # (the automatic expiry after ingest commits still bounds the metadata).
    maintenance_interval_minutes: int | None = None
    # Where the stage's Iceberg tables live: glue (Glue databases over the warehouse bucket) or
    # s3tables (an S3 table bucket and its namespaces, stacks/table_bucket.py). Optional.
    catalog: str = "glue"
    # Optional pinning of the target account/region; otherwise CDK_DEFAULT_ACCOUNT/REGION.
    account: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        def check(ok: bool, key: str, why: str) -> None:
            if not ok:
                raise StageConfigError(
                    f"cdk.json context {STAGES_CONTEXT_KEY}.{self.name}.{key}: {why} "
                    f"(got {getattr(self, key)!r})"
                )

        if not STAGE_NAME_RE.match(self.name):
            raise StageConfigError(
                f"cdk.json context {STAGES_CONTEXT_KEY}.{self.name}: a stage name is 1-12 lowercase "
                "letters or digits, starting with a letter (it becomes part of bucket, database "
                "and stack names)")
        check(128 <= self.memory_mb <= 10240, "memory_mb", "Lambda memory is 128..10240 MB")
        check(1 <= self.timeout_seconds <= 900, "timeout_seconds", "Lambda timeout is 1..900 s")
        check(512 <= self.ephemeral_storage_mb <= 10240, "ephemeral_storage_mb",
              "Lambda ephemeral storage is 512..10240 MB")
        check(1 <= self.batch_size <= 10000, "batch_size", "SQS batch size is 1..10000")
        check(0 <= self.max_batching_window_seconds <= 300, "max_batching_window_seconds",
              "the maximum batching window is 0..300 s")
        check(self.batch_size <= 10 or self.max_batching_window_seconds >= 1, "batch_size",
              "a batch size above 10 needs max_batching_window_seconds >= 1")
        check(2 <= self.max_concurrency <= 1000, "max_concurrency",
              "SQS event source maximum concurrency is 2..1000")
        check(1 <= self.sync_timeout_seconds <= 900, "sync_timeout_seconds",
              "Lambda timeout is 1..900 s")
        check(self.log_retention_days in _RETENTION_DAYS, "log_retention_days",
              f"CloudWatch Logs retention must be one of {sorted(_RETENTION_DAYS)}")
        check(self.log_level in _LOG_LEVELS, "log_level", f"use one of {', '.join(_LOG_LEVELS)}")
        check(self.removal_policy in ("retain", "destroy"), "removal_policy",
              "use 'retain' or 'destroy'")
        check(not (self.auto_delete_objects and self.retain), "auto_delete_objects",
              "emptying buckets on deletion contradicts removal_policy 'retain'")
        for key in ("quarantine_expiry_days", "warehouse_noncurrent_expiry_days",
                    "access_log_expiry_days", "abort_multipart_days"):
            check(getattr(self, key) >= 1, key, "must be at least 1 day")
        check(1 <= self.commit_max_files <= 100_000, "commit_max_files",
              "objects per commit-lane snapshot: 1..100000 (as a route's target.commit.max_files)")
        check(1 <= self.commit_max_mb <= 100_000, "commit_max_mb",
              "staged MB per commit-lane snapshot: 1..100000 (as a route's target.commit.max_mb)")
        check(30 <= self.commit_timeout_seconds <= 900, "commit_timeout_seconds",
              "the commit function's Lambda timeout: 30..900 s")
        # The committer lingers for more work only within its invocation (minus its margin).
        check(0 <= self.commit_max_seconds <= self.commit_timeout_seconds // 2, "commit_max_seconds",
              f"0..half of commit_timeout_seconds ({self.commit_timeout_seconds // 2} s): the "
              "committer waits for more work within one invocation")
        check(512 <= self.commit_memory_mb <= 10240, "commit_memory_mb",
              "the commit function's memory: 512..10240 MB (it holds a snapshot's small-object rows "
              "and runs compaction)")
        check(self.commit_max_seconds < self.freshness_alarm_seconds <= 86400, "freshness_alarm_seconds",
              f"above commit_max_seconds ({self.commit_max_seconds} s: every object waits that long "
              "on a quiet table) and at most 86400 s")
        check(self.databases in DATABASE_SCOPES, "databases",
              "use 'stage' (<namespace>_<stage>) or 'account' (the plain namespace)")
        check(1 <= self.generation <= 99, "generation", "a generation is 1..99")
        # The queue keeps messages 4 days: an age alarm above that could never fire.
        check(60 <= self.oldest_message_alarm_seconds <= 4 * 86400, "oldest_message_alarm_seconds",
              "the ingest queue age alarm threshold is 60..345600 s")
        check(self.alarm_email is None or bool(_EMAIL_RE.match(self.alarm_email)), "alarm_email",
              "null or an e-mail address")
        check(self.large_object_bytes is None or self.large_object_bytes >= MIB, "large_object_bytes",
              "null (derived from the function) or at least 1 MiB (1048576 bytes)")
        check(self.task_cpu in FARGATE_MEMORY_MB, "task_cpu",
              f"Fargate vCPU units are one of {', '.join(map(str, FARGATE_MEMORY_MB))}")
        low, high, step = FARGATE_MEMORY_MB[self.task_cpu]
        check(low <= self.task_memory_mb <= high and (self.task_memory_mb - low) % step == 0
              and (self.task_cpu, self.task_memory_mb) != (256, 1536), "task_memory_mb",
              f"Fargate with task_cpu {self.task_cpu} takes {low}..{high} MiB in steps of {step}")
        check(21 <= self.task_ephemeral_storage_gb <= 200, "task_ephemeral_storage_gb",
              "Fargate ephemeral storage is 21..200 GiB")
        check(1 <= self.task_max_attempts <= 10, "task_max_attempts", "1..10 attempts per object")
        check(self.sweep_interval_minutes is None or 5 <= self.sweep_interval_minutes <= 1440,
              "sweep_interval_minutes", "null (no sweep) or 5..1440 minutes")
        check(self.maintenance_interval_minutes is None or 15 <= self.maintenance_interval_minutes <= 10080,
              "maintenance_interval_minutes", "null (no scheduled maintenance) or 15..10080 minutes")
        check(self.catalog in CATALOGS, "catalog", "use 'glue' (Glue Data Catalog over the warehouse "
              "bucket) or 's3tables' (an S3 table bucket)")

    # ------------------------------------------------------------------ derived values

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def cdk_removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain else RemovalPolicy.DESTROY

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_DAYS[self.log_retention_days]

    @property
    def large_object_threshold(self) -> int:
        """Bytes from which the function hands an object to a Fargate task.

        ``large_object_bytes`` when set, else min(ephemeral storage - 512 MiB,
        0.5 x timeout x 20 MiB/s): the object must fit the function's /tmp (the download
        reader copies it there) and be ingested in half its time at a conservative 20 MiB/s.
        """
        if self.large_object_bytes is not None:
            return self.large_object_bytes
        storage_mb = self.ephemeral_storage_mb - LARGE_OBJECT_TMP_RESERVE_MB
        time_mb = int(LARGE_OBJECT_TIMEOUT_SHARE * self.timeout_seconds * LARGE_OBJECT_THROUGHPUT_MB_S)
        return min(storage_mb, time_mb) * MIB

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        """AWS guidance: at least 6x the function timeout, plus the batching window."""
        return 6 * self.timeout_seconds + self.max_batching_window_seconds

    @property
    def commit_defaults(self) -> dict[str, int]:
        """``LAKEROUTE_COMMIT_DEFAULTS`` of the commit function (``core.lane.triggers``)."""
        return {"max_files": self.commit_max_files, "max_mb": self.commit_max_mb,
                "max_seconds": self.commit_max_seconds}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_mapping(cls, name: str, raw: Mapping[str, Any]) -> StageConfig:
        known = {f.name for f in fields(cls)} - {"name"}
        # Keys whose value may be null: CDK drops null context values on the way in, so they
        # are written in cdk.json (as null) but cannot be required here.
        optional = {"account", "region", "alarm_email", "large_object_bytes", "sweep_interval_minutes",
                    "maintenance_interval_minutes", "catalog"}
        where = f"cdk.json context {STAGES_CONTEXT_KEY}.{name}"
        unknown = sorted(set(raw) - known)
        missing = sorted(known - optional - set(raw))
        if unknown:
            raise StageConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        if missing:
            raise StageConfigError(f"{where}: missing key(s) {', '.join(missing)}")
        types = {f.name: f.type for f in fields(cls)}
        values = dict(raw)
        buckets = values.pop("buckets")
        if not isinstance(buckets, Mapping):
            raise StageConfigError(f"{where}.buckets: expected a mapping of logical bucket names, "
                                   f"got {buckets!r}")
        for key, value in values.items():
            want = types[key]
            ok = (
                (want == "int" and isinstance(value, int) and not isinstance(value, bool))
                or (want == "bool" and isinstance(value, bool))
                or (want == "str" and isinstance(value, str))
                or (want == "str | None" and (value is None or isinstance(value, str)))
                or (want == "int | None" and (value is None or (isinstance(value, int)
                                                                and not isinstance(value, bool))))
            )
            if not ok:
                raise StageConfigError(f"{where}.{key}: expected {want}, got {value!r}")
        overrides = {str(logical): BucketOverride.parse(f"{where}.buckets.{logical}", spec)
                     for logical, spec in buckets.items()}
        return cls(name=name, buckets=overrides, **values)

    @classmethod
    def from_context(cls, node: Any, stage: str | None = None) -> StageConfig:
        """The stage named by ``stage`` (or ``-c stage=...``) from a construct node's context."""
        stages = node.try_get_context(STAGES_CONTEXT_KEY)
        if not isinstance(stages, Mapping) or not stages:
            raise StageConfigError(
                f"cdk.json context {STAGES_CONTEXT_KEY} is missing: it maps stage names to settings"
            )
        name = (stage or node.try_get_context(STAGE_CONTEXT_KEY)
                or node.try_get_context(DEFAULT_STAGE_CONTEXT_KEY) or "dev")
        if name not in stages:
            raise StageConfigError(
                f"unknown stage {name!r} (-c stage=...); cdk.json defines: {', '.join(sorted(stages))}"
            )
        return cls.from_mapping(name, stages[name])
