"""The ingestion pipeline: objects in, one commit per table per batch out.

Plain values and small ports (route table, object source, catalog, ledger, quarantine), so
the same code runs in Lambda, on a laptop and in tests.

Fail closed per object: one ``try`` spans each object's whole journey (resolve, route,
read, SQL, cast, write, verify). Any exception in it, ours or a library's, ends that object
only: it is quarantined with the stage it reached and a one-line reason, or, when the
failure is not about the object (the catalog, the ledger, throttling, the warehouse store),
failed back for a retry. The other objects of the batch go on and commit. A quarantine that
cannot be written fails the object for a retry; it is never dropped. Staged files of objects
that do not commit, and of a batch that is interrupted, are deleted.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .budget import Budget
from .commit import CommitError, commit
from .engine import Engine
from .errors import ObjectError, TransientError, translated
from .fanout import fan_out
from .journal import Journal, attempts_of
from .ledger import Ledger, TableState, reconcile, recorded
from .maintenance import expire_if_due
from .modes import table_result
from .objects import ObjectSource, Quarantine, SourceObject
from .policy import committed_message, creation_schema, evolve_table, growth, shaped
from .rejects import RowRejects, put_rejects
from .routes import Route, RouteTable, Target
from .schema_plan import plan_table
from .staging import Staged, Writer, discard
from .tables import ensure_table, provisional_table
from .types import table_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import StagedTable, Table
    from pyiceberg.table.metadata import TableMetadata

log = logging.getLogger("lakeroute.pipeline")

_ORDER = itertools.count()
# Objects' rows held in memory for shared data files (mode append): past this, commit early.
SHARED_BYTES = 128 * 1024 * 1024
# Stages whose unforeseen errors are about the infrastructure, not the object: retry.
_INFRA_STAGES = ("table", "ledger")


@dataclass(frozen=True)
class ObjectRef:
    """What an event names: an object, maybe with its version (ETag / version id)."""

    bucket: str
    key: str
    version: str | None = None
    id: str = ""  # the caller's handle (e.g. an SQS message id), echoed in outcomes
    size: int | None = None  # bytes, when the event tells (sizes the time budget)
    replay: bool = False  # re-ingested from the quarantine: resolve its record when it lands


@dataclass
class Outcome:
    ref: ObjectRef
    status: str  # committed | skipped | ignored | failed | quarantined
    message: str = ""
    route: str | None = None
    table: str | None = None
    rows: int = 0
    source_id: str | None = None
    quarantined_to: str | None = None
    stage: str | None = None  # where a quarantined or failed object stopped
    seconds: float = 0.0  # reading, SQL and staging of this object (not the shared commit)
    rejected: int = 0  # rows set aside (source.on_error: rows), in the rejects file
    rescued: int = 0  # rows with something in _rescued_data (target.schema: rescue)
    rejects_to: str | None = None  # where the rejects file is


@dataclass
class IngestReport:
    outcomes: list[Outcome] = field(default_factory=list)
    commits: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "quarantined")]

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes if o.status == "committed")

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


@dataclass
class _Plan:
    """One target table within a batch: the table (or the one its first commit creates),
    the metadata staged files are written against, and the ledger's view of it."""

    target: Target
    table: Table | None = None
    provisional: StagedTable | None = None
    state: TableState | None = None
    metadata: TableMetadata | None = None
    writer: Writer | None = None
    staged: list[tuple[ObjectRef, Staged]] = field(default_factory=list)
    blocked: str | None = None  # why nothing may be written (declared types differ from the table's)
    tail_bytes: int = 0  # the staged objects' rows held in memory for shared data files

    @property
    def home(self) -> Table:
        """Whichever table object can write and delete this table's files."""
        home = self.table if self.table is not None else self.provisional
        assert home is not None
        return home

    @property
    def evolve(self) -> bool:  # the commit may change the schema (core.policy.growth)
        return self.target.schema_policy != "strict"


class _Step:
    """Where an object's journey is, for the stage of an unforeseen error; and the object
    as fetched (read by every target of a fan-out, released once)."""

    def __init__(self) -> None:
        self.stage = "read"
        self.fetched: SourceObject | None = None


def _translated(e: BaseException, step: _Step, route: Route | None) -> BaseException:
    return translated(e, step.stage, route.name if route else None, infra=step.stage in _INFRA_STAGES)


