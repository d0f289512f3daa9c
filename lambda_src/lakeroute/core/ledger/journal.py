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

ROW_COUNTS = ("added", "updated", "deleted", "stale")
NUMBERS = ("rows", "rejected", "rescued", *ROW_COUNTS)  # the attempt's counts


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
    # What a committed object did to the table's rows, as if the batch's objects had committed
    # one by one (core.write.attribution).
    added: int = 0
    updated: int = 0
    deleted: int = 0
    stale: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal(Protocol):
    def record(self, attempts: list[Attempt]) -> None: ...


class MemoryJournal:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def record(self, attempts: list[Attempt]) -> None:
        self.attempts.extend(attempts)


REPEATS = ("skipped", "ignored")  # attempts that change nothing: every watch/backfill pass adds one


def collapse_repeats(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts as history shows them: each line gets ``count`` and ``last_at``; repeated
    skipped (or ignored) attempts of one object version and table, with no other attempt of
    it in between, are one line at the first one's place."""
    out: list[dict[str, Any]] = []
    runs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for a in attempts:
        ident = (a.get("table"), a.get("bucket"), a.get("key"), a.get("version"))
        run = runs.pop(ident, None)
        if run is not None and run["status"] == a.get("status"):
            run["count"] += 1
            run["last_at"] = a.get("at")
            runs[ident] = run
            continue
        line = {**a, "count": 1, "last_at": a.get("at")}
        out.append(line)
        if a.get("status") in REPEATS:
            runs[ident] = line
    return out
