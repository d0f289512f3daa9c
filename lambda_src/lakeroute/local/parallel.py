"""``--workers N`` on the embedded default: N processes stage, one committer per table commits.

Each worker process runs the ordinary pipeline over its share of the objects (a contiguous
slice, so "the later object" of a batch is the later one in the call's list, as with one
process), handing its staged objects to the commit lane (``<home>/lane``) instead of
committing. Then this process commits each table's lane (``core.lane.committer``): one
snapshot per table for everything staged, the same exactly-once rule, the same quarantine.
Hand-offs left by an earlier run that was killed are found and committed too.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..core.lane.committer import commit_lane
from ..core.lane.handoff import LaneHandOff
from ..core.pipeline import IngestReport, ObjectRef, Outcome, Pipeline
from ..core.pipeline.outcomes import attempts_of
from .lane import FolderLane
from .runtime import LocalPaths, local_pipeline

WORKER_DIED = ("a staging worker died ({e}): a native crash on one of its objects takes its process down; "
               "run again: the object it was reading is then read in a separate process and quarantined alone")
ORDER_STRIDE = 10**15  # staging order: worker i's objects after worker i-1's (core.write.staging.Staged.order)


def default_workers() -> int:
    return os.cpu_count() or 1


def lane_of(paths: LocalPaths) -> FolderLane:
    return FolderLane(paths.home / "lane")


def ingest_parallel(paths: LocalPaths, refs: list[ObjectRef], workers: int, *, force: bool = False,
                    overrides: dict[tuple[str, str], Path] | None = None) -> IngestReport:
    """Stage ``refs`` in ``workers`` processes, then commit every table's lane here."""
    started = time.monotonic()
    workers = max(1, min(workers, len(refs)))
    if workers == 1 and not lane_of(paths).tables():
        return _pipeline(paths, force, overrides).ingest(refs)
    size = -(-len(refs) // workers)
    chunks = [refs[i:i + size] for i in range(0, len(refs), size)]
    report = IngestReport()
    if len(chunks) == 1:
        report.outcomes += _stage(paths, chunks[0], 0, force, overrides).outcomes
    elif chunks:
        _warm()
        with ProcessPoolExecutor(len(chunks)) as pool:
            futures = [pool.submit(_stage, paths, chunk, i, force, overrides) for i, chunk in enumerate(chunks)]
            for f, chunk in zip(futures, chunks, strict=True):
                try:
                    report.outcomes += f.result().outcomes
                except BrokenProcessPool as e:  # a native crash in a stager takes the pool down
                    report.outcomes += [Outcome(ref, "failed", WORKER_DIED.format(e=e), stage="worker")
                                        for ref in chunk]
    # The committer's catalog and ledger connections are opened only now: nothing of them
    # is inherited by the workers (forked on Linux).
    final = commit_all(_pipeline(paths, force, overrides), lane_of(paths), report)
    final.seconds = time.monotonic() - started  # the run's, as one process reports its own
    return final


def _warm() -> None:
    """Import what the workers and the committer need before the workers fork: they inherit it
    instead of each importing it again (about half a second of CPU per process)."""
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pyiceberg.catalog.sql  # noqa: F401
    import pyiceberg.io.pyarrow  # noqa: F401
    import pyiceberg.table  # noqa: F401


def commit_all(pipe: Pipeline, lane: FolderLane, staged: IngestReport) -> IngestReport:
    """Commit every table's lane; each staged outcome becomes its commit's outcome."""
    final = IngestReport(seconds=staged.seconds)
    done: dict[tuple[str, str, str | None], list] = {}
    for table in lane.tables():
        out = commit_lane(pipe, lane, table, linger=False)
        final.commits += out.report.commits
        for o in out.report.outcomes:
            done.setdefault((o.ref.bucket, o.ref.key, o.table), []).append(o)
        if pipe.journal is not None:
            pipe.journal.record(attempts_of(out.report))
    for o in staged.outcomes:
        landed = done.pop((o.ref.bucket, o.ref.key, o.table), None) if o.status == "staged" else None
        final.outcomes += landed if landed else [o]
    for rest in done.values():  # hand-offs of an earlier, interrupted run (or of a broken pool)
        final.outcomes += rest
    reached = {(o.ref.bucket, o.ref.key) for o in final.outcomes if o.stage != "worker"}
    final.outcomes = [o for o in final.outcomes if o.stage != "worker" or (o.ref.bucket, o.ref.key) not in reached]
    return final


def _pipeline(paths: LocalPaths, force: bool, overrides: dict[tuple[str, str], Path] | None) -> Pipeline:
    from .objects import LocalObjectSource

    pipe = local_pipeline(paths)
    pipe.force = force
    if overrides:
        assert isinstance(pipe.source, LocalObjectSource)
        pipe.source.overrides.update(overrides)
    return pipe


def _stage(paths: LocalPaths, refs: list[ObjectRef], index: int, force: bool,
           overrides: dict[tuple[str, str], Path] | None) -> IngestReport:
    """A worker: the pipeline over its slice, handing off instead of committing."""
    pipe = _pipeline(paths, force, overrides)
    pipe.handoff = LaneHandOff(lane_of(paths))
    pipe.order_base = index * ORDER_STRIDE
    return pipe.ingest(refs)
