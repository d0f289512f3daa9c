"""The journal: every attempt per object (committed, skipped, ignored, quarantined, failed).

The snapshot summaries say what a table holds; the journal says what happened to each object
each time it was tried, for `lakeroute history`: route, version, rows, time (UTC), stage and
reason. Writing it never fails a batch (an unwritable journal is logged, the data is safe).
Implementations: ``lakeroute.local.journal.SqliteJournal``,
``lakeroute.aws.journal.DynamoJournal``, ``MemoryJournal`` (tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .pipeline import IngestReport


@dataclass(frozen=True)
class Attempt:
    at: str  # ISO 8601, UTC, with the zone
    table: str
    route: str
    bucket: str
    key: str
    version: str
    status: str
    rows: int
    stage: str
    message: str
    rejected: int = 0  # rows set aside in the rejects file (source.on_error: rows)
    rescued: int = 0  # rows that landed with _rescued_data (target.schema: rescue)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal(Protocol):
    def record(self, attempts: list[Attempt]) -> None: ...


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
                           o.rows, o.stage or "", o.message[:500], o.rejected, o.rescued))
    return out


class MemoryJournal:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def record(self, attempts: list[Attempt]) -> None:
        self.attempts.extend(attempts)
