"""source.on_error: rows: bad CSV/JSON rows set aside with line numbers, the good rows commit.

Nothing is dropped silently: every line of the file is either a row of the table or a record
in the rejects file, and the counts are in the outcome, the journal, the snapshot summary.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from lakeroute.local.journal import SqliteJournal

from tests.integration.test_cli import run
from tests.support.workspace import Workspace


def _rejects(where: str | None) -> list[dict]:
    assert where is not None
    return [json.loads(line) for line in Path(where).read_text().splitlines()]


CSV = (b"id,name,amount\n"
       b"1,a,1.5\n"
       b"2,b\n"                 # line 3: a column missing
       b"x3,c,2.0\n"            # line 4: id is not a number (hinted long)
       b"4,d,2.5,9\n"           # line 5: a column too many
       b"5,e,3.0\n")


def test_csv_bad_lines_go_to_the_rejects_file_the_rest_commits(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "on_error": "rows", "columns": {"id": "long"}}, {"table": "ns.c"})
    ws.put("bkt", "x.csv", CSV)
    report = ws.ingest(("bkt", "x.csv"))
    assert not report.failed, [o.message for o in report.failed]
    [o] = report.outcomes
    print(o.message)
    assert (o.status, o.rows, o.rejected) == ("committed", 2, 3)
    assert sorted(r["id"] for r in ws.rows("ns.c")) == [1, 5]
    rejects = _rejects(o.rejects_to)
    assert [r["line"] for r in rejects] == [3, 4, 5]
    assert [r["text"] for r in rejects] == ["2,b", "x3,c,2.0", "4,d,2.5,9"]
    assert rejects[0]["reason"] == "only 2 of 3 columns" and rejects[1]["column"] == "id"
    assert rejects[2]["reason"] == "4 values for 3 columns"
    assert o.rejects_to.startswith(str(ws.paths.quarantine))  # type: ignore[union-attr]
    summary = json.loads((Path(o.rejects_to).parent / "rejects.json").read_text())  # type: ignore[arg-type]
    assert summary["tables"]["ns.c"]["rejected_rows"] == 3
    props = ws.snapshots("ns.c")[-1].summary.additional_properties
    assert props["lakeroute.rejected_rows"] == "3" and props["lakeroute.rows"] == "2"
    [attempt] = SqliteJournal(str(ws.paths.home / "ledger.db")).read("ns.c")
    assert (attempt["status"], attempt["rows"], attempt["rejected"]) == ("committed", 2, 3)
    assert not ws.quarantined("bkt", "x.csv"), "the object itself is not quarantined"


def test_with_on_error_file_a_bad_value_quarantines_the_file_whole(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "columns": {"id": "long"}}, {"table": "ns.c"})
    ws.put("bkt", "x.csv", b"id,name\n1,a\nx3,c\n5,e\n")
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    assert o.status == "quarantined" and ws.rows("ns.c") == []


def test_json_malformed_lines_are_rejected_with_line_numbers(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt", "on_error": "rows"}, {"table": "ns.j"})
    body = (b'{"id": 1, "name": "a"}\n'
            b'\n'
            b'{"id": 2, "name": \n'        # line 3: cut
            b'not json at all\n'           # line 4
            b'{"id": 3, "name": "c"}\n'
            b'[1, 2]\n')                   # JSON, but not an object
    ws.put("bkt", "x.jsonl.gz", gzip.compress(body))
    report = ws.ingest(("bkt", "x.jsonl.gz"))
    assert not report.failed, [o.message for o in report.failed]
    [o] = report.outcomes
    print(o.message)
    assert (o.rows, o.rejected) == (2, 3)
    assert sorted((r["id"], r["name"]) for r in ws.rows("ns.j")) == [(1, "a"), (3, "c")]
    rejects = _rejects(o.rejects_to)
    assert [(r["line"], r["text"]) for r in rejects] == [
        (3, '{"id": 2, "name": '), (4, "not json at all"), (None, "[1, 2]")]


def test_json_value_that_does_not_cast_to_the_table_rejects_its_row(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt", "on_error": "rows"}, {"table": "ns.j", "columns": {"user_id": "long"}},
             "SELECT u.id AS user_id FROM source")
    ws.put("bkt", "x.jsonl", b'{"u": {"id": 7}}\n{"u": {"id": "u-9"}}\n{"u": {"id": 8}}\n')
    [o] = ws.ingest(("bkt", "x.jsonl")).outcomes
    assert (o.status, o.rows, o.rejected) == ("committed", 2, 1), o.message
    assert sorted(r["user_id"] for r in ws.rows("ns.j")) == [7, 8]
    [r] = _rejects(o.rejects_to)
    assert r["line"] is None and r["kind"] == "table-cast" and r["column"] == "user_id"
    assert "result row 2" in r["reason"] and json.loads(r["text"]) == {"user_id": '"u-9"'}


def test_every_row_rejected_quarantines_the_file(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "on_error": "rows", "columns": {"id": "long"}}, {"table": "ns.c"})
    ws.put("bkt", "x.csv", b"id\nq\nr\n")
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    assert o.status == "quarantined" and "every row was rejected" in o.message


def test_clean_files_write_no_rejects_and_cli_shows_counts(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "on_error": "rows", "columns": {"id": "long"}}, {"table": "ns.c"})
    ws.put("bkt", "ok.csv", b"id\n1\n2\n")
    ws.put("bkt", "x.csv", CSV)
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    print(out, err)
    assert code == 0
    assert "3 rejected ->" in out and "(2 rows, route c)" in out
    assert "4 rows, 3 rejected" in out + err
    code, out, _ = run(ws, "history", "ns.c", "--format", "json")
    attempts = {a["key"]: a for a in json.loads(out)}
    assert attempts["x.csv"]["rejected"] == 3 and attempts["ok.csv"]["rejected"] == 0
    assert not list(ws.paths.quarantine.rglob("*ok.csv*"))


def test_json_values_contradicting_a_hint_are_rejected_with_line_numbers(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt", "on_error": "rows",
                   "columns": {"id": "long", "user": "struct<id: long>"}},
             {"table": "ns.j"}, "SELECT id, user.id AS user_id FROM source")
    body = (b'{"id": 1, "user": {"id": 10}}\n'
            b'garbage\n'                               # line 2: not JSON
            b'{"id": "x", "user": {"id": 11}}\n'       # line 3: id is not a long
            b'{"id": 4}\n'                             # user absent: NULL, fine
            b'{"id": 5, "user": {"id": "u-9"}}\n'      # line 5: user.id is not a long
            b'{"id": null, "user": null}\n')
    ws.put("bkt", "x.jsonl", body)
    [o] = ws.ingest(("bkt", "x.jsonl")).outcomes
    assert (o.status, o.rows, o.rejected) == ("committed", 3, 3), o.message
    assert sorted((r["id"] or 0, r["user_id"]) for r in ws.rows("ns.j")) == [(0, None), (1, 10), (4, None)]
    rejects = _rejects(o.rejects_to)
    assert [(r["line"], r["column"]) for r in rejects] == [(2, None), (3, "id"), (5, "user")]
    assert rejects[1]["reason"] == "id: not a long (source.columns)"
    assert rejects[2]["text"] == '{"id": 5, "user": {"id": "u-9"}}'
