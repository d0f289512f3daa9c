"""Fixing mistakes on the embedded default: ignore rules, --force, reset, replay, quarantine, preview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import run
from tests.support.workspace import Workspace, orders


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def test_ignore_rules_are_reported_never_quarantined(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/", "pattern": "*.parquet", "exclude": ["*.tmp", "skip/*"]},
             {"table": "ns.o"})
    ws.put("bkt", "in/a.parquet", orders(2))
    for key in ("in/_SUCCESS", "in/a.parquet.crc", "in/_temporary/0/x.parquet", "in/b.tmp", "in/skip/c.parquet"):
        ws.put("bkt", key, b"noise")
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    ignored = [line for line in out.splitlines() if line.startswith("ignored ")]
    print(f"exit {code}; {len(ignored)} ignored:", *ignored, sep="\n  ")
    assert code == 0 and len(ignored) == 5
    assert "excluded by route o (source.exclude '*.tmp')" in out and "_SUCCESS marker" in out
    assert not ws.paths.quarantine.exists() or not list(ws.paths.quarantine.rglob("error.json"))
    assert len(ws.rows("ns.o")) == 2


def test_force_reingests_a_recorded_version(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "a.parquet", orders(3))
    f = str(ws.paths.landing / "bkt" / "a.parquet")
    assert run(ws, "ingest", f)[0] == 0
    code, out, _ = run(ws, "ingest", f)
    assert code == 0 and "skipped" in out
    code, out, _ = run(ws, "ingest", f, "--force")
    print(out.strip().splitlines()[-1])
    assert code == 0 and len(ws.rows("ns.o")) == 6


def test_reset_asks_then_drops_and_the_next_ingest_lands_everything(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long", "amount": "double"}})
    for i in range(3):
        ws.put("bkt", f"{i}.parquet", orders(2, start=10 * i))
    folder = str(ws.paths.landing / "bkt")
    assert run(ws, "ingest", folder)[0] == 0
    code, _, err = run(ws, "reset", "ns.o")  # no terminal, no --yes: refuses
    assert code == 2 and "--yes" in err and len(ws.rows("ns.o")) == 6
    code, out, err = run(ws, "reset", "ns.o", "--yes")
    print(out.strip())
    # the 3 objects of the batch share one data file
    assert code == 0 and "6 rows in 1 data files" in out and "3 ledger entries forgotten" in out
    assert ws.catalog().table_exists("ns.o") and ws.rows("ns.o") == []
    assert not list((ws.paths.warehouse / "ns" / "o" / "data").glob("*.parquet")) if (
        ws.paths.warehouse / "ns" / "o" / "data").exists() else True
    code, out, _ = run(ws, "ingest", folder)
    assert code == 0 and len(ws.rows("ns.o")) == 6 and "3 ingested" in out


def test_replay_after_a_route_fix_resolves_the_quarantine(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long", "amount": "double"}},
             "SELECT id, amount, 1 AS oops FROM source")
    ws.put("bkt", "a.parquet", orders(2))
    ws.put("bkt", "b.parquet", orders(3, start=5))
    assert run(ws, "ingest", str(ws.paths.landing / "bkt"))[0] == 1
    code, out, _ = run(ws, "quarantine", "ls", "--format", "json")
    listed = json.loads(out)
    assert code == 0 and {r["key"] for r in listed} == {"a.parquet", "b.parquet"}
    (ws.paths.landing / "bkt" / "b.parquet").unlink()  # the original is gone: the copy replays
    code, _, _ = run(ws, "replay", "--route", "o")
    assert code == 1, "still broken: stays quarantined"
    assert all(r["attempts"] == 2 for _, r in ws.quarantined("bkt", "a.parquet"))
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long", "amount": "double"}})
    code, out, _ = run(ws, "replay")
    print(out.strip().splitlines()[-1])
    assert code == 0 and "2 resolved, 0 still failing" in out and len(ws.rows("ns.o")) == 5
    code, out, _ = run(ws, "history", "ns.o", "--format", "json")
    statuses = [(a["key"], a["status"]) for a in json.loads(out)]
    print("history:", statuses)
    assert statuses.count(("a.parquet", "quarantined")) == 2 and ("a.parquet", "replayed") in statuses
    code, out, _ = run(ws, "history", "ns.o", "--status", "replayed", "--format", "json")
    assert code == 0 and sorted(a["key"] for a in json.loads(out)) == ["a.parquet", "b.parquet"]
    assert json.loads(run(ws, "quarantine", "ls", "--format", "json")[1]) == []
    code, out, _ = run(ws, "quarantine", "show", "bkt/a.parquet")
    assert code == 0 and json.loads(out)["resolution"] == "replayed: committed"
    assert run(ws, "quarantine", "purge", "--resolved")[1].startswith("removed 2 resolved")
    assert run(ws, "quarantine", "show", "bkt/a.parquet")[0] == 1


def test_preview_shows_rows_and_the_plan_and_commits_nothing(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"}, "SELECT id, amount * 2 AS doubled FROM source")
    ws.put("bkt", "a.parquet", orders(4))
    code, out, err = run(ws, "preview", "o", str(ws.paths.landing / "bkt" / "a.parquet"), "--rows", "2")
    print(out)
    assert code == 0 and "4 row(s); a commit would create table ns.o (2 columns)" in out
    assert "doubled" in out and not ws.catalog().table_exists("ns.o")
    assert not (ws.paths.home / "ledger.db").exists() or ws.ingest(("bkt", "a.parquet")).count("committed") == 1


def test_sync_plan_safe_changes_applied_unsafe_refused_and_ingest_never_writes_a_clashing_type(
        ws: Workspace) -> None:
    cols = {"id": "int", "amount": "double", "note": "string"}
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": cols})
    assert run(ws, "sync")[0] == 0
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {**cols, "id": "long", "extra": "string"}})
    code, out, _ = run(ws, "sync", "--plan")
    print("plan:", out.strip())
    assert code == 0 and "would evolve table ns.o: add extra; widen id int -> long" in out
    assert [f.name for f in ws.catalog().load_table("ns.o").schema().fields] == ["id", "amount", "note"]
    code, out, _ = run(ws, "sync")
    assert code == 0 and "evolved table ns.o: added extra; widened id int -> long" in out
    assert str(ws.catalog().load_table("ns.o").schema().find_field("id").field_type) == "long"
    # unsafe: double -> decimal(12,2), a string declared as long
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {
        "id": "long", "amount": "decimal(12,2)", "note": "long", "extra": "string"}})
    code, _, err = run(ws, "sync")
    print("unsafe:", err.strip())
    assert code == 2 and "ns.o.amount: the table has double, the route declares decimal(12, 2)" in err
    assert "ns.o.note: the table has string, the route declares long" in err and "lakeroute reset ns.o" in err
    ws.put("bkt", "a.csv", b"id,amount,note,extra\n1,19.99,x,y\n")
    report = ws.ingest(("bkt", "a.csv"))
    [o] = report.outcomes
    assert o.status == "quarantined" and o.stage == "schema" and "decimal(12, 2)" in o.message
    assert ws.rows("ns.o") == []


def test_backfill_ingests_what_is_there_once_with_filters(ws: Workspace) -> None:
    import os

    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"})
    for i in range(4):
        path = ws.put("bkt", f"in/{i}.parquet", orders(1, start=i))
        os.utime(path, (1_700_000_000 + i * 86400,) * 2)  # 2023-11-14 + i days
    ws.put("bkt", "in/skip.csv", b"id\n9\n")
    code, out, _ = run(ws, "backfill", "bkt/in/", "--since", "2023-11-15", "--pattern", "*.parquet")
    print(out.strip().splitlines()[-1])
    assert code == 0 and "3 object(s) found, 3 ingested" in out
    code, out, _ = run(ws, "backfill", "bkt/in/", "--pattern", "*.parquet")
    assert code == 0 and "4 object(s) found, 1 ingested, 3 already in" in out
    assert sorted(r["id"] for r in ws.rows("ns.o")) == [0, 1, 2, 3]


def test_the_journal_keeps_every_attempt(ws: Workspace) -> None:
    import datetime as dt

    from lakeroute.local.journal import SqliteJournal

    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "a.parquet", orders(2))
    ws.put("bkt", "bad.parquet", b"nope")
    ws.put("bkt", "_SUCCESS", b"")
    refs = [("bkt", "a.parquet"), ("bkt", "bad.parquet"), ("bkt", "_SUCCESS")]
    ws.ingest(*refs)
    ws.ingest(*refs)
    journal = SqliteJournal(str(ws.paths.home / "ledger.db"))
    rows = journal.read("ns.o")
    print([(r["key"], r["status"], r["rows"]) for r in rows])
    assert [(r["key"], r["status"]) for r in rows if r["key"] == "a.parquet"] == [
        ("a.parquet", "committed"), ("a.parquet", "skipped")]
    assert [r["status"] for r in rows if r["key"] == "bad.parquet"] == ["quarantined"] * 2
    assert {r["status"] for r in rows if r["key"] == "_SUCCESS"} == {"ignored"}
    assert all(dt.datetime.fromisoformat(r["at"]).tzinfo is not None for r in rows)
    assert [r["key"] for r in journal.read("ns.o", status="committed")] == ["a.parquet"]
    assert journal.read("ns.o", since=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)) == []


def test_validate_shows_ignored_files_and_the_plan(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "exclude": ["*.tmp"]}, {"table": "ns.o", "columns": {"id": "long"}})
    ws.put("bkt", "a.csv", b"id\n1\n")
    ws.put("bkt", "x.tmp", b"junk")
    ws.put("bkt", "_SUCCESS", b"")
    assert run(ws, "sync")[0] == 0
    code, _, err = run(ws, "validate")
    print(err.strip())
    assert code == 0 and "ignores 2 file(s)" in err
    ws.route("o", {"bucket": "bkt", "exclude": ["*.tmp"]}, {"table": "ns.o", "columns": {"id": "long", "n": "int"}})
    code, _, err = run(ws, "validate")
    assert code == 0 and "plan: would evolve table ns.o: add n" in err
    ws.route("o", {"bucket": "bkt", "exclude": ["*.tmp"]}, {"table": "ns.o", "columns": {"id": "string"}})
    code, _, err = run(ws, "validate")
    print(err.strip())
    assert code == 2 and "the table has long, the route declares string" in err
