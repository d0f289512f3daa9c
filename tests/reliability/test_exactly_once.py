"""Exactly once under redelivery, crashes and concurrency (SQLite catalog; real processes).

Each test prints the figures it checked (run with -s to see them).
"""

from __future__ import annotations

import json

import pytest
from lakeroute.core.ledger import SOURCES_PROP
from lakeroute.core.ledger.archive import archived_entries

from tests.reliability.conftest import percentile, run_workers
from tests.support.workspace import Workspace, orders

SQL = "SELECT *, getvariable('source_key') AS _source_key FROM source"


def setup(ws: Workspace, files: int, rows: int = 10) -> list[str]:
    ws.route("o", {"bucket": "landing"},
             {"table": "ns.o", "columns": {"id": "long", "amount": "double", "_source_key": "string"}}, SQL)
    keys = [f"in/{i:04d}.parquet" for i in range(files)]
    for i, k in enumerate(keys):
        ws.put("landing", k, orders(rows, start=i * rows))
    # create the table up front (as `lakeroute sync` does) so workers race on commits;
    # test_same_event_to_8_workers_at_once races on creation instead
    from lakeroute.core.routes import load_routes
    from lakeroute.sync import sync_local

    assert sync_local(load_routes(ws.paths.routes), ws.paths.home) == ["created table ns.o"]
    return keys


def assert_exactly_once(ws: Workspace, keys: list[str], rows: int = 10) -> None:
    got = ws.rows("ns.o")
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)), "a row landed twice"
    assert sorted(ids) == list(range(len(keys) * rows)), "a row is missing"
    sources = [s for snap in ws.snapshots("ns.o") if snap.summary
               for s in json.loads(snap.summary.additional_properties.get(SOURCES_PROP, "[]"))]
    # snapshots expired automatically left their sources in the archive (core.archive)
    sources += [e[0] for e in archived_entries(ws.catalog().load_table("ns.o"))]
    assert len(sources) == len(set(sources)) == len(keys), "each object version recorded once"


def test_same_event_twice_in_a_row(ws: Workspace) -> None:
    keys = setup(ws, 1)
    first = ws.ingest(("landing", keys[0]))
    second = ws.ingest(("landing", keys[0]))
    print(f"\n[twice] first={first.outcomes[0].status} second={second.outcomes[0].status} "
          f"rows={len(ws.rows('ns.o'))}")
    assert (first.count("committed"), second.count("skipped")) == (1, 1)
    assert_exactly_once(ws, keys)


@pytest.mark.slow
def test_same_event_to_8_workers_at_once(ws: Workspace) -> None:
    ws.route("o", {"bucket": "landing"}, {"table": "ns.o"}, SQL)
    ws.put("landing", "in/0000.parquet", orders(10))
    results = run_workers(ws, [("normal", "landing", ["in/0000.parquet"])] * 8)
    assert all(r["returncode"] == 0 for r in results), [(r["returncode"], r["stderr"]) for r in results]
    statuses = [s for r in results for s in r["statuses"]]
    print(f"\n[8 workers, one object] statuses={sorted(statuses)} rows={len(ws.rows('ns.o'))}")
    assert statuses.count("committed") == 1 and statuses.count("skipped") == 7
    assert_exactly_once(ws, ["in/0000.parquet"])


@pytest.mark.slow
def test_32_concurrent_writers_distinct_files_one_table(ws: Workspace) -> None:
    keys = setup(ws, 64)
    jobs = [("normal", "landing", keys[i::32]) for i in range(32)]
    results = run_workers(ws, jobs)
    assert all(r["returncode"] == 0 for r in results), [r["stderr"] for r in results if r["returncode"]]
    commits = [c for r in results for c in r["commits"]]
    retries = sum(c["attempts"] - 1 for c in commits)
    latencies = [c["seconds"] for c in commits]
    redelivered = sum(r.get("redeliveries", 0) for r in results)
    print(f"\n[32 writers x 2 files] commits={len(commits)} retries={retries} redeliveries={redelivered} "
          f"p50={percentile(latencies, 0.5) * 1000:.0f}ms p99={percentile(latencies, 0.99) * 1000:.0f}ms "
          f"rows={len(ws.rows('ns.o'))}")
    assert all(s in ("committed", "skipped") for r in results for s in r["statuses"])
    if not redelivered:  # a commit of unknown outcome may land and its redelivery be skipped
        assert len(commits) == 32
    assert_exactly_once(ws, keys)


@pytest.mark.slow
def test_crash_after_commit_before_ledger_then_redelivery(ws: Workspace) -> None:
    keys = setup(ws, 3)
    [crashed] = run_workers(ws, [("crash-after-commit", "landing", keys)])
    assert crashed["returncode"] == 137, "the worker died at the fault point"
    rows_after_crash = len(ws.rows("ns.o"))
    assert rows_after_crash == 30, "the commit itself landed"
    redelivered = ws.ingest(*[("landing", k) for k in keys])
    print(f"\n[crash after commit] rows after crash={rows_after_crash} redelivery statuses="
          f"{[o.status for o in redelivered.outcomes]} rows now={len(ws.rows('ns.o'))}")
    assert redelivered.count("skipped") == 3 and redelivered.count("committed") == 0
    assert_exactly_once(ws, keys)


def test_lost_commit_response_is_detected_on_retry(ws: Workspace) -> None:
    """The catalog applied the commit but the client saw an error: the retry must not re-apply."""
    keys = setup(ws, 2)
    pipe = ws.pipeline()
    catalog = pipe.catalog
    real_commit = catalog.commit_table
    calls = {"n": 0}

    def commit_then_lose_response(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        response = real_commit(*args, **kwargs)
        if calls["n"] == 1:
            raise ConnectionError("connection reset after the catalog applied the commit")
        return response

    catalog.commit_table = commit_then_lose_response  # type: ignore[method-assign]
    from lakeroute.core.pipeline import ObjectRef

    report = pipe.ingest([ObjectRef("landing", k) for k in keys])
    print(f"\n[lost response] catalog calls={calls['n']} statuses={[o.status for o in report.outcomes]} "
          f"snapshots={len(ws.snapshots('ns.o'))}")
    assert calls["n"] == 1, "the retry saw its own snapshot and did not commit again"
    assert_exactly_once(ws, keys)


def test_many_small_commits_keep_metadata_bounded(ws: Workspace) -> None:
    keys = setup(ws, 120, rows=1)
    pipe = ws.pipeline()
    from lakeroute.core.pipeline import ObjectRef

    for k in keys:
        assert pipe.ingest([ObjectRef("landing", k)]).count("committed") == 1
    table = ws.catalog().load_table("ns.o")
    manifests = table.current_snapshot().manifests(table.io)
    metadata_dir = ws.paths.home / "warehouse" / "ns" / "o" / "metadata"
    metadata_files = list(metadata_dir.glob("*.metadata.json"))
    print(f"\n[{len(keys)} commits] manifests in current snapshot={len(manifests)} "
          f"metadata.json files kept={len(metadata_files)} snapshots={len(table.snapshots())}")
    assert len(manifests) <= 60, "manifest merge keeps the manifest list bounded"
    assert len(metadata_files) <= 52, "old metadata files are deleted after commit"
    assert_exactly_once(ws, keys, rows=1)
