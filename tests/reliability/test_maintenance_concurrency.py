"""Maintenance while 4 writer processes append to the same table (SQLite catalog, real
processes): nothing lost, nothing duplicated; conflicted compactions and expiries retry or
give way to the writers. Prints the figures (run with -s)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from lakeroute.core.maintain.maintenance import maintain_table
from lakeroute.core.routes import Maintenance
from lakeroute.local.files import local_lister
from lakeroute.local.ledger import SqliteLedger

from tests.reliability.conftest import REPO
from tests.support.patience import patience
from tests.support.workspace import Workspace, orders

WRITERS, PER, ROWS = 4, 5, 10


@pytest.mark.slow
def test_maintain_while_four_writers_append(ws: Workspace) -> None:
    ws.route("o", {"bucket": "landing"}, {
        "table": "ns.o", "partition_by": ["bucket(4, id)"], "columns": {"id": "long", "amount": "double"},
        "maintenance": {"keep_snapshots": 3, "target_file_mb": 1},  # writers expire too (auto)
    })
    keys = [f"in/{i:04d}.parquet" for i in range(WRITERS * PER)]
    for i, k in enumerate(keys):
        ws.put("landing", k, orders(ROWS, start=i * ROWS))
    from lakeroute.core.routes import load_routes
    from lakeroute.sync import sync_local

    sync_local(load_routes(ws.paths.routes), ws.paths.home)
    go = ws.root / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.worker", str(ws.root), str(go),
                               "one-by-one", "landing", *keys[w * PER:(w + 1) * PER]], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WRITERS)]
    go.touch()
    settings = Maintenance(keep_snapshots=3, target_file_mb=1)
    ledger = SqliteLedger(str(ws.paths.home / "ledger.db"))
    runs = retries = compacted = yielded = expired = 0
    deadline = time.monotonic() + 240
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        report = maintain_table(ws.catalog(), "ns.o", settings, ledger, local_lister, apply=True,
                                base_delay=0.05)
        runs += 1
        retries += report.retries
        expired += report.snapshots_expired
        c = report.compaction
        if c is not None:
            compacted += c.snapshot_id is not None and bool(c.plan.bins)
            yielded += bool(c.yielded)
        time.sleep(0.3)  # a scheduled maintenance, not a busy loop: leave the CPUs to the writers
    outs = [p.communicate(timeout=patience(60)) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    final = maintain_table(ws.catalog(), "ns.o", settings, ledger, local_lister, apply=True)
    commits = sum(out.count('"table"') for out, _ in outs)
    print(f"\n[maintain x{WRITERS} writers] {commits} writer commits, {runs} maintenance runs during "
          f"them: {compacted} compactions committed, {yielded} gave way, {retries} retries, "
          f"{expired} snapshots expired; final run: {final.retries} retries")
    assert runs >= 1 and compacted + yielded >= 1, "maintenance ran with something to compact"
    ids = [r["id"] for r in ws.rows("ns.o")]
    assert len(ids) == len(set(ids)), "a row landed twice"
    assert sorted(ids) == list(range(WRITERS * PER * ROWS)), "a row is missing"
    again = ws.ingest(*[("landing", k) for k in keys])
    assert again.count("skipped") == len(keys), [o.message for o in again.outcomes if o.status != "skipped"]
    assert len(ws.rows("ns.o")) == WRITERS * PER * ROWS
