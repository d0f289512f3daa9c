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
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import NoRouteError, ObjectError, TransientError, one_line
from ..ledger.journal import Journal
from ..ledger.rule import Ledger, held
from ..maintain.maintenance import expire_if_due
from ..objects import ObjectSource, Quarantine, SourceObject
from ..read.engine import Engine
from ..read.rejects import RowRejects, put_rejects
from ..routes import Route, RouteTable
from ..shape.policy import committed_message, creation_schema, evolve_table, growth, shaped
from ..shape.types import table_schema
from ..write.commit import CommitError, commit
from ..write.modes import table_result
from ..write.staging import Staged, Writer, discard
from .budget import Budget
from .closing import close_entries
from .fanout import fan_out
from .lookahead import Resolved, look_ahead
from .outcomes import IngestReport, ObjectRef, Outcome, attempts_of
from .plans import HANDOFFS_PROP, HandOff, Step, TablePlan, open_plan

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger("lakeroute.pipeline")

_ORDER = itertools.count()
# Objects' rows held in memory for shared data files (mode append): past this, commit early.
SHARED_BYTES = 128 * 1024 * 1024


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
    # The commit lane (core.lane): staged work is handed off to the table's committer
    # instead of being committed here; None: this pipeline commits its own batches.
    handoff: HandOff | None = None
    order_base: int = 0  # added to each object's staging order (parallel stagers: whose is later)
    _just_staged: Staged | None = field(default=None, init=False, repr=False, compare=False)

    def ingest(self, refs: Iterable[ObjectRef],
               progress: Callable[[Outcome | None], None] | None = None) -> IngestReport:
        start = time.monotonic()
        report = IngestReport()
        plans: dict[str, TablePlan] = {}
        seen: set[str] = set()  # (table, version) pairs staged in this batch
        refs = list(refs)
        ahead = Resolved(self.source)
        try:
            if not self.force:  # one ledger lookup per table for the whole batch
                ahead = look_ahead(refs, self.routes, self.source, self.catalog, self.ledger, plans)
            for index, ref in enumerate(refs):
                if self.budget is not None and not self.budget.allows(ref.size):
                    outcomes = [Outcome(
                        ref, "failed", f"{ref.bucket}/{ref.key}: not started, {self.budget.left():.1f} s "
                        f"left do not cover it (estimated {self.budget.estimate(ref.size):.1f} s); "
                        "it is retried", stage="deadline")]
                else:
                    began = time.monotonic()
                    self._just_staged = None
                    # one outcome per target (fan-out: several); none: staged
                    outcomes = self._stage_one(ref, plans, seen, ahead.take(index))
                    took = time.monotonic() - began
                    for outcome in outcomes:
                        outcome.seconds = took
                    if self._just_staged is not None:
                        self._just_staged.seconds = took
                    if self.budget is not None:
                        self.budget.measured(ref.size, took)
                report.outcomes.extend(outcomes)
                if progress is not None:  # once per object, as it is read (None: staged for commit)
                    progress(outcomes[0] if outcomes else None)
                for name, plan in list(plans.items()):
                    if len(plan.staged) >= self.group_size or plan.tail_bytes >= SHARED_BYTES:
                        report.outcomes.extend(self._finish_group(name, plans.pop(name), report))
            while plans:
                name, plan = plans.popitem()
                if plan.staged:
                    report.outcomes.extend(self._finish_group(name, plan, report))
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, a deadline) or broken: nothing staged stays behind.
            for plan in plans.values():
                if plan.staged:
                    discard(plan.home, [s for _, s in plan.staged])
            raise
        finally:
            ahead.release_rest()  # resolved ahead but never started (the budget, an interruption)
            self.engine.release()  # the batch's reused database and its window folder
        report.seconds = time.monotonic() - start
        if self.journal is not None:
            try:
                # A hand-off is not an outcome: the committer journals what became of the object.
                self.journal.record([a for a in attempts_of(report, self.how) if a.status != "staged"])
            except Exception as e:  # the journal is a trail, never a reason to fail a batch
                log.error("could not write the journal: %s", e)
        self.resolve_replayed(report)  # after the journal: what landed, then what it closed
        return report

    def resolve_replayed(self, report: IngestReport) -> None:
        """Landed versions close their quarantine entries: their own (resolved, kept as
        history) and their key's older versions' (superseded)."""
        close_entries(self.quarantine, report.outcomes, self.journal)

    # ------------------------------------------------------------ one object

    def _stage_one(self, ref: ObjectRef, plans: dict[str, TablePlan], seen: set[str],
                   ahead: SourceObject | None = None) -> list[Outcome]:
        """The object's outcomes (none: staged for its commit); one per target of a fan-out.
        ``ahead``: the object already resolved (core.pipeline.lookahead)."""
        obj: SourceObject | None = None
        route: Route | None = None
        step = Step()
        why = self.routes.ignored(ref.bucket, ref.key)
        if why is not None:
            return [Outcome(ref, "ignored", f"{ref.bucket}/{ref.key}: {why}")]
        try:
            try:
                obj = ahead if ahead is not None else self.source.resolve(ref.bucket, ref.key, ref.version)
                step.stage = "route"
                resolved = obj
                route = self.routes.match(ref.bucket, ref.key, lambda: self.source.metadata(resolved))
                if route.targets is not None:
                    return fan_out(self, ref, obj, route, plans, seen, step)
                one = self.journey(ref, obj, route, plans, seen, step)
                return [] if one is None else [one]
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:
                err = step.translated(e, route.name if route else None)
                if err is e:
                    raise
                raise err from e
        except ObjectError as e:
            outcome = self.quarantined(ref, obj, route, e)
            outcome.unrouted = isinstance(e, NoRouteError) and outcome.status == "quarantined"
            return [outcome]
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

    def journey(self, ref: ObjectRef, obj: SourceObject, route: Route, plans: dict[str, TablePlan],
                 seen: set[str], step: Step) -> Outcome | None:
        name = route.target.table
        sid = obj.ledger_id(route.target.mode)  # the content (append) or the upload (core.objects)
        if f"{name}\0{sid}" in seen:
            return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: same version twice in "
                           "this batch", route.name, name, source_id=sid)
        step.stage = "table"
        plan = plans.get(name)
        if plan is None:
            plan = plans[name] = open_plan(self.catalog, self.ledger, route)
        if plan.blocked:
            raise ObjectError("schema", plan.blocked, route.name)
        step.stage = "ledger"
        ask = (sid, obj.source_id, obj.uploaded_ms)
        if not self.force and plan.state is not None and (
                plan.answers[ask] if ask in plan.answers else held(self.ledger, plan.state, name, [ask])):
            return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested "
                           f"(version {obj.version[:19]})", route.name, name, source_id=sid)
        step.stage = "read"
        if step.fetched is None:  # once per object, whatever the number of targets
            fetch = getattr(self.source, "fetch", None)  # optional port step (S3: download)
            step.fetched = fetch(obj) if fetch is not None else obj
        obj = step.fetched
        staged = Staged(sid, route.name, name, 0, object_name=f"{route.source.bucket}/{obj.key}",
                        picked_at=time.time())
        rejects = RowRejects() if route.source.on_error == "rows" else None
        step.stage = "sql"
        until = None if self.budget is None else self.budget.deadline - self.budget.reserve
        with self.engine.run(route, obj, until=until, rejects=rejects) as reader:
            step.stage = "schema"
            result = table_result(route.target, table_schema(reader.schema, route.name))
            staged.result_schema = growth(route, result)
            step.stage = "table"
            plan.prepare(self.catalog, creation_schema(route, result))
            step.stage = "schema"
            if plan.evolve and not plan.is_settled(route.name, result):
                assert plan.metadata is not None
                evolved, staged.changes = evolve_table(plan.home, plan.metadata, route, result)
                if evolved is not None:
                    plan.adopt(evolved)
                else:
                    plan.settled = (route.name, result, plan.metadata)
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
        seen.add(f"{name}\0{sid}")
        staged.order = self.order_base + next(_ORDER)
        plan.staged.append((ref, staged))
        plan.tail_bytes += staged.tail_bytes
        self._just_staged = staged  # the object's time goes to its last staged target
        return None

    def _put_rejects(self, ref: ObjectRef, obj: SourceObject, route: Route, staged: Staged,
                     rejects: RowRejects) -> str:
        return put_rejects(self.quarantine, ref.bucket, ref.key, obj, route.name, route.target.table,
                           staged.rows, rejects)

    def _quarantine_late(self, ref: ObjectRef, staged: Staged, why: str) -> Outcome:
        """An object whose rows the commit could not write: quarantined like any other (its
        version resolved again, for the copy); the rest of the batch has committed."""
        obj: SourceObject | None = None
        try:
            obj = self.source.resolve(ref.bucket, ref.key, ref.version)
        except Exception as e:  # the record still says what happened; the original is in its bucket
            log.warning("could not resolve %s/%s again for its quarantine copy: %s", ref.bucket, ref.key, e)
        try:
            return self.quarantined(ref, obj, None, ObjectError("write", f"route {staged.route}: {why}",
                                                                staged.route), staged.table)
        finally:
            if obj is not None:
                try:
                    self.source.release(obj)
                except Exception as e:
                    log.warning("could not release %s: %s", obj.uri, e)

    def quarantined(self, ref: ObjectRef, obj: SourceObject | None, route: Route | None,
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
                           f"{one_line(q)}", e.route, table,
                           source_id=obj.source_id if obj else None, stage=e.stage)
        log.warning("quarantined %s/%s (%s): %s", ref.bucket, ref.key, e.stage, e.message)
        return Outcome(ref, "quarantined", e.message, e.route, table, quarantined_to=where,
                       source_id=obj.source_id if obj else None, stage=e.stage)

    # ------------------------------------------------------------ one table

    def _finish_group(self, name: str, plan: TablePlan, report: IngestReport) -> list[Outcome]:
        if self.handoff is None:
            return self.commit_group(name, plan, report)
        staged = [s for _, s in plan.staged]
        try:
            self.handoff.hand_off(name, plan)
        except Exception as e:  # nothing handed off: the objects are retried, their files deleted
            discard(plan.home, staged)
            message = f"hand-off to the commit lane of {name} failed: {type(e).__name__}: {one_line(e)}"
            log.warning("%s", message)
            return [Outcome(ref, "failed", message, s.route, name, source_id=s.source_id, stage="handoff")
                    for ref, s in plan.staged]
        finally:
            discard(None, staged)  # local scratch: the hand-off holds its own copy
        return [Outcome(ref, "staged", f"{ref.bucket}/{ref.key}: staged for {name}'s commit lane", s.route,
                        name, s.rows, s.source_id, seconds=s.seconds, rejected=s.rejected, rescued=s.rescued,
                        rejects_to=s.rejects_to) for ref, s in plan.staged]

    def commit_group(self, name: str, plan: TablePlan, report: IngestReport, keep_files: bool = False) -> list[Outcome]:
        """Commit the plan's staged objects in one snapshot; one outcome per object.
        ``keep_files``: a failed commit keeps the staged files (the commit lane retries them)."""
        group = plan.staged
        staged = [s for _, s in group]
        summary = {HANDOFFS_PROP: json.dumps(plan.handoffs)} if plan.handoffs else None
        try:
            result = commit(self.catalog, name, staged, self.ledger, provisional=plan.provisional,
                            evolve=plan.evolve, target=plan.target, deadline=self.deadline,
                            force=self.force, summary=summary)
        except Exception as e:
            keep = keep_files or isinstance(e, CommitError) and e.outcome_unknown or not isinstance(e, TransientError)
            if not keep:
                discard(plan.home, staged)
            message = str(e) if isinstance(e, TransientError) else f"commit: {type(e).__name__}: {one_line(e)}"
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
                               "seconds": round(result.seconds, 4),
                               **({"upsert_mode": result.stats["lakeroute.upsert-mode"],
                                   "upsert_mode_reason": result.stats.get("lakeroute.upsert-mode-reason", "")}
                                  if "lakeroute.upsert-mode" in result.stats else {})})
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
                                        rejects_to=s.rejects_to, counts=s.row_counts()))
            elif id(s) in again:
                outcomes.append(Outcome(ref, "failed", f"{ref.bucket}/{ref.key}: the schema of {name} "
                                        "changed while it was staged; it will be read again", s.route,
                                        name, source_id=s.source_id, stage="commit"))
            else:
                outcomes.append(Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested",
                                        s.route, name, source_id=s.source_id))
        return outcomes
