"""The ingestion pipeline: objects in, one commit per table per batch out.

Plain values and small ports (route table, object source, catalog, ledger, quarantine), so
the same code runs in Lambda, on a laptop and in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .commit import commit
from .engine import Engine
from .errors import ObjectError, TransientError
from .ledger import Ledger, reconcile
from .objects import ObjectSource, Quarantine, SourceObject
from .routes import Route, RouteTable
from .staging import Staged, Writer, discard
from .tables import ensure_table, evolve_schema

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger("lakeroute.pipeline")


@dataclass(frozen=True)
class ObjectRef:
    """What an event names: an object, maybe with its version (ETag / version id)."""

    bucket: str
    key: str
    version: str | None = None
    id: str = ""  # the caller's handle (e.g. an SQS message id), echoed in outcomes


@dataclass
class Outcome:
    ref: ObjectRef
    status: str  # committed | skipped | failed | quarantined
    message: str = ""
    route: str | None = None
    table: str | None = None
    rows: int = 0
    source_id: str | None = None
    quarantined_to: str | None = None


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
class Pipeline:
    routes: RouteTable
    source: ObjectSource
    catalog: Catalog
    ledger: Ledger
    quarantine: Quarantine
    engine: Engine = field(default_factory=Engine)
    group_size: int = 500  # objects per snapshot, bounding summary size and memory
    deadline: float | None = None  # time.monotonic() by which commits must give up

    def ingest(self, refs: Iterable[ObjectRef],
               progress: Callable[[Outcome | None], None] | None = None) -> IngestReport:
        start = time.monotonic()
        report = IngestReport()
        tables: dict[str, Table] = {}
        writers: dict[str, Writer] = {}
        pending: dict[str, list[tuple[ObjectRef, Staged]]] = {}
        seen: set[str] = set()

        for ref in refs:
            outcome = self._stage_one(ref, tables, writers, pending, seen)
            if outcome is not None:
                report.outcomes.append(outcome)
            if progress is not None:  # once per object, as it is read (None: staged for commit)
                progress(outcome)
            for name, group in list(pending.items()):
                if len(group) >= self.group_size:
                    report.outcomes.extend(self._commit_group(name, pending.pop(name), report))
                    writers.pop(name, None)
        for name, group in pending.items():
            report.outcomes.extend(self._commit_group(name, group, report))
        report.seconds = time.monotonic() - start
        return report

    # ------------------------------------------------------------ steps

    def _stage_one(self, ref: ObjectRef, tables: dict[str, Table], writers: dict[str, Writer],
                   pending: dict[str, list[tuple[ObjectRef, Staged]]], seen: set[str]) -> Outcome | None:
        obj: SourceObject | None = None
        route: Route | None = None
        try:
            obj = self.source.resolve(ref.bucket, ref.key, ref.version)
            resolved = obj
            route = self.routes.match(ref.bucket, ref.key, lambda: self.source.metadata(resolved))
            table_name = route.target.table
            if obj.source_id in seen:
                return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: same version twice in "
                               "this batch", route.name, table_name, source_id=obj.source_id)
            table = tables.get(table_name)
            if table is None and self.catalog.table_exists(table_name):
                table = tables[table_name] = self.catalog.load_table(table_name)
                reconcile(table, table_name, self.ledger)
            if table is not None and self.ledger.committed(table_name, [obj.source_id]):
                return Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested "
                               f"(version {obj.version[:19]})", route.name, table_name,
                               source_id=obj.source_id)
            fetch = getattr(self.source, "fetch", None)  # optional port step (S3: download)
            if fetch is not None:
                obj = fetch(obj)
            staged = Staged(obj.source_id, route.name, table_name, 0)
            with self.engine.run(route, obj) as reader:
                if table is None:
                    table = tables[table_name] = ensure_table(self.catalog, route.target, reader.schema)
                if route.target.columns is None:
                    before = table.schema().schema_id
                    table = tables[table_name] = evolve_schema(table, reader.schema)
                    if table.schema().schema_id != before:
                        writers.pop(table_name, None)
                writer = writers.get(table_name)
                if writer is None:
                    writer = writers[table_name] = Writer(table)
                writer.stage(reader, staged)
            seen.add(obj.source_id)
            pending.setdefault(table_name, []).append((ref, staged))
            return None
        except ObjectError as e:
            if e.route is None and route is not None:
                e.route = route.name
            try:
                where = self.quarantine.put(ref.bucket, ref.key, obj, e)
            except TransientError as q:  # not quarantined: let the caller retry the object
                return Outcome(ref, "failed", f"{e.message}; quarantine failed: {q}", e.route,
                               route.target.table if route else None,
                               source_id=obj.source_id if obj else None)
            log.warning("quarantined %s/%s (%s): %s", ref.bucket, ref.key, e.stage, e.message)
            return Outcome(ref, "quarantined", e.message, e.route,
                           route.target.table if route else None, quarantined_to=where,
                           source_id=obj.source_id if obj else None)
        except TransientError as e:  # throttling, a changed object, ...: retry later
            log.warning("will retry %s/%s: %s", ref.bucket, ref.key, e)
            return Outcome(ref, "failed", str(e), route.name if route else None,
                           route.target.table if route else None,
                           source_id=obj.source_id if obj else None)
        finally:
            if obj is not None:
                self.source.release(obj)

    def _commit_group(self, table_name: str, group: list[tuple[ObjectRef, Staged]],
                      report: IngestReport) -> list[Outcome]:
        staged = [s for _, s in group]
        try:
            result = commit(self.catalog, table_name, staged, self.ledger, deadline=self.deadline)
        except TransientError as e:
            table = self.catalog.load_table(table_name)
            discard(table, staged)
            return [Outcome(ref, "failed", str(e), s.route, table_name, source_id=s.source_id)
                    for ref, s in group]
        report.commits.append({"table": table_name, "snapshot_id": result.snapshot_id,
                               "files": len(result.committed), "attempts": result.attempts,
                               "seconds": round(result.seconds, 4)})
        committed = {id(s) for s in result.committed}
        return [
            Outcome(ref, "committed", f"{s.rows} rows", s.route, table_name, s.rows, s.source_id)
            if id(s) in committed else
            Outcome(ref, "skipped", f"{ref.bucket}/{ref.key}: already ingested", s.route,
                    table_name, source_id=s.source_id)
            for ref, s in group
        ]

