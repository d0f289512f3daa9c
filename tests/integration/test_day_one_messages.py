"""Day-one messages: each problem once, in lakeroute's words, the route's fix first, never cut
mid-word. Real files through the real local pipeline; the texts are DuckDB 1.4.4's errors as
lakeroute reports them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lakeroute.core.errors import shortened

from tests.integration.test_cli import run
from tests.support.workspace import Workspace, orders

ROWS_FIX = "set source.on_error: rows to set bad rows aside"
DUCKDB_ADVICE = ("strict_mode", "null_padding", "ignore_errors", "Possible fix", "sample_size", "Auto-Detected")


def csv(rows: int, bad: dict[int, str] | None = None) -> bytes:
    lines = ["id,name,amount"] + [f"{i},n{i},{i}" for i in range(rows)]
    for i, text in (bad or {}).items():
        lines[i] = text
    return ("\n".join(lines) + "\n").encode()


def quarantined(ws: Workspace, key: str) -> str:
    [o] = ws.ingest(("bkt", key)).outcomes
    print(f"{key}: {o.status}: {o.message}")
    assert o.status == "quarantined", o.message
    assert not any(a in o.message for a in DUCKDB_ADVICE), o.message
    return o.message


def test_a_short_csv_row_is_one_line_with_its_number_and_lakeroute_s_fix(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt"}, {"table": "ns.c"})
    # past DuckDB's 20,480-row sniffer sample: the reader meets the short line
    ws.put("bkt", "late.csv", csv(25_000, {24_000: "23999,short"}))
    message = quarantined(ws, "late.csv")
    assert "line 24001 has only 2 of 3 columns ('23999,short')" in message and ROWS_FIX in message
    assert message.count("columns") == 1 and "\n" not in message
    # inside the sample: the sniffer gives up; the route's fix, not DuckDB's option list
    ws.put("bkt", "early.csv", csv(5_000, {3_000: "2999,short"}))
    message = quarantined(ws, "early.csv")
    assert message.startswith("route c: bkt/early.csv: could not detect the CSV layout") and ROWS_FIX in message

    # the fix named works: the bad rows are set aside, each once
    ws.route("c", {"bucket": "bkt", "on_error": "rows"}, {"table": "ns.c"})
    ws.put("bkt", "wide.csv", b"a,b,c,d,e,f,g\n1,2,3,4,5,6,7\n1,2,3\n1,2,3,4,5,6,7,8,9\n")
    [o] = ws.ingest(("bkt", "wide.csv")).outcomes
    print(o.message)
    assert (o.status, o.rows, o.rejected) == ("committed", 1, 2)
    rejects = [json.loads(line) for line in Path(o.rejects_to or "").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(3, "only 3 of 7 columns"), (4, "9 values for 7 columns")]


def test_an_empty_file_says_empty_file_and_lands_nothing(ws: Workspace) -> None:
    ws.route("hinted", {"bucket": "bkt", "prefix": "h/", "columns": {"id": "long"}}, {"table": "ns.h"})
    ws.route("plain", {"bucket": "bkt", "prefix": "p/"}, {"table": "ns.p"})
    for key in ("h/0.csv", "p/0.csv", "p/0.json", "p/0.parquet"):
        ws.put("bkt", key, b"")
        message = quarantined(ws, key)
        assert "empty file (0 bytes)" in message and "hinted columns" not in message
    assert not ws.catalog().table_exists("ns.p"), "no table made of an invented column0"


def test_latin1_decimal_comma_csv_names_the_encoding_option(ws: Workspace) -> None:
    ws.route("l", {"bucket": "bkt", "options": {"delim": ";"}}, {"table": "ns.l"})
    ws.put("bkt", "l.csv", "id;amount;name\n1;1.326,05;Müller\n2;3,5;Zoë\n".encode("latin-1"))
    message = quarantined(ws, "l.csv")
    assert "not UTF-8" in message and "source.options.encoding" in message and "latin-1" in message
    ws.route("l", {"bucket": "bkt", "options": {"delim": ";", "encoding": "latin-1"}}, {"table": "ns.l"})
    [o] = ws.ingest(("bkt", "l.csv")).outcomes
    assert o.status == "committed", o.message
    assert [r["name"] for r in ws.rows("ns.l")] == ["Müller", "Zoë"]


@pytest.mark.parametrize(("key", "data", "said"), [
    ("bad.jsonl", b'{"a": 1}\n{"a": 2\n{"a": 3}\n', "line 3 is not valid JSON"),
    ("bad.parquet", b"x" * 100, "not a Parquet file"),
    ("tiny.parquet", b"abc", "not a Parquet file"),
    ("typed.csv", csv(25_000, {24_000: "23999,x,oops"}), "line 24001: column amount: 'oops' is not a BIGINT"),
])
def test_reader_errors_in_lakeroute_s_words(ws: Workspace, key: str, data: bytes, said: str) -> None:
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.r"})
    ws.put("bkt", key, data)
    message = quarantined(ws, key)
    assert said in message


def test_shortened_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    text = "route c: line 24001 has only 2 of 3 columns: set source.on_error: rows to set bad rows aside"
    short = shortened(text, 40)
    assert len(short) <= 40 and short.endswith(" …")
    assert text.startswith(short.removesuffix(" …")) and text[len(short) - 2] == " ", short
    assert shortened("a few words", 40) == "a few words"


def test_quarantine_ls_never_cuts_a_reason_mid_word(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt"}, {"table": "ns.c"})
    ws.put("bkt", "late.csv", csv(25_000, {24_000: "23999,short"}))
    ws.put("bkt", "ok.parquet", orders(1))
    message = quarantined(ws, "late.csv")
    code, out, _ = run(ws, "quarantine", "ls")
    print(out)
    assert code == 0
    [row] = [ln for ln in out.splitlines() if "late.csv" in ln]
    reason = row.split("│")[-2].strip() if "│" in row else row
    assert reason.endswith("…") and message.startswith(reason.removesuffix("…").rstrip()), reason
    words = reason.removesuffix("…").split()
    assert words[-1] in message.split(), f"{words[-1]!r} is not a whole word of the message"
