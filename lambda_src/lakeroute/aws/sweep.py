"""The reconcile sweep: objects under the route prefixes that no notification brought in.

S3 event notifications are at-least-once in practice but can be lost (a queue policy or a
notification configuration briefly wrong, a bucket restored, a message deleted by hand). The
sweep lists every route prefix since its watermark and sends the objects the tables do not
hold to the ingest queue, as S3 notifications; the handler is exactly-once, so an object
sent that was in fact ingested costs one invocation and is skipped.

Per run, for each distinct (bucket, prefix) of the routing table (a prefix covered by a
shorter one of the same bucket is listed with it):

- ``ListObjectsV2(Prefix=prefix)``; objects modified after the prefix's watermark minus
  ``overlap`` (15 min: S3's LastModified is the upload's start, a notification may take a
  while) and before now minus ``settle`` (2 min: their notification may still be in flight)
  are candidates; without a watermark, the last ``lookback`` (24 h; 0: every object);
- ignored keys (the built-in ignore rules, ``source.exclude``) are dropped, and so are keys
  no candidate route takes (except in the stack's own buckets, below); a key whose candidate
  routes depend on metadata is checked against every candidate's table (held in any: held),
  never dropped;
- the ledger check is ``core.ledger``'s rule: ``held(ledger, reconcile(table), ...)``
  with the table loaded from the catalog. Source ids are what S3ObjectSource.resolve and the
  table's mode would record: ``bucket/key@<ETag>`` (append) or ``@<ETag>#<LastModified>``
  (the upload: replace, overwrite, upsert) from the listing first (unversioned buckets: no
  HEAD), then, for objects not held under those, one HEAD for the VersionId (versioned
  buckets). The ledger is only read: what ``reconcile`` would record is kept in memory;
- objects not held go to the ingest queue (SendMessageBatch of 10), the watermark item
  (ledger table, pk ``#sweep``, sk ``<bucket>/<prefix>``, ``listed_until``) moves to
  now - settle. A prefix not finished before the deadline keeps its watermark.

Buckets the stack created (``owned_buckets``, the sweep function's ``LAKEROUTE_OWNED_BUCKETS``)
are listed whole, as they are notified whole: a key no route takes (and no ignore rule skips)
whose quarantine entry does not exist yet (one HEAD of its ``error.json``) is sent too, so the
handler quarantines it "no route", once; ``SweepReport.unrouted`` counts them. Imported
buckets are listed under their route prefixes only and their unrouted keys left alone (they
may hold other data).

Not covered: older versions of an overwritten key (only current versions are listed), routes
of a reference-design table (``LAKEROUTE_REFERENCE_TABLE``: only the routing table is scanned).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from ..core.errors import ConfigError, LakerouteError, NoRouteError, TransientError
from ..core.ledger import Entry, Ledger, Mark, held, reconcile
from ..core.objects import KEY_MODES, UPLOAD_SEP
from ..core.routes import Route, RouteTable
from .clients import aws_errors, transient
from .dynamo_values import item_values
from .reference import route_from_item
from .route_store import ROUTES_VERSION_BUCKET
from .s3_quarantine import S3Quarantine
from .s3_source import upload_of

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = logging.getLogger("lakeroute.aws")

SWEEP_PK = "#sweep"
BATCH = 10  # SendMessageBatch entries


@dataclass(frozen=True)
class SweepSettings:
    """Time windows of a sweep, in seconds."""

    overlap: float = 15 * 60
    settle: float = 2 * 60
    lookback: float = 24 * 3600  # without a watermark; 0: every object


@dataclass
class SweepReport:
    """What one sweep did: per prefix, objects listed (candidates) and enqueued."""

    swept: int = 0
    enqueued: int = 0
    prefixes: dict[str, tuple[int, int]] = field(default_factory=dict)  # "bucket/prefix" -> (swept, enqueued)
    unfinished: list[str] = field(default_factory=list)  # prefixes left for the next run (deadline)
    unrouted: int = 0  # keys no route takes, not yet quarantined: enqueued (counted in enqueued too)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key)


@dataclass(frozen=True)
class Candidate:
    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None = None
    upload: str = ""  # the LastModified second, as S3ObjectSource.resolve names an upload
    uploaded_ms: int | None = None

    def source_id(self, version: str) -> str:
        return f"{self.bucket}/{self.key}@{version}"

    def ids(self, version: str, mode: str) -> tuple[str, str, int | None]:
        """(the id a table in ``mode`` records, the content id, uploaded at) for ``held``. A
        version id is one per upload; an ETag is not: key-oriented modes add the upload."""
        content = self.source_id(version)
        by_upload = mode in KEY_MODES and version != self.version_id and self.upload
        return (f"{content}{UPLOAD_SEP}{self.upload}" if by_upload else content), content, self.uploaded_ms


class ReadOnlyLedger:
    """A ledger read, never written: what ``reconcile`` records is kept in memory and
    answered from there (newer than the stored entries), so the sweep needs no write."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.pending: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.marks: dict[tuple[str, str], Mark] = {}

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        ids = list(dict.fromkeys(source_ids))
        found = self.inner.committed(table, uuid, ids)
        for sid in ids:
            held = self.pending.get((table, uuid, sid))
            if held is not None:
                found[sid] = held
        return found

    def watermark(self, table: str, uuid: str) -> Mark | None:
        return self.marks.get((table, uuid)) or self.inner.watermark(table, uuid)

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        for sid, snapshot_id, seq, _ in entries:
            self.pending[(table, uuid, sid)] = (snapshot_id, seq)
        if watermark is not None:
            self.marks[(table, uuid)] = watermark


