"""Everything the handler keeps warm: config, adapters, the pipeline."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import TransientError
from ..core.pipeline.budget import Budget
from ..core.read.crash import ISOLATE_RECEIVES, CrashGuard
from ..core.read.engine import Engine
from ..core.routes import RouteTable
from .catalog import make_catalog
from .clients import aws_client, botocore_session
from .config import AwsConfig
from .duckdb_s3 import duckdb_s3_setup
from .journal import DynamoJournal
from .lane import S3Lane
from .large_objects import LargeObjectTier, TierConfig
from .ledger import DynamoLedger
from .route_store import DynamoRouteStore
from .s3_quarantine import S3Quarantine
from .s3_source import S3ObjectSource

if TYPE_CHECKING:
    from ..core.pipeline import ObjectRef, Pipeline


@dataclass
class AwsRuntime:
    """Everything the handler keeps warm: config, adapters, the pipeline."""

    config: AwsConfig
    routes: DynamoRouteStore
    pipeline: Pipeline
    budget: Budget | None = None
    tier: LargeObjectTier | None = None
    lane: S3Lane | None = None  # the commit lane (LAKEROUTE_LANE): ingest hands off, the committer commits

    @classmethod
    def from_env(cls) -> AwsRuntime:
        import boto3

        from ..core.pipeline import Pipeline

        config = AwsConfig.from_env()
        core = botocore_session()  # its loaded data shared with the catalog's session (make_catalog)
        session = boto3.session.Session(botocore_session=core)
        s3 = aws_client("s3", session)
        ddb = aws_client("dynamodb", session)
        store = DynamoRouteStore(config.routes_table, ddb=ddb, reference_table=config.reference_table,
                                 ttl=config.routes_ttl)
        spill = os.path.join(config.tmp_dir, "lakeroute-duckdb")
        os.makedirs(spill, exist_ok=True)
        pipeline = Pipeline(
            routes=RouteTable({}),
            source=S3ObjectSource(s3, reader=config.reader, tmp_dir=config.tmp_dir),
            catalog=make_catalog(config, core),
            ledger=DynamoLedger(config.ledger_table, ddb=ddb, ttl_days=config.ledger_ttl_days),
            journal=DynamoJournal(config.ledger_table, ddb=ddb, ttl_days=config.ledger_ttl_days),
            quarantine=S3Quarantine(config.quarantine, s3),
            engine=Engine(memory_limit=config.duckdb_memory, temp_directory=spill,
                          timeout_seconds=config.object_timeout_seconds,
                          window_root=os.path.join(config.tmp_dir, "lakeroute-read"),
                          s3_setup=duckdb_s3_setup(session),
                          crash_guard=CrashGuard(os.path.join(config.tmp_dir, "lakeroute-crash"))),
        )
        tier_config = TierConfig.from_env()
        tier = LargeObjectTier(tier_config, session=session) if tier_config else None
        runtime = cls(config, store, pipeline, tier=tier)
        if config.lane is not None:
            from ..core.lane.handoff import LaneHandOff

            runtime.lane = S3Lane(config.lane, s3, aws_client("sqs", session), config.lane_queue)
            pipeline.handoff = LaneHandOff(runtime.lane) if config.lane_queue else None
        return runtime

    def prepare(self, refs: list[ObjectRef], deadline: float | None) -> Pipeline:
        """The pipeline with the batch's routes (cached lookups), commit deadline and time
        budget (objects start only while the time left covers them)."""
        self.pipeline.routes = self.routes.route_table(refs)
        self.pipeline.deadline = deadline
        # Staging order across invocations: a later batch's objects are the later ones.
        self.pipeline.order_base = time.time_ns()
        guard = self.pipeline.engine.crash_guard
        if guard is not None:  # failed twice, maybe on another execution environment: a child reads it
            guard.suspects = {(r.bucket, r.key) for r in refs if r.receives >= ISOLATE_RECEIVES}
        if deadline is None:
            self.pipeline.budget = None
        else:
            budget = self.budget if self.budget is not None else Budget(deadline)
            budget.deadline = deadline
            budget.reserve = min(self.config.commit_reserve_seconds, max(0.0, (deadline - time.monotonic()) / 3))
            self.pipeline.budget = self.budget = budget  # the measured throughput stays warm
        return self.pipeline

    def hand_off(self, refs: list[ObjectRef]) -> tuple[list[ObjectRef], list[tuple[ObjectRef, str, str]]]:
        """Objects for the large-object tier started as tasks: (the rest, [(ref, status, detail)])
        with status ``handed_off`` (detail: the task ARN) or ``failed`` (detail: why)."""
        if self.tier is None:
            return refs, []
        rest: list[ObjectRef] = []
        done: list[tuple[ObjectRef, str, str]] = []
        budget = self.pipeline.budget
        left = budget.left() if budget is not None else None
        for ref in refs:
            estimate = budget.estimate(ref.size) if budget is not None else None
            if not self.tier.takes(ref, left, estimate):
                rest.append(ref)
                continue
            try:
                done.append((ref, "handed_off", self.tier.hand_off(ref)))
            except TransientError as e:
                done.append((ref, "failed", str(e)))
        return rest, done
