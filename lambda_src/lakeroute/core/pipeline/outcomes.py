"""What an event names (``ObjectRef``) and what became of it (``Outcome``, ``IngestReport``),
and the journal's record of each attempt."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..errors import shortened
from ..ledger.journal import ROW_COUNTS, Attempt


@dataclass(frozen=True)
class ObjectRef:
    """What an event names: an object, maybe with its version (ETag / version id)."""

    bucket: str
    key: str
    version: str | None = None
    id: str = ""  # the caller's handle (e.g. an SQS message id), echoed in outcomes
    size: int | None = None  # bytes, when the event tells (sizes the time budget)
    replay: bool = False  # re-ingested from the quarantine: resolve its record when it lands
    receives: int = 1  # how many times its message was delivered (SQS ApproximateReceiveCount)


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
    counts: dict[str, int] = field(default_factory=dict)  # added/updated/deleted/stale rows (core.write.attribution)
    # Quarantined because no route takes it (NoRouteError): terminal, the same on every retry
    # until someone moves the file or adds a route; never worth a redelivery.
    unrouted: bool = False


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


def attempts_of(report: IngestReport, how: str = "") -> list[Attempt]:
    """One attempt per outcome; ``how`` (e.g. ``replay``) is noted in the message."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    out = []
    for o in report.outcomes:
        version = (o.source_id or "").rsplit("@", 1)[-1] if o.source_id and "@" in o.source_id else (
            o.ref.version or "")
        replayed = how == "replay" or o.ref.replay
        status = "replayed" if replayed and o.status == "committed" else o.status
        out.append(Attempt(now, o.table or "", o.route or "", o.ref.bucket, o.ref.key, version, status,
                           o.rows, o.stage or "", shortened(o.message, 500), o.rejected, o.rescued,
                           **{c: o.counts.get(c, 0) for c in ROW_COUNTS}))
    return out
