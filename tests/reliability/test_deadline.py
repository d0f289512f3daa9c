"""Deadline-aware batches: objects start only while the time left covers them (core.budget)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lakeroute.core.pipeline import ObjectRef
from lakeroute.core.pipeline.budget import Budget

from tests.support.patience import patience
from tests.support.workspace import Workspace, orders


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def test_budget_estimates_from_measured_throughput() -> None:
    now = [100.0]
    b = Budget(deadline=110.0, reserve=2.0, per_object=0.5, default_rate=10e6, clock=lambda: now[0])
    assert b.allows(50_000_000)  # 0.5 + 5 s <= 8 s left
    assert not b.allows(80_000_000)  # 0.5 + 8 s > 8 s
    b.measured(100_000_000, 2.0)  # 50 MB/s measured
    assert b.allows(300_000_000)  # 0.5 + 6 s
    now[0] = 107.0
    assert b.left() == pytest.approx(1.0) and not b.allows(60_000_000)
    print("estimates:", b.estimate(60_000_000), "left:", b.left())


def test_objects_that_do_not_fit_are_failed_back_unread_the_rest_commits(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    refs = []
    for i in range(6):
        ws.put("bkt", f"{i}.parquet", orders(3, start=10 * i))
        refs.append(ObjectRef("bkt", f"{i}.parquet", size=1_000 if i < 3 else 2_000_000_000_000))
    pipe = ws.pipeline()
    pipe.budget = Budget(deadline=time.monotonic() + patience(30), reserve=5)
    report = pipe.ingest(refs)
    got = [(o.ref.key, o.status, o.stage) for o in report.outcomes]
    print(got)
    assert report.count("committed") == 3 and report.count("failed") == 3
    assert all(o.stage == "deadline" and "not started" in o.message for o in report.failed)
    assert len(ws.rows("ns.o")) == 9
    files = {str(p) for p in ws.paths.warehouse.rglob("*.parquet")}
    table = ws.catalog().load_table("ns.o")
    assert files == {t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()}
    again = ws.ingest(*[("bkt", o.ref.key) for o in report.failed])
    assert again.count("committed") == 3 and len(ws.rows("ns.o")) == 18


def test_an_object_running_into_the_deadline_is_failed_back_not_quarantined(ws: Workspace) -> None:
    ws.route("slow", {"bucket": "bkt"}, {"table": "ns.slow"},
             "SELECT count(*) AS n FROM range(100000000000000)")
    ws.put("bkt", "x.csv", b"id\n1\n")
    pipe = ws.pipeline()
    pipe.budget = Budget(deadline=time.monotonic() + 2.5, reserve=0.5, per_object=0.1)
    t0 = time.monotonic()
    [o] = pipe.ingest([ObjectRef("bkt", "x.csv", size=6)]).outcomes
    print(o.status, o.stage, f"{time.monotonic() - t0:.1f}s", o.message)
    assert o.status == "failed" and "time ran out" in o.message
    assert time.monotonic() - t0 < patience(10)
    assert not ws.quarantined("bkt", "x.csv")