def scan_routes(ddb: Any, table: str) -> list[Route]:
    """Every valid route of the routing table (physical names); invalid items are logged."""
    routes: list[Route] = []
    args: dict[str, Any] = {"TableName": table}
    try:
        while True:
            page = ddb.scan(**args)
            for raw in page.get("Items", []):
                item = item_values(raw)
                if item.get("bucket") == ROUTES_VERSION_BUCKET:
                    continue  # the sync's routes-version item, not a route
                origin = f"routing table {table} item ({item.get('bucket')}, {item.get('name')})"
                try:
                    routes.append(route_from_item(item, origin))
                except ConfigError as e:
                    log.error("ignoring invalid route item: %s", e)
            if "LastEvaluatedKey" not in page:
                return routes
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except aws_errors() as e:
        raise transient(f"routing table {table}", e) from e


def listing_prefixes(routes: Iterable[Route], owned: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Distinct (bucket, prefix), without the prefixes a shorter one of the bucket covers; an
    ``owned`` bucket (created by the stack) whole."""
    whole = set(owned)
    pairs = sorted({(r.source.bucket, "" if r.source.bucket in whole else r.source.prefix) for r in routes},
                   key=lambda p: (p[0], len(p[1]), p[1]))
    kept: list[tuple[str, str]] = []
    for bucket, prefix in pairs:
        if not any(b == bucket and prefix.startswith(p) for b, p in kept):
            kept.append((bucket, prefix))
    return kept


def s3_notification_body(c: Candidate) -> str:
    """What S3 would have sent for the object (key form-encoded, versionId when versioned)."""
    obj: dict[str, Any] = {"key": quote_plus(c.key, safe="/"), "size": c.size, "eTag": c.etag}
    if c.version_id:
        obj["versionId"] = c.version_id
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": datetime.now().astimezone().isoformat(),
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "lakeroute-sweep",
               "bucket": {"name": c.bucket, "arn": f"arn:aws:s3:::{c.bucket}"}, "object": obj}}]})


class Sweep:
    """One reconcile sweep over the routing table's prefixes (see the module docstring)."""

    def __init__(self, *, s3: Any, ddb: Any, sqs: Any, catalog: Catalog, ledger: Ledger,
                 routes_table: str, ledger_table: str, queue_url: str,
                 settings: SweepSettings | None = None, clock: Callable[[], float] = time.time,
                 owned_buckets: Iterable[str] = (), quarantine: S3Quarantine | None = None) -> None:
        self.s3, self.ddb, self.sqs = s3, ddb, sqs
        # Without the quarantine (to ask whether a key is in it already), unrouted keys are not sent.
        self.owned = frozenset(owned_buckets) if quarantine is not None else frozenset()
        self.quarantine = quarantine
        self.catalog = catalog
        self.ledger = ReadOnlyLedger(ledger)
        self.routes_table, self.ledger_table, self.queue_url = routes_table, ledger_table, queue_url
        self.settings = settings or SweepSettings()
        self.clock = clock
        self._states: dict[str, Any] = {}  # table name -> TableState | None (no such table)

    def run(self, deadline: float | None = None) -> SweepReport:
        """``deadline``: time.monotonic() after which no further prefix is started."""
        routes = RouteTable.of(scan_routes(self.ddb, self.routes_table))
        report = SweepReport()
        for bucket, prefix in listing_prefixes(routes.routes, self.owned):
            where = f"{bucket}/{prefix}"
            if deadline is not None and time.monotonic() > deadline:
                report.unfinished.append(where)
                continue
            now = self.clock()
            until = now - self.settle_seconds
            since = self._since(where, now)
            listed = [c for c in self._list(bucket, prefix, since, until) if routes.ignored(c.bucket, c.key) is None]
            candidates = [c for c in listed if routes.candidates(c.bucket, c.key)]
            missing = self._missing(routes, candidates)
            unrouted = self._unquarantined([c for c in listed if bucket in self.owned
                                            and not routes.candidates(c.bucket, c.key)])
            report.unrouted += len(unrouted)
            missing += unrouted
            self._send(missing)
            self._put_watermark(where, until)
            report.prefixes[where] = (len(candidates), len(missing))
            report.swept += len(candidates)
            report.enqueued += len(missing)
            report.sent.extend((c.bucket, c.key) for c in missing)
        return report

    @property
    def settle_seconds(self) -> float:
        return self.settings.settle

    # -- listing

    def _since(self, where: str, now: float) -> float | None:
        mark = self._get_watermark(where)
        if mark is not None:
            return mark - self.settings.overlap
        return now - self.settings.lookback if self.settings.lookback > 0 else None

    def _list(self, bucket: str, prefix: str, since: float | None, until: float) -> Iterator[Candidate]:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        try:
            while True:
                page = self.s3.list_objects_v2(**args)
                for o in page.get("Contents", []):
                    modified = o["LastModified"].timestamp()
                    key = str(o["Key"])
                    if (since is not None and modified < since) or modified > until:
                        continue
                    if key.endswith("/") and int(o.get("Size", 0)) == 0:
                        continue  # folder placeholder
                    yield Candidate(bucket, key, str(o.get("ETag", "")).strip('"'), int(o.get("Size", 0)),
                                    None, *upload_of(o["LastModified"]))
                if not page.get("IsTruncated"):
                    return
                args["ContinuationToken"] = page["NextContinuationToken"]
        except aws_errors() as e:
            raise transient(f"listing s3://{bucket}/{prefix}", e) from e

    # -- the ledger check

    def _tables(self, routes: RouteTable, c: Candidate) -> dict[str, str]:
        """The tables the object would land in, with their modes: the winning route's, or
        (when routes depend on metadata, or do not agree) every candidate's."""
        if not routes.needs_metadata(c.bucket, c.key):
            try:
                return {leg.target.table: leg.target.mode for leg in routes.match(c.bucket, c.key).legs()}
            except (NoRouteError, LakerouteError):
                pass
        return {leg.target.table: leg.target.mode for r in routes.candidates(c.bucket, c.key) for leg in r.legs()}

    def _state(self, name: str) -> Any:
        if name not in self._states:
            from pyiceberg.exceptions import NoSuchTableError

            try:
                table = self.catalog.load_table(name)
            except NoSuchTableError:
                self._states[name] = None
            else:
                self._states[name] = reconcile(table, name, self.ledger)
        return self._states[name]

    def _held(self, tables: dict[str, list[tuple[Candidate, tuple[str, str, int | None]]]]) -> set[Candidate]:
        out: set[Candidate] = set()
        for name, pairs in tables.items():
            state = self._state(name)
            if state is None:
                continue
            ids = held(self.ledger, state, name, [asked for _, asked in pairs])
            out.update(c for c, asked in pairs if asked[0] in ids)
        return out

    def _missing(self, routes: RouteTable, candidates: list[Candidate]) -> list[Candidate]:
        tables_of = {(c.bucket, c.key): self._tables(routes, c) for c in candidates}

        def holding(cands: list[Candidate], version: Callable[[Candidate], str | None]) -> set[Candidate]:
            by_table: dict[str, list[tuple[Candidate, tuple[str, str, int | None]]]] = {}
            for c in cands:
                v = version(c)
                if v:
                    for name, mode in tables_of[(c.bucket, c.key)].items():
                        by_table.setdefault(name, []).append((c, c.ids(v, mode)))
            return self._held(by_table)

        by_etag = holding(candidates, lambda c: c.etag)
        rest = [self._head(c) for c in candidates if c not in by_etag]
        by_version = holding([c for c in rest if c.version_id], lambda c: c.version_id)
        return [c for c in rest if c not in by_version]

    def _unquarantined(self, unrouted: list[Candidate]) -> list[Candidate]:
        """The keys no route takes whose version the quarantine does not hold yet."""
        if self.quarantine is None:
            return []
        heads = [self._head(c) for c in unrouted]
        return [c for c in heads if not self.quarantine.holds(c.bucket, c.key, c.version_id or c.etag)]

    def _head(self, c: Candidate) -> Candidate:
        """The object's VersionId (versioned buckets), as S3ObjectSource.resolve records it."""
        try:
            head = self.s3.head_object(Bucket=c.bucket, Key=c.key)
        except aws_errors() as e:
            log.info("s3://%s/%s: HEAD failed (%s); enqueued all the same", c.bucket, c.key, e)
            return c
        version_id = head.get("VersionId")
        etag = str(head.get("ETag", "")).strip('"') or c.etag
        return Candidate(c.bucket, c.key, etag, int(head.get("ContentLength", c.size)),
                         version_id if version_id and version_id != "null" else None,
                         *upload_of(head.get("LastModified")))

    # -- the queue and the watermark

    def _send(self, objects: list[Candidate]) -> None:
        for i in range(0, len(objects), BATCH):
            chunk = objects[i:i + BATCH]
            entries = [{"Id": str(n), "MessageBody": s3_notification_body(c)} for n, c in enumerate(chunk)]
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except aws_errors() as e:
                raise transient(f"ingest queue {self.queue_url}", e) from e
            failed = response.get("Failed") or []
            if failed:
                raise TransientError(f"ingest queue {self.queue_url}: {len(failed)} message(s) not sent: "
                                     f"{failed[0].get('Code')}: {failed[0].get('Message')}")

    def _get_watermark(self, where: str) -> float | None:
        try:
            item = self.ddb.get_item(TableName=self.ledger_table, ConsistentRead=True,
                                     Key={"pk": {"S": SWEEP_PK}, "sk": {"S": where}}).get("Item")
        except aws_errors() as e:
            raise transient(f"ledger {self.ledger_table}", e) from e
        return float(item["listed_until"]["N"]) if item and "listed_until" in item else None

    def _put_watermark(self, where: str, until: float) -> None:
        try:
            self.ddb.put_item(TableName=self.ledger_table, Item={
                "pk": {"S": SWEEP_PK}, "sk": {"S": where}, "listed_until": {"N": f"{until:.3f}"},
                "swept_at": {"N": str(int(self.clock()))}})
        except aws_errors() as e:
            raise transient(f"ledger {self.ledger_table}", e) from e
