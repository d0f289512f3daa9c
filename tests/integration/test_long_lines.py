"""Lines over the reader's limit: under ``on_error: rows`` a row of its own (right line number,
a readable reason), the rest commits; under ``on_error: file`` one readable message naming the
line and the fix. Real files, real DuckDB (its CSV sniffer fails on such a line with "Line: 1").
"""

from __future__ import annotations

import json
from pathlib import Path

from lakeroute.core.errors import ELLIPSIS

from tests.support.workspace import Workspace

LONG = "x" * (3 * 1024 * 1024)  # over DuckDB's default max_line_size (2,000,000 bytes)


def _rejects(where: str | None) -> list[dict]:
    assert where is not None
    return [json.loads(line) for line in Path(where).read_text().splitlines()]


def test_csv_rows_mode_rejects_a_line_too_long_for_the_sniffer(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "on_error": "rows", "columns": {"id": "long"}}, {"table": "ns.c"})
    body = f"id,name\n1,a\n2,{LONG}\n3,c\nx4,d\n5,e\n"  # line 3: long; line 5: id not a long
    ws.put("bkt", "x.csv", body.encode())
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    print(o.message)
    assert (o.status, o.rows, o.rejected) == ("committed", 3, 2), o.message
    assert sorted(r["id"] for r in ws.rows("ns.c")) == [1, 3, 5]
    long, cast = _rejects(o.rejects_to)
    print({**long, "text": long["text"][:20] + "…"})
    assert long["line"] == 3 and long["reason"] == (
        f"a line of {len(LONG) + 2:,} bytes is longer than options.max_line_size (2,000,000 bytes); the text "
        "is its first 10,000 characters")
    assert long["text"] == "2," + "x" * 9998
    assert (cast["line"], cast["column"], cast["kind"]) == (5, "id", "cast")


def test_csv_rows_mode_a_long_line_past_the_sniff_sample_keeps_its_number(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "on_error": "rows"}, {"table": "ns.c"})
    body = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(30_000)) + f"30000,{LONG}\n30001,z\n"
    ws.put("bkt", "x.csv", body.encode())
    [o] = ws.ingest(("bkt", "x.csv")).outcomes
    assert (o.status, o.rows, o.rejected) == ("committed", 30_001, 1), o.message
    [r] = _rejects(o.rejects_to)
    assert r["line"] == 30_002 and r["reason"].startswith("a line of ")


def test_csv_file_mode_names_the_long_line_and_the_fix_in_one_readable_line(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt"}, {"table": "ns.c"})
    ws.put("bkt", "x.csv", f"id,name\n1,a\n2,{LONG}\n".encode())
    ws.put("bkt", "ok.csv", b"id,name\n7,g\n")
    report = ws.ingest(("bkt", "x.csv"), ("bkt", "ok.csv"))
    by_key = {o.ref.key: o for o in report.outcomes}
    message = by_key["x.csv"].message
    print(message)
    assert by_key["x.csv"].status == "quarantined" and by_key["ok.csv"].status == "committed"
    assert message == (f"route c: line 3 of {len(LONG) + 2:,} bytes is longer than options.max_line_size "
                       "(2,000,000 bytes); raise max_line_size, or set source.on_error: rows to set such "
                       "lines aside")
    assert ELLIPSIS not in message and "xxxx" not in message


def test_json_rows_mode_rejects_a_line_over_maximum_object_size(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt", "on_error": "rows", "options": {"maximum_object_size": 1048576}},
             {"table": "ns.j"}, "SELECT id FROM source")
    body = '{"id": 1}\n{"id": 2, "s": "' + "y" * (2 * 1024 * 1024) + '"}\n{"id": 3}\n'
    ws.put("bkt", "x.jsonl", body.encode())
    [o] = ws.ingest(("bkt", "x.jsonl")).outcomes
    assert (o.status, o.rows, o.rejected) == ("committed", 2, 1), o.message
    assert sorted(r["id"] for r in ws.rows("ns.j")) == [1, 3]
    [r] = _rejects(o.rejects_to)
    print({**r, "text": r["text"][:20] + "…"})
    assert r["line"] == 2 and r["reason"].startswith("longer than options.maximum_object_size")
    assert r["reason"].endswith(f"the text is its first {len(r['text']):,} characters")
