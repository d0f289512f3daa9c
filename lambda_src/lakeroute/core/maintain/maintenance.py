"""Table maintenance: compaction, snapshot expiry, orphan-file removal, manifest rewrite.

``maintain_table`` is what ``lakeroute maintain`` (locally and ``--stage``) and the scheduled
maintenance function run, per table, in this order:

1. reconcile the ledger with the table (``core.ledger``): every source the summaries name is
   in the ledger before expiry can remove a summary;
2. compaction (``core.compaction``): one REPLACE snapshot, manifests merged in it;
3. expiry (``core.expiry``) by ``keep_snapshots`` and ``keep_days``, the expired ancestors'
   sources archived first (``core.archive``), then the files only the expired snapshots
   referenced are deleted (they were committed, so no commit in flight can want them);
4. orphans: files under the table location that nothing references and that are older than
   ``orphan_days`` (staged files of interrupted runs, metadata of rejected commits). The grace
   period protects commits in flight: their files are new.

Without ``apply`` nothing is written: the report holds what would be done, in numbers.

``expire_if_due`` is the automatic part: right after an ingest commit, when the table has
passed ``keep_snapshots`` by a margin (or holds a snapshot a day past ``keep_days``), one
metadata-only commit expires the old snapshots and deletes their manifest lists. A conflict
skips it (the next commit tries again): it never delays or fails ingestion.

Exactly once survives both: expiry removes old ancestors only, and the ledger counts an
entry of an expired snapshot when it is older than the oldest retained ancestor (see
``core.ledger``). The summaries expiry removes are archived beside the table first, so a
rebuilt ledger learns them again (``core.archive``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import LakerouteError, one_line
from ..ledger.archive import consolidate, write_for_expiry
from ..ledger.rule import Ledger, reconcile
from ..shape.features import WRITABLE_FORMAT_VERSIONS, unsupported
from ..write.staging import delete_files
from .expiry import ExpiryPlan, commit_expiry, due, plan_expiry
from .references import Lister, ManifestReader, canonical, metadata_files, reach, referenced

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

    from ..routes import Maintenance, Route
    from .compaction import CompactionResult

log = logging.getLogger("lakeroute.maintenance")
MB = 1024 * 1024


@dataclass
class MaintenanceReport:
    """What maintenance did (``applied``) or would do, for one table."""

    table: str
    applied: bool
    compaction: CompactionResult | None = None
    snapshots_before: int = 0
    snapshots_expired: int = 0
    expired_files: int = 0  # files only expired snapshots referenced (deleted / to delete)
    expired_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    young_orphans: int = 0  # unreferenced but inside the grace period: kept
    retries: int = 0  # commit conflicts retried (compaction + expiry)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # it failed (what is done stays done; files a failed step wrote are orphans)
    skipped: str = ""  # why nothing was looked at (a table lakeroute cannot write at all)

    def lines(self) -> list[str]:
        verb = (lambda did, would: did) if self.applied else (lambda did, would: would)
        out = [f"{self.table}:"]
        if self.error:
            return [*out, f"  failed: {self.error}"]
        if self.skipped:
            return [*out, f"  skipped: {self.skipped}"]
        c = self.compaction
        if c is not None:
            p = c.plan
            if p.skipped:
                out.append(f"  compaction: skipped, {p.skipped}")
            elif p.bins:
                after = c.files_after if c.files_after is not None else p.files_after
                out.append(f"  compaction: {verb('rewrote', 'would rewrite')} {p.rewritten} of {p.files} data "
                           f"files ({_mb(sum(b.bytes for b in p.bins))}) in {len({b.partition for b in p.bins})} "
                           f"of {p.partitions} partitions: {p.files} -> {after} files")
            else:
                out.append(f"  compaction: nothing to do ({p.files} data files in {p.partitions} partitions)")
            if p.deferred:
                from .compaction import MAX_REWRITE_BYTES

                out.append(f"  compaction: {p.deferred} more bins left for the next run (at most "
                           f"{_mb(MAX_REWRITE_BYTES)} rewritten per run)")
            if p.rewrite_manifests:
                after_m = f" -> {c.manifests_after}" if c.manifests_after is not None else ""
                out.append(f"  manifests: {verb('rewrote', 'would rewrite')} {p.manifests}{after_m}")
            if c.yielded:
                out.append(f"  compaction: {c.yielded}")
        out.append(f"  snapshots: {verb('expired', 'would expire')} {self.snapshots_expired} of "
                   f"{self.snapshots_before}; files only they referenced: {self.expired_files} "
                   f"({_mb(self.expired_bytes)}) {verb('deleted', 'to delete')}")
        out.append(f"  orphans: {self.orphans} ({_mb(self.orphan_bytes)}) {verb('removed', 'to remove')}, "
                   f"{self.young_orphans} younger than the grace period kept")
        out.append(f"  retries: {self.retries}" + "".join(f"; {n}" for n in self.notes))
        return out


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB / 10 else f"{n / 1024:.1f} KB"


def maintain_table(catalog: Catalog, name: str, settings: Maintenance, ledger: Ledger, lister: Lister, *,
                   apply: bool, now: float | None = None, attempts: int = 6,
                   base_delay: float = 0.2, managed: bool = False) -> MaintenanceReport:
    """Compact, expire, remove orphans (see the module docstring). ``now``: epoch seconds.
    ``managed``: the catalog's service compacts and removes unreferenced files itself (S3
    Tables, ``aws.s3tables_maintenance``): only the reconcile and the expiry run here."""
    start = time.monotonic()
    now = time.time() if now is None else now
    report = MaintenanceReport(name, apply)
    table = catalog.load_table(name)
    if int(table.metadata.format_version) not in WRITABLE_FORMAT_VERSIONS:
        # PyIceberg 0.12 writes no v3 metadata (not even an expiry); the engine that upgraded
        # the table maintains it.
        report.skipped = unsupported(name, table.metadata, table.io, "maintenance") or ""
        report.seconds = time.monotonic() - start
        return report
    reconcile(table, name, ledger)
    if not managed:
        # Compaction (and its clustering, manifest rewrites) on demand: an ingest imports this
        # module for expire_if_due only.
        from .compaction import compact

        report.compaction = compact(catalog, name, settings.target_file_mb * MB, apply=apply,
                                    attempts=attempts, base_delay=base_delay)
        report.retries += report.compaction.retries
        table = catalog.load_table(name)
    reader = ManifestReader(table.io)
    plan = plan_expiry(table.metadata, settings.keep_snapshots, settings.keep_days, int(now * 1000))
    report.snapshots_before = plan.before
    deleted: set[str] = set()
    if plan.expire:
        before = table.metadata
        if apply:
            before, table, plan = _expire_with_retries(catalog, name, table, plan, settings, ledger, now,
                                                       attempts, base_delay, report)
        report.snapshots_expired = len(plan.expire)
        for path, size in _expired_only(before, table, plan, reader).items():
            report.expired_files += 1
            report.expired_bytes += size
            if apply:
                delete_files(table.io, [path])
            deleted.add(path)
    archive, merged = consolidate(table, apply)  # the chain (before a merge) stays referenced
    if merged:
        report.notes.append(f"{'merged' if apply else 'would merge'} {merged + 1} source archive files")
    if managed:
        report.notes.append("compaction and unreferenced files: the catalog's own maintenance")
        report.seconds = time.monotonic() - start
        return report
    refs = referenced(table.metadata, table.metadata_location, reader) | deleted | {canonical(p) for p in archive}
    grace = now - settings.orphan_days * 86400
    for f in lister(table.location()):
        path = canonical(f.path)
        if path in refs or path.endswith("/version-hint.text"):
            continue
        if f.modified >= grace:
            report.young_orphans += 1
            continue
        report.orphans += 1
        report.orphan_bytes += f.size
        if apply:
            delete_files(table.io, [f.path])
    report.seconds = time.monotonic() - start
    return report


def _expired_only(before: TableMetadata, after: Table, plan: ExpiryPlan, reader: ManifestReader) -> dict[str, int]:
    """Files the expired snapshots reference (read from the metadata ``before`` the expiry) that
    no snapshot retained ``after`` it, nor any metadata file, references."""
    if not plan.expire:
        return {}
    gone = reach(before, plan.expire, reader).all()
    expired = set(plan.expire)
    keep_ids = [s.snapshot_id for s in after.metadata.snapshots if s.snapshot_id not in expired]
    kept = set(reach(after.metadata, keep_ids, reader).all()) | metadata_files(after.metadata,
                                                                               after.metadata_location)
    out = {p: size for p, size in gone.items() if p not in kept}
    for p in out.keys() & gone_lists(before, plan):  # manifest lists: their size is not in metadata
        try:
            out[p] = len(reader.io.new_input(p))
        except Exception:  # gone already (an earlier run, a concurrent clean-up): counts as 0
            out[p] = 0
    return out


def gone_lists(metadata: TableMetadata, plan: ExpiryPlan) -> set[str]:
    expired = set(plan.expire)
    return {canonical(s.manifest_list) for s in metadata.snapshots if s.snapshot_id in expired}


def _expire_with_retries(catalog: Catalog, name: str, table: Table, plan: ExpiryPlan, settings: Maintenance,
                         ledger: Ledger, now: float, attempts: int, base_delay: float,
                         report: MaintenanceReport) -> tuple[TableMetadata, Table, ExpiryPlan]:
    """(the metadata planned on, the table after the expiry, the plan that was committed).
    A conflict re-loads, re-reconciles and re-plans; after ``attempts`` it gives way."""
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(1, attempts + 1):
        planned_on = table.metadata  # the commit updates the table object in place
        try:
            write_for_expiry(table, plan.expire)  # before the commit: never an unrecorded expiry
            return planned_on, commit_expiry(table, plan), plan
        except CommitFailedException:
            if attempt == attempts:
                report.notes.append(f"expiry gave way to concurrent commits after {attempt} attempts: "
                                    "nothing expired, run it again later")
                return planned_on, table, ExpiryPlan([], plan.before, plan.base)
            report.retries += 1
            time.sleep(random.uniform(0, min(5.0, base_delay * 2 ** (attempt - 1))))
            table = catalog.load_table(name)
            reconcile(table, name, ledger)
            plan = plan_expiry(table.metadata, settings.keep_snapshots, settings.keep_days, int(now * 1000))
            if not plan.expire:
                break
    return table.metadata, table, plan


def expire_if_due(catalog: Catalog, name: str, settings: Maintenance, ledger: Ledger,
                  now: float | None = None, before: Table | None = None) -> ExpiryPlan | None:
    """The automatic expiry after an ingest commit (module docstring). Never raises: a
    failure is logged and left to the next commit or to ``lakeroute maintain``.

    ``before``: the table as loaded before the commit, if at hand: when it plus the one new
    snapshot is not due, the table is not loaded again (most commits).
    """
    if not settings.auto_expire:
        return None
    try:
        from pyiceberg.exceptions import CommitFailedException

        now_ms = int((time.time() if now is None else now) * 1000)
        if before is not None and not due(before.metadata, settings.keep_snapshots, settings.keep_days,
                                          now_ms, added=1):
            return None
        table = catalog.load_table(name)
        if not due(table.metadata, settings.keep_snapshots, settings.keep_days, now_ms):
            return None
        reconcile(table, name, ledger)
        plan = plan_expiry(table.metadata, settings.keep_snapshots, settings.keep_days, now_ms)
        if not plan.expire:
            return None
        # Once the expiry landed, the expired snapshots' manifest lists (each belongs to one
        # snapshot) and the manifests no retained snapshot lists can go: reading manifest
        # lists only (a few KB each). Data files are left to `lakeroute maintain`: appends
        # remove none, and finding the others means reading manifests.
        planned = table.metadata
        try:
            write_for_expiry(table, plan.expire)
            after = commit_expiry(table, plan).metadata
        except CommitFailedException:
            log.info("automatic expiry of %s skipped: a concurrent commit; the next one retries", name)
            return None
        going = set(plan.expire)
        gone = {s.manifest_list: s for s in planned.snapshots if s.snapshot_id in going}
        kept = {m.manifest_path for s in after.snapshots for m in s.manifests(table.io)}
        unlisted = {m.manifest_path for s in gone.values() for m in s.manifests(table.io)} - kept
        for path in [*gone, *sorted(unlisted)]:
            delete_files(table.io, [path])
        log.info("expired %d snapshot(s) of %s", len(plan.expire), name)
        return plan
    except Exception as e:  # maintenance never fails a batch that committed
        log.warning("automatic expiry of %s failed: %s: %s", name, type(e).__name__, e)
        return None


def settings_by_table(routes: Iterable[Route]) -> dict[str, Maintenance]:
    """Each routed table's maintenance settings (routes feeding one table agree on them)."""
    return {r.target.table: r.target.maintenance for r in routes}


