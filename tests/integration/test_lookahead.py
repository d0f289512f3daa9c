"""One ledger look-up per table per batch (core.pipeline.lookahead), on the real SQLite ledger."""

from __future__ import annotations

import time
from collections.abc import Iterable

from lakeroute.core.pipeline import ObjectRef
from lakeroute.core.pipeline.budget import Budget
from lakeroute.local.ledger import SqliteLedger

from tests.support.workspace import Workspace, orders


class CountingLedger(SqliteLedger):
    """The SQLite ledger, its look-ups counted (each still made)."""

    lookups = 0

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        CountingLedger.lookups += 1
        return super().committed(table, uuid, source_ids)


def _lookups(ws: Workspace, n: int) -> tuple[int, dict[str, int]]:
    pipe = ws.pipeline()
    pipe.ledger = CountingLedger(str(ws.paths.home / "ledger.db"))
    CountingLedger.lookups = 0
    report = pipe.ingest([ObjectRef("bkt", f"{i}.parquet") for i in range(n)])
    statuses: dict[str, int] = {}
    for o in report.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return CountingLedger.lookups, statuses


def test_ledger_lookups_do_not_grow_with_the_batch(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    for i in range(12):
        ws.put("bkt", f"{i}.parquet", orders(1, start=i))
    assert ws.ingest(("bkt", "0.parquet")).count("committed") == 1  # the table exists from here on
    got = {n: _lookups(ws, n) for n in (3, 12)}
    print(got)
    assert got[3][1] == {"skipped": 1, "committed": 2} and got[12][1] == {"skipped": 3, "committed": 9}
    assert got[3][0] == got[12][0] <= 2  # before reading, and under the commit
    again = _lookups(ws, 12)  # all held: one look-up, nothing read
    print(again)
    assert again == (1, {"skipped": 12})
    assert sorted(r["id"] for r in ws.rows("ns.o")) == list(range(12))


def test_objects_resolved_ahead_but_never_started_are_released(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    for i in range(4):
        ws.put("bkt", f"{i}.parquet", orders(1, start=i))
    pipe = ws.pipeline()
    pipe.budget = Budget(deadline=time.monotonic() + 1.0, reserve=5.0)  # no time left for any object
    report = pipe.ingest([ObjectRef("bkt", f"{i}.parquet") for i in range(4)])
    assert [o.stage for o in report.outcomes] == ["deadline"] * 4
    left = [p for p in (ws.paths.home / "tmp" / "objects").rglob("*") if p.is_file()]
    assert left == []