@dataclass
class Pipeline:
    routes: RouteTable
    source: ObjectSource
    catalog: Catalog
    ledger: Ledger
    quarantine: Quarantine
    engine: Engine = field(default_factory=Engine)
    group_size: int = 500  # objects per snapshot, bounding summary size and memory
    deadline: float | None = None  # time.monotonic() by which commits must give up
    budget: Budget | None = None  # which objects may still start (Lambda: the remaining time)
    force: bool = False  # ingest even versions the table already holds (`ingest --force`)
    journal: Journal | None = None  # every attempt, for `lakeroute history`
    how: str = ""  # noted in the journal (e.g. "replay")

    def ingest(self, refs: Iterable[ObjectRef],
               progress: Callable[[Outcome | None], None] | None = None) -> IngestReport:
        start = time.monotonic()
        report = IngestReport()
        plans: dict[str, _Plan] = {}
        seen: set[str] = set()  # (table, version) pairs staged in this batch
        try:
            for ref in refs:
                if self.budget is not None and not self.budget.allows(ref.size):
                    outcomes = [Outcome(
                        ref, "failed", f"{ref.bucket}/{ref.key}: not started, {self.budget.left():.1f} s "
                        f"left do not cover it (estimated {self.budget.estimate(ref.size):.1f} s); "
                        "it is retried", stage="deadline")]
                else:
                    began = time.monotonic()
                    staged_before = sum(len(p.staged) for p in plans.values())
                    outcomes = self._stage_one(ref, plans, seen)  # one per target (fan-out: several)
                    took = time.monotonic() - began
                    for outcome in outcomes:
                        outcome.seconds = took
                    if sum(len(p.staged) for p in plans.values()) > staged_before:
                        self._last_staged(plans).seconds = took
                    if self.budget is not None:
                        self.budget.measured(ref.size, took)
                report.outcomes.extend(outcomes)
                if progress is not None:  # once per object, as it is read (None: staged for commit)
                    progress(outcomes[0] if outcomes else None)
                for name, plan in list(plans.items()):
                    if len(plan.staged) >= self.group_size or plan.tail_bytes >= SHARED_BYTES:
                        report.outcomes.extend(self._commit_group(name, plans.pop(name), report))
            while plans:
                name, plan = plans.popitem()
                if plan.staged:
                    report.outcomes.extend(self._commit_group(name, plan, report))
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, a deadline) or broken: nothing staged stays behind.
            for plan in plans.values():
                if plan.staged:
                    discard(plan.home, [s for _, s in plan.staged])
            raise
        report.seconds = time.monotonic() - start
        self._resolve_replayed(report)
        if self.journal is not None:
            try:
                self.journal.record(attempts_of(report, self.how))
            except Exception as e:  # the journal is a trail, never a reason to fail a batch
                log.error("could not write the journal: %s", e)
        return report

    def _resolve_replayed(self, report: IngestReport) -> None:
        """Replayed objects that landed (or were already in) leave the quarantine, as history."""
        resolve = getattr(self.quarantine, "resolve", None)
        if resolve is None:
            return
        for o in report.outcomes:
            if o.ref.replay and o.status in ("committed", "skipped") and o.source_id:
                try:
                    resolve(o.ref.bucket, o.ref.key, o.source_id.rsplit("@", 1)[-1], f"replayed: {o.status}")
                except Exception as e:  # the data landed; a stale record is only a wrong hint
                    log.warning("could not resolve the quarantine record of %s/%s: %s", o.ref.bucket, o.ref.key, e)

    @staticmethod
    def _last_staged(plans: dict[str, _Plan]) -> Staged:
        return max((s for plan in plans.values() for _, s in plan.staged), key=lambda s: s.order)

    # ------------------------------------------------------------ one object

    def _stage_one(self, ref: ObjectRef, plans: dict[str, _Plan], seen: set[str]) -> list[Outcome]:
        """The object's outcomes (none: staged for its commit); one per target of a fan-out."""
        obj: SourceObject | None = None
        route: Route | None = None
        step = _Step()
        why = self.routes.ignored(ref.bucket, ref.key)
        if why is not None:
            return [Outcome(ref, "ignored", f"{ref.bucket}/{ref.key}: {why}")]
        try:
            try:
                obj = self.source.resolve(ref.bucket, ref.key, ref.version)
                step.stage = "route"
                resolved = obj
                route = self.routes.match(ref.bucket, ref.key, lambda: self.source.metadata(resolved))
                if route.targets is not None:
                    return fan_out(self, ref, obj, route, plans, seen, step)
                one = self._journey(ref, obj, route, plans, seen, step)
                return [] if one is None else [one]
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:
                err = _translated(e, step, route)
                if err is e:
                    raise
                raise err from e
        except ObjectError as e:
            return [self._quarantine(ref, obj, route, e)]
        except TransientError as e:  # throttling, a changed object, the catalog: retry later
            log.warning("will retry %s/%s: %s", ref.bucket, ref.key, e)
            single = route is not None and route.targets is None
            return [Outcome(ref, "failed", str(e), route.name if route else None,
                            route.target.table if route is not None and single else None,
                            source_id=obj.source_id if obj else None, stage=step.stage)]
        finally:
            # The fetched object (S3: the download) is the one to release, else the resolved one.
            done = step.fetched if step.fetched is not None else obj
            if done is not None:
                try:
                    self.source.release(done)
                except Exception as e:  # scratch clean-up must not end the batch
                    log.warning("could not release %s: %s", done.uri, e)

    def _journey(self, ref: ObjectRef, obj: SourceObject, route: Route, plans: dict[str, _Plan],
                 seen: set[str], step: _Step) -> Outcome | None:
        name = route.target.table
        if f"{name}\0{obj.source_id}" in seen:
            return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: same version twice in "
                           "this batch", route.name, name, source_id=obj.source_id)
        step.stage = "table"
        plan = plans.get(name)
        if plan is None:
            plan = plans[name] = self._plan(route)
        if plan.blocked:
            raise ObjectError("schema", plan.blocked, route.name)
        step.stage = "ledger"
        if not self.force and plan.state is not None and recorded(self.ledger, plan.state, name, [obj.source_id]):
            return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested "
                           f"(version {obj.version[:19]})", route.name, name, source_id=obj.source_id)
        step.stage = "read"
        if step.fetched is None:  # once per object, whatever the number of targets
            fetch = getattr(self.source, "fetch", None)  # optional port step (S3: download)
            step.fetched = fetch(obj) if fetch is not None else obj
        obj = step.fetched
        staged = Staged(obj.source_id, route.name, name, 0, object_name=f"{route.source.bucket}/{obj.key}")
        rejects = RowRejects() if route.source.on_error == "rows" else None
        step.stage = "sql"
        until = None if self.budget is None else self.budget.deadline - self.budget.reserve
        with self.engine.run(route, obj, until=until, rejects=rejects) as reader:
            step.stage = "schema"
            result = table_result(route.target, table_schema(reader.schema, route.name))
            staged.result_schema = growth(route, result)
            step.stage = "table"
            self._prepare(plan, creation_schema(route, result))
            step.stage = "schema"
            if plan.evolve:
                assert plan.metadata is not None
                evolved, staged.changes = evolve_table(plan.home, plan.metadata, route, result)
                if evolved is not None:
                    plan.metadata, plan.writer = evolved, None
                    if plan.provisional is not None:
                        plan.provisional = _staged_with(plan.provisional, evolved)
            if plan.writer is None:
                plan.writer = Writer(plan.home, plan.metadata, plan.target)
            step.stage = "write"
            plan.writer.stage(shaped(route, plan.writer.arrow_schema, reader, staged, rejects), staged)
        step.stage = "read"
        verify = getattr(self.source, "verify", None)  # optional port step: bytes read == version
        try:
            if verify is not None:
                verify(obj)
            if rejects:
                staged.rejects_to = self._put_rejects(ref, obj, route, staged, rejects)
        except BaseException:
            discard(plan.home, [staged])
            raise
        seen.add(f"{name}\0{obj.source_id}")
        staged.order = next(_ORDER)
        plan.staged.append((ref, staged))
        plan.tail_bytes += staged.tail_bytes
        return None

    def _put_rejects(self, ref: ObjectRef, obj: SourceObject, route: Route, staged: Staged,
                     rejects: RowRejects) -> str:
        return put_rejects(self.quarantine, ref.bucket, ref.key, obj, route.name, route.target.table,
                           staged.rows, rejects)

    def _plan(self, route: Route) -> _Plan:
        target = route.target
        plan = _Plan(target)
        if self.catalog.table_exists(target.table):
            plan.table = self.catalog.load_table(target.table)
            plan.metadata = plan.table.metadata
            plan.state = reconcile(plan.table, target.table, self.ledger)
            # Never write into a column whose table type differs from the declared one.
            clash = [c.describe() for c in plan_table(route, plan.table) if c.kind == "type"]
            plan.blocked = "; ".join(clash) or None
        return plan

    def _prepare(self, plan: _Plan, result: pa.Schema) -> None:
        """The table to write into exists (declared) or is planned (from the first result)."""
        if plan.table is not None or plan.provisional is not None:
            return
        if plan.target.columns is not None:
            plan.table = ensure_table(self.catalog, plan.target)
            plan.metadata = plan.table.metadata
        else:
            plan.provisional = provisional_table(self.catalog, plan.target, result)
            plan.metadata = plan.provisional.metadata

    def _quarantine_late(self, ref: ObjectRef, staged: Staged, why: str) -> Outcome:
        """An object whose rows the commit could not write: quarantined like any other (its
        version resolved again, for the copy); the rest of the batch has committed."""
        obj: SourceObject | None = None
        try:
            obj = self.source.resolve(ref.bucket, ref.key, ref.version)
        except Exception as e:  # the record still says what happened; the original is in its bucket
            log.warning("could not resolve %s/%s again for its quarantine copy: %s", ref.bucket, ref.key, e)
        try:
            return self._quarantine(ref, obj, None, ObjectError("write", f"route {staged.route}: {why}",
                                                                staged.route), staged.table)
        finally:
            if obj is not None:
                try:
                    self.source.release(obj)
                except Exception as e:
                    log.warning("could not release %s: %s", obj.uri, e)

    def _quarantine(self, ref: ObjectRef, obj: SourceObject | None, route: Route | None,
                    e: ObjectError, table_name: str | None = None) -> Outcome:
        if e.route is None and route is not None:
            e.route = route.name
        if obj is not None and obj.path and obj.path != obj.uri:
            # The reader names lakeroute's scratch copy; the record names the object.
            e.message = e.message.replace(obj.path, f"{obj.bucket}/{obj.key}")
        table = route.target.table if route else table_name
        try:
            where = self.quarantine.put(ref.bucket, ref.key, obj, e, table)
        except Exception as q:  # not quarantined: let the caller retry the object, never drop it
            log.error("quarantine of %s/%s failed: %s", ref.bucket, ref.key, q)
            return Outcome(ref, "failed", f"{e.message}; quarantine failed: {type(q).__name__}: "
                           f"{_one_line(q)}", e.route, table,
                           source_id=obj.source_id if obj else None, stage=e.stage)
        log.warning("quarantined %s/%s (%s): %s", ref.bucket, ref.key, e.stage, e.message)
        return Outcome(ref, "quarantined", e.message, e.route, table, quarantined_to=where,
                       source_id=obj.source_id if obj else None, stage=e.stage)

    # ------------------------------------------------------------ one table

    def _commit_group(self, name: str, plan: _Plan, report: IngestReport) -> list[Outcome]:
        group = plan.staged
        staged = [s for _, s in group]
        try:
            result = commit(self.catalog, name, staged, self.ledger, provisional=plan.provisional,
                            evolve=plan.evolve, target=plan.target, deadline=self.deadline,
                            force=self.force)
        except Exception as e:
            keep = isinstance(e, CommitError) and e.outcome_unknown or not isinstance(e, TransientError)
            if not keep:
                discard(plan.home, staged)
            message = str(e) if isinstance(e, TransientError) else f"commit: {type(e).__name__}: {_one_line(e)}"
            log.warning("commit to %s failed: %s", name, message)
            return [Outcome(ref, "failed", message, s.route, name, source_id=s.source_id, stage="commit")
                    for ref, s in group]
        finally:
            discard(None, staged)  # local scratch (mode upsert) is done with, whatever happened
        if result.restage:
            discard(plan.home, result.restage)
        if result.snapshot_id is not None:  # maintenance (issue 14): bounded metadata, never raises
            expire_if_due(self.catalog, name, plan.target.maintenance, self.ledger, before=plan.table)
        report.commits.append({"table": name, "snapshot_id": result.snapshot_id,
                               "routes": sorted({s.route for s in result.committed}),
                               "files": len(result.committed), "attempts": result.attempts,
                               "seconds": round(result.seconds, 4)})
        committed = {id(s) for s in result.committed}
        again = {id(s) for s in result.restage}
        rejected = {id(s): why for s, why in result.rejected}
        outcomes = []
        for ref, s in group:
            if id(s) in rejected:
                outcomes.append(self._quarantine_late(ref, s, rejected[id(s)]))
            elif id(s) in committed:
                outcomes.append(Outcome(ref, "committed", committed_message(s), s.route, name, s.rows,
                                        s.source_id, seconds=s.seconds, rejected=s.rejected, rescued=s.rescued,
                                        rejects_to=s.rejects_to))
            elif id(s) in again:
                outcomes.append(Outcome(ref, "failed", f"{ref.bucket}/{ref.key}: the schema of {name} "
                                        "changed while it was staged; it will be read again", s.route,
                                        name, source_id=s.source_id, stage="commit"))
            else:
                outcomes.append(Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested",
                                        s.route, name, source_id=s.source_id))
        return outcomes


def _staged_with(table: StagedTable, metadata: TableMetadata) -> StagedTable:
    from pyiceberg.table import StagedTable

    return StagedTable(identifier=table.name(), metadata=metadata,
                       metadata_location=table.metadata_location, io=table.io, catalog=table.catalog)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:400] or type(e).__name__