def maintain_tables(catalog: Catalog, ledger: Ledger, lister: Lister, settings: Mapping[str, Maintenance],
                    tables: Iterable[str], *, apply: bool, deadline: float | None = None,
                    done: Callable[[MaintenanceReport], None] | None = None, now: float | None = None,
                    managed: bool = False) -> tuple[list[MaintenanceReport], list[str]]:
    """``maintain_table`` for each table in turn (its route's settings, else the defaults).
    ``deadline`` (time.monotonic()): no table starts after it; (reports, tables not started)."""
    from ..routes import Maintenance

    reports: list[MaintenanceReport] = []
    todo = list(tables)
    while todo:
        if deadline is not None and time.monotonic() > deadline:
            break
        name = todo.pop(0)
        try:
            report = maintain_table(catalog, name, settings.get(name) or Maintenance(), ledger, lister,
                                    apply=apply, now=now, managed=managed)
        except LakerouteError:
            raise
        except Exception as e:  # one table's failure (catalog, storage) is not the others'
            log.error("maintenance of %s failed: %s: %s", name, type(e).__name__, e)
            report = MaintenanceReport(name, apply, error=f"{type(e).__name__}: {one_line(e, 300)}")
        reports.append(report)
        if done is not None:
            done(report)
    return reports, todo
