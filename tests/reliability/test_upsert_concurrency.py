"""Concurrent upserts lose no update: 4 processes, overlapping keys, files in random order."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa

from tests.reliability.conftest import run_workers
from tests.support.workspace import Workspace


def test_four_processes_upserting_overlapping_keys_equal_the_order_by_truth(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "d/"},
             {"table": "crm.deals", "mode": "upsert", "key": ["id"], "order_by": "version",
              "partition_by": ["bucket(4, id)"]})
    rnd = random.Random(11)
    everything: list[dict] = []
    keys = []
    for f in range(16):
        # unique versions per row: the truth has no ties to break
        rows = [{"id": rnd.randrange(200), "version": f * 1000 + j, "v": f"f{f}r{j}"} for j in range(60)]
        everything += rows
        ws.put("land", f"d/{f:03}.parquet", pa.Table.from_pylist(rows))
        keys.append(f"d/{f:03}.parquet")
    rnd.shuffle(keys)
    jobs = [("normal", "land", keys[i::4]) for i in range(4)]  # each worker: its files, one by one
    per_file_jobs = [("normal", "land", [k]) for k in keys[:2]]
    results = run_workers(ws, jobs) + run_workers(ws, per_file_jobs)
    for r in results:
        assert r["returncode"] == 0, r["stderr"]
    statuses = [s for r in results for s in r["statuses"]]
    attempts = [c["attempts"] for r in results for c in r["commits"]]
    print(f"\n[4 upserting processes] statuses={sorted(set(statuses))} commits={len(attempts)} "
          f"retries={sum(a - 1 for a in attempts)} max attempts={max(attempts)}")
    assert statuses.count("committed") == 16 and statuses.count("skipped") == 2
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist(everything))
    truth = con.execute("SELECT id, version, v FROM t QUALIFY row_number() OVER "
                        "(PARTITION BY id ORDER BY version DESC) = 1 ORDER BY id").fetchall()
    got = sorted((r["id"], r["version"], r["v"]) for r in ws.rows("crm.deals"))
    assert got == truth


def test_four_processes_applying_cdc_with_deletes_equal_the_truth(ws: Workspace) -> None:
    """CDC with deletes from 4 processes: tombstones are read and replaced in each commit's own
    transaction, so a concurrent commit never loses one; the table is per key the latest
    change, deleted keys absent, whatever the arrival order."""
    ws.route("cdc", {"bucket": "land", "prefix": "c/"},
             {"table": "crm.contacts", "mode": "upsert", "key": ["id"], "order_by": "lsn",
              "operation": {"column": "op", "delete": ["D"]}})
    rnd = random.Random(23)
    everything: list[dict] = []
    keys = []
    for f in range(16):
        rows = [{"id": rnd.randrange(120), "lsn": f * 1000 + j, "op": "D" if rnd.random() < 0.3 else "U",
                 "v": f"f{f}r{j}"} for j in range(40)]
        everything += rows
        ws.put("land", f"c/{f:03}.parquet", pa.Table.from_pylist(rows))
        keys.append(f"c/{f:03}.parquet")
    rnd.shuffle(keys)
    results = run_workers(ws, [("one-by-one", "land", keys[i::4]) for i in range(4)])  # a commit per file
    for r in results:
        assert r["returncode"] == 0, r["stderr"]
    statuses = [s for r in results for s in r["statuses"]]
    attempts = [c["attempts"] for r in results for c in r["commits"]]
    print(f"\n[4 CDC processes] commits={len(attempts)} retries={sum(a - 1 for a in attempts)}")
    assert statuses.count("committed") == 16
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist(everything))
    con.execute("CREATE TABLE last AS SELECT * FROM t "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY lsn DESC) = 1")
    truth = con.execute("SELECT id, lsn, v FROM last WHERE op <> 'D' ORDER BY id").fetchall()
    assert con.execute("SELECT count(*) FROM last WHERE op = 'D'").fetchone()[0] > 10  # type: ignore[index]
    got = sorted((r["id"], r["lsn"], r["v"]) for r in ws.rows("crm.contacts"))
    assert got == truth
