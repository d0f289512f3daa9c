"""`history` tells what happened (issue 22, point 5), on the embedded default through the CLI:
rows added, updated, deleted, stale, rejected and rescued per commit and per object, in the
table and JSON views; repeated skips as one line with a count; `tables` shows the last ingest
and the last maintenance apart."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_cli import run
from tests.support.workspace import Workspace

COUNTS = ("added", "updated", "deleted", "stale", "rejected", "rescued")


def commits(ws: Workspace, table: str) -> list[dict[str, Any]]:
    code, out, err = run(ws, "history", table, "--commits", "--format", "json")
    assert code == 0, err
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def attempts(ws: Workspace, table: str) -> list[dict[str, Any]]:
    code, out, err = run(ws, "history", table, "--format", "json")
    assert code == 0, err
    lines: list[dict[str, Any]] = json.loads(out)
    return lines


def counts(entry: dict[str, Any]) -> dict[str, int]:
    return {k: entry[k] for k in COUNTS if entry[k]}


def by_key(lines: list[dict[str, Any]], status: str = "committed") -> dict[str, dict[str, int]]:
    return {a["key"]: counts(a) for a in lines if a["status"] == status}


def csv(ws: Workspace, key: str, text: str) -> str:
    ws.put("bkt", key, text.encode())
    return str(ws.paths.landing / "bkt" / key)


def test_upsert_counts_per_commit_net_and_per_object_one_by_one(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "bkt", "format": "csv"},
             {"table": "crm.c", "mode": "upsert", "key": ["id"], "order_by": "v",
              "operation": {"column": "op", "delete": ["D"]}}, "SELECT id, v, name, op FROM source")
    first = csv(ws, "1.csv", "id,v,name,op\n1,1,a,U\n2,1,b,U\n3,1,c,U\n")
    assert run(ws, "ingest", first)[0] == 0
    # one batch, two files, in this order:
    #   2.csv: id 1 newer (update), id 4 new (insert), id 2 older than the table's (stale)
    #   3.csv: id 4 again, newer (updates 2.csv's row), id 3 deleted, id 1 older than 2.csv's (stale)
    second = csv(ws, "2.csv", "id,v,name,op\n1,2,a2,U\n4,1,d,U\n2,0,b0,U\n")
    third = csv(ws, "3.csv", "id,v,name,op\n4,2,d2,U\n3,5,,D\n1,1,a1,U\n")
    code, out, err = run(ws, "ingest", second, third)
    assert code == 0, err
    assert sorted((r["id"], r["name"]) for r in ws.rows("crm.c")) == [(1, "a2"), (2, "b"), (4, "d2")]

    entries = commits(ws, "crm.c")
    print("per commit:", [(e["rows"], counts(e)) for e in entries])
    assert [e["kind"] for e in entries] == ["ingest", "ingest"]
    assert counts(entries[0]) == {"added": 3} and entries[0]["rows"] == 3
    # net: key 4 is new, key 1 changed, key 3 gone; two source rows were older than what was there
    assert counts(entries[1]) == {"added": 1, "updated": 1, "deleted": 1, "stale": 2} and entries[1]["rows"] == 6
    per_object = by_key(attempts(ws, "crm.c"))
    print("per object:", per_object)
    assert per_object == {"1.csv": {"added": 3},
                          "2.csv": {"added": 1, "updated": 1, "stale": 1},
                          "3.csv": {"updated": 1, "deleted": 1, "stale": 1}}
    code, out, _ = run(ws, "history", "crm.c")
    head = out.splitlines()[1]
    assert code == 0 and all(c in head for c in COUNTS), head
    code, out, _ = run(ws, "history", "crm.c", "--commits")
    assert code == 0 and all(c in out for c in COUNTS) and "ingest" in out


def test_replace_and_overwrite_count_what_each_object_deleted(ws: Workspace) -> None:
    ws.route("r", {"bucket": "bkt", "prefix": "r/", "format": "csv"}, {"table": "ns.r", "mode": "replace"})
    assert run(ws, "ingest", csv(ws, "r/a.csv", "id\n1\n2\n3\n"))[0] == 0
    assert run(ws, "ingest", csv(ws, "r/a.csv", "id\n1\n2\n"))[0] == 0  # a corrected re-export
    assert [counts(e) for e in commits(ws, "ns.r")] == [{"added": 3}, {"added": 2, "deleted": 3}]
    assert [counts(a) for a in attempts(ws, "ns.r")] == [{"added": 3}, {"added": 2, "deleted": 3}]

    ws.route("o", {"bucket": "bkt", "prefix": "o/", "format": "csv"},
             {"table": "ns.o", "mode": "overwrite", "overwrite": "partitions", "partition_by": ["day"]})
    assert run(ws, "ingest", csv(ws, "o/1.csv", "day,n\n1,1\n1,2\n2,3\n2,4\n"))[0] == 0
    # one batch: 2.csv replaces day 2 (2 rows), then 3.csv replaces 2.csv's day 2 (1 row)
    code, _, err = run(ws, "ingest", csv(ws, "o/2.csv", "day,n\n2,5\n"), csv(ws, "o/3.csv", "day,n\n2,6\n2,7\n2,8\n"))
    assert code == 0, err
    assert sorted(r["n"] for r in ws.rows("ns.o")) == [1, 2, 6, 7, 8]
    entries = commits(ws, "ns.o")
    print("overwrite per commit:", [counts(e) for e in entries])
    assert [counts(e) for e in entries] == [{"added": 4}, {"added": 3, "deleted": 2}]
    per_object = by_key(attempts(ws, "ns.o"))
    print("overwrite per object:", per_object)
    assert per_object == {"o/1.csv": {"added": 4}, "o/2.csv": {"added": 1, "deleted": 2},
                          "o/3.csv": {"added": 3, "deleted": 1}}


def test_rejected_and_rescued_rows_show_in_both_views(ws: Workspace) -> None:
    ws.route("rej", {"bucket": "bkt", "prefix": "rej/", "format": "csv", "on_error": "rows",
                     "columns": {"id": "long"}}, {"table": "ns.rej"})
    ws.route("res", {"bucket": "bkt", "prefix": "res/", "format": "json"},
             {"table": "ns.res", "schema": "rescue", "columns": {"id": "long"}})
    assert run(ws, "ingest", csv(ws, "rej/1.csv", "id\n1\nx\n3\n"))[0] == 0
    assert run(ws, "ingest", csv(ws, "res/1.json", '{"id": 1}\n{"id": 2, "extra": "e"}\n'))[0] == 0
    assert counts(commits(ws, "ns.rej")[0]) == {"added": 2, "rejected": 1}
    assert counts(commits(ws, "ns.res")[0]) == {"added": 2, "rescued": 1}
    assert by_key(attempts(ws, "ns.rej")) == {"rej/1.csv": {"added": 2, "rejected": 1}}
    assert by_key(attempts(ws, "ns.res")) == {"res/1.json": {"added": 2, "rescued": 1}}
    code, out, _ = run(ws, "history", "ns.rej")
    lines = out.splitlines()
    header = [c.strip() for c in lines[1].split("┃")]
    row = next(ln for ln in lines if "rej/1.csv" in ln)
    cells = [c.strip() for c in row.split("│")]
    print(dict(zip(header, cells, strict=False)))
    assert code == 0 and cells[header.index("rejected")] == "1" and cells[header.index("added")] == "2"


def test_repeated_skips_collapse_into_one_line_with_a_count(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "format": "csv"}, {"table": "ns.o"})
    folder = str(ws.paths.landing / "bkt")
    csv(ws, "a.csv", "id\n1\n")
    csv(ws, "_SUCCESS", "")
    for _ in range(4):  # four passes, as watch or backfill make them
        assert run(ws, "ingest", folder)[0] == 0
    lines = attempts(ws, "ns.o")
    print([(a["key"], a["status"], a["count"]) for a in lines])
    assert [(a["key"], a["status"], a["count"]) for a in lines] == [
        ("_SUCCESS", "ignored", 4), ("a.csv", "committed", 1), ("a.csv", "skipped", 3)]
    skipped = lines[2]
    assert skipped["last_at"] > skipped["at"]
    code, out, err = run(ws, "history", "ns.o")
    assert code == 0 and "skipped x3" in out and "ignored x4" in out and "8 attempt(s) in 3 line(s)" in err
    # a new version of the key breaks the run: its skips are counted apart
    csv(ws, "a.csv", "id\n2\n")
    assert run(ws, "ingest", folder)[0] == 0
    assert run(ws, "ingest", folder)[0] == 0
    statuses = [(a["status"], a["count"]) for a in attempts(ws, "ns.o") if a["key"] == "a.csv"]
    assert statuses == [("committed", 1), ("skipped", 3), ("committed", 1), ("skipped", 1)]


def test_tables_shows_the_last_ingest_and_the_last_maintenance_apart(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "format": "csv"}, {"table": "ns.o"})
    for i in range(3):  # three commits, three small files: something to compact
        assert run(ws, "ingest", csv(ws, f"{i}.csv", f"id\n{i}\n"))[0] == 0
    code, out, _ = run(ws, "tables", "--format", "json")
    [before] = json.loads(out)
    assert code == 0 and before["last_maintenance"] == "-" and before["last_ingest"] != "-"
    code, out, err = run(ws, "maintain", "ns.o", "--apply")
    assert code == 0, err
    entries = commits(ws, "ns.o")
    print("history --commits:", [(e["kind"], e["operation"], e["rows"], counts(e)) for e in entries])
    assert [e["kind"] for e in entries] == ["ingest", "ingest", "ingest", "compaction"]
    assert entries[-1]["rows"] == 0 and counts(entries[-1]) == {} and entries[-1]["removed_data_files"] == 3
    code, out, _ = run(ws, "tables", "--format", "json")
    [after] = json.loads(out)
    print("tables:", after)
    assert after["last_ingest"] == before["last_ingest"] == entries[2]["committed_at"]
    assert after["last_maintenance"] == f"{entries[3]['committed_at']} (compaction)"
    code, out, _ = run(ws, "tables")
    assert code == 0 and "last ingest" in out and "last maintenance" in out and "(compaction)" in out


def test_a_journal_written_before_the_row_counts_gains_them(ws: Workspace) -> None:
    import sqlite3

    ws.paths.home.mkdir(parents=True)
    con = sqlite3.connect(ws.paths.home / "ledger.db")
    con.execute("CREATE TABLE lakeroute_attempts (at TEXT NOT NULL, table_name TEXT, route TEXT, bucket TEXT, "
                "key TEXT, version TEXT, status TEXT, rows INTEGER, stage TEXT, message TEXT, "
                "rejected INTEGER DEFAULT 0, rescued INTEGER DEFAULT 0)")
    con.execute("INSERT INTO lakeroute_attempts VALUES ('2026-01-01T00:00:00.000+00:00', 'ns.o', 'o', 'bkt', "
                "'old.csv', 'v1', 'committed', 4, '', '', 0, 0)")
    con.commit()
    con.close()
    ws.route("o", {"bucket": "bkt", "format": "csv"}, {"table": "ns.o"})
    assert run(ws, "ingest", csv(ws, "new.csv", "id\n1\n2\n"))[0] == 0
    lines = attempts(ws, "ns.o")
    print([(a["key"], counts(a)) for a in lines])
    assert [(a["key"], counts(a)) for a in lines] == [("old.csv", {}), ("new.csv", {"added": 2})]
