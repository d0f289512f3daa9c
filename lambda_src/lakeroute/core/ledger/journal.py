"""The journal: every attempt per object (committed, skipped, ignored, quarantined, failed).

The snapshot summaries say what a table holds; the journal says what happened to each object
each time it was tried, for `lakeroute history`: route, version, rows, time (UTC), stage and
reason. Writing it never fails a batch (an unwritable journal is logged, the data is safe).
Implementations: ``lakeroute.local.journal.SqliteJournal``,
``lakeroute.aws.journal.DynamoJournal``, ``MemoryJournal`` (tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


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


class MemoryJournal:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def record(self, attempts: list[Attempt]) -> None:
        self.attempts.extend(attempts)
