"""Values land as they are or not at all, whatever the source's physical type: checked value by
value (not only type by type), on real files and the SQLite catalog."""

from __future__ import annotations

import decimal
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.workspace import Workspace


def _lines(*rows: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_json_integers_land_in_narrower_declared_types_when_each_value_fits(ws: Workspace) -> None:
    """DuckDB reads JSON integers as BIGINT; decimal(18,0) and int hold these values."""
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "columns": {"id": "decimal(18,0)", "n": "int",
                                                               "cents": "decimal(10,2)"}})
    ws.put("bkt", "ok.json", _lines({"id": 1, "n": 5, "cents": 3},
                                    {"id": 999_999_999_999_999_999, "n": -2_147_483_648, "cents": 12_345_678}))
    ws.put("bkt", "big.json", _lines({"id": 1, "n": 1, "cents": 1},
                                     {"id": 1_000_000_000_000_000_000, "n": 1, "cents": 1}))
    ws.put("bkt", "int.json", _lines({"id": 1, "n": 3_000_000_000, "cents": 1}))
    report = ws.ingest(("bkt", "ok.json"), ("bkt", "big.json"), ("bkt", "int.json"))
    got = {o.ref.key: o for o in report.outcomes}
    print({k: (o.status, o.message) for k, o in got.items()})
    assert got["ok.json"].status == "committed"
    rows = sorted(ws.rows("ns.d"), key=lambda r: r["id"])
    assert [(r["id"], r["n"], r["cents"]) for r in rows] == [
        (decimal.Decimal(1), 5, decimal.Decimal("3.00")),
        (decimal.Decimal(999_999_999_999_999_999), -2_147_483_648, decimal.Decimal("12345678.00"))]
    big, small = got["big.json"], got["int.json"]
    assert big.status == "quarantined" and "column id" in big.message
    assert "decimal128(18, 0): value 1000000000000000000 does not fit" in big.message
    assert small.status == "quarantined" and "column n" in small.message and "3000000000" in small.message


def test_a_float_lands_in_a_decimal_only_when_it_is_that_decimal(ws: Workspace) -> None:
    """0.1 (a double) is 0.10; 0.125 is not a decimal of scale 2 and is never rounded silently."""
    ws.route("f", {"bucket": "bkt"}, {"table": "ns.f", "columns": {"id": "long", "amount": "decimal(10,2)",
                                                               "ratio": "float"}})
    ws.put("bkt", "ok.json", _lines({"id": 1, "amount": 0.1, "ratio": 0.5},
                                    {"id": 2, "amount": 12345678.99, "ratio": 0.1},
                                    {"id": 3, "amount": -7.5, "ratio": 1e30}))
    ws.put("bkt", "round.json", _lines({"id": 4, "amount": 0.125, "ratio": 1.0}))
    ws.put("bkt", "inf.json", _lines({"id": 5, "amount": 1, "ratio": 1e300}))
    report = ws.ingest(("bkt", "ok.json"), ("bkt", "round.json"), ("bkt", "inf.json"))
    got = {o.ref.key: o for o in report.outcomes}
    print({k: (o.status, o.message) for k, o in got.items()})
    assert got["ok.json"].status == "committed"
    rows = sorted(ws.rows("ns.f"), key=lambda r: r["id"])
    assert [str(r["amount"]) for r in rows] == ["0.10", "12345678.99", "-7.50"]
    assert got["round.json"].status == "quarantined"
    assert "column amount" in got["round.json"].message and "0.125" in got["round.json"].message
    assert got["inf.json"].status == "quarantined" and "column ratio" in got["inf.json"].message
    assert "1e+300" in got["inf.json"].message


def _parquet(table: pa.Table, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def test_nanosecond_timestamps_with_a_zone_are_checked_value_by_value(ws: Workspace) -> None:
    """DuckDB reads Parquet TIMESTAMP(NANOS, UTC) and INT96 as microseconds, silently: a file
    whose values are whole microseconds lands; one with a sub-microsecond part is refused,
    naming the column, the value and the fix; a hint on the column truncates deliberately."""
    ws.route("t", {"bucket": "bkt", "prefix": "t/"}, {"table": "ns.t"})
    ws.route("h", {"bucket": "bkt", "prefix": "h/", "columns": {"ts": "timestamptz"}}, {"table": "ns.h"})
    ws.route("s", {"bucket": "bkt", "prefix": "s/"}, {"table": "ns.s"}, "SELECT id FROM source")
    tz = pa.timestamp("ns", tz="UTC")
    whole = pa.table({"id": [1, 2], "ts": pa.array([1_000_000_000, 2_000_001_000], tz)})
    sub = pa.table({"id": [3, 4], "ts": pa.array([3_000_000_000, 4_000_000_001], tz)})
    nested = pa.table({"id": [5], "ts": pa.array([{"at": 5_000_000_007}],
                                                 pa.struct([("at", tz)]))})
    ws.put("bkt", "t/whole.parquet", _parquet(whole))
    ws.put("bkt", "t/sub.parquet", _parquet(sub))
    ws.put("bkt", "t/int96.parquet", _parquet(sub.set_column(1, "ts", sub.column("ts").cast(pa.timestamp("ns"))),
                                              use_deprecated_int96_timestamps=True))
    ws.put("bkt", "t/nested.parquet", _parquet(nested))
    ws.put("bkt", "h/sub.parquet", _parquet(sub))
    ws.put("bkt", "s/sub.parquet", _parquet(sub))  # the SQL never reads ts
    report = ws.ingest(*[("bkt", k) for k in ("t/whole.parquet", "t/sub.parquet", "t/int96.parquet",
                                              "t/nested.parquet", "h/sub.parquet", "s/sub.parquet")])
    got = {o.ref.key: o for o in report.outcomes}
    print({k: (o.status, o.message) for k, o in got.items()})
    assert got["t/whole.parquet"].status == "committed"
    assert [r["ts"].microsecond for r in sorted(ws.rows("ns.t"), key=lambda r: r["id"])] == [0, 1]
    for key in ("t/sub.parquet", "t/int96.parquet", "t/nested.parquet"):
        o = got[key]
        assert o.status == "quarantined" and o.stage == "schema", key
        assert "column ts" in o.message and "sub-microsecond" in o.message, key
        assert "source.columns: {ts: timestamptz}" in o.message, key
    assert "04.000000001" in got["t/sub.parquet"].message
    assert got["h/sub.parquet"].status == "committed", "hinted: truncated deliberately"
    assert sorted(r["ts"].second for r in ws.rows("ns.h")) == [3, 4]
    assert got["s/sub.parquet"].status == "committed", "a column the SQL does not read is not checked"


def test_naive_nanoseconds_name_the_value_and_the_deliberate_cast(ws: Workspace) -> None:
    ws.route("t", {"bucket": "bkt", "prefix": "t/"}, {"table": "ns.t"})
    ws.route("c", {"bucket": "bkt", "prefix": "c/"}, {"table": "ns.c"},
             "SELECT id, CAST(ts AS TIMESTAMP) AS ts FROM source")
    sub = pa.table({"id": [1], "ts": pa.array([1_000_000_001], pa.timestamp("ns"))})
    ws.put("bkt", "t/sub.parquet", _parquet(sub))
    ws.put("bkt", "c/sub.parquet", _parquet(sub))
    got = {o.ref.key: o for o in ws.ingest(("bkt", "t/sub.parquet"), ("bkt", "c/sub.parquet")).outcomes}
    print({k: (o.status, o.message) for k, o in got.items()})
    assert got["t/sub.parquet"].status == "quarantined"
    assert "1970-01-01T00:00:01.000000001" in got["t/sub.parquet"].message
    assert "CAST(col AS TIMESTAMP)" in got["t/sub.parquet"].message
    assert got["c/sub.parquet"].status == "committed"


# Strings whose 16-character prefix ends where PyIceberg's upper bound (prefix, last character
# incremented) would be a surrogate, and neighbours that must keep working.
EDGE_TEXT = {
    "d7ff": "a" * 15 + "\ud7ff" + "tail",
    "d7ff-then-max": "c" * 14 + "\ud7ff\U0010ffff" + "x",  # U+10FFFF cannot be incremented: U+D7FF is
    "ffff": "d" * 15 + "\uffff" + "x",
    "emoji": "e" * 15 + "\U0001f600" + "x",
    "d7ff-40": "\ud7ff" * 40,
    "d7ff-200": "\ud7ff" * 200,  # no valid bound within 64 more characters: no bound at all
}


@pytest.mark.slow
def test_string_bounds_never_break_on_valid_text_and_pruning_still_finds_the_rows(ws: Workspace) -> None:
    from lakeroute.core.maintain.maintenance import maintain_table
    from lakeroute.core.routes import Maintenance
    from lakeroute.local.files import local_lister
    from lakeroute.local.ledger import SqliteLedger
    from lakeroute.local.warehouse import open_warehouse
    from pyiceberg.conversions import from_bytes
    from pyiceberg.expressions import EqualTo
    from pyiceberg.types import StringType

    ws.route("s", {"bucket": "bkt"}, {"table": "ns.s", "mode": "upsert", "key": ["k"]})
    for name, text in EDGE_TEXT.items():  # one batch each: each value is the max of its own file
        ws.put("bkt", f"{name}.parquet", pa.table({"k": [text], "v": [1]}))
        report = ws.ingest(("bkt", f"{name}.parquet"))
        assert report.count("committed") == 1, (name, [o.message for o in report.outcomes])
    table = ws.catalog().load_table("ns.s")
    fid = table.schema().find_field("k").field_id
    snapshot = table.current_snapshot()
    assert snapshot is not None
    files = [e.data_file for m in snapshot.manifests(table.io) for e in m.fetch_manifest_entry(table.io)]
    assert len(files) == len(EDGE_TEXT)
    unbounded = 0
    for f in files:
        [value] = pq.read_table(f.file_path.removeprefix("file://"), columns=["k"]).column(0).to_pylist()
        if fid not in (f.upper_bounds or {}):
            unbounded += 1
            continue
        lower, upper = (from_bytes(StringType(), b[fid]) for b in (f.lower_bounds, f.upper_bounds))
        assert lower <= value <= upper, f"bounds {lower!r}..{upper!r} do not hold {value!r}"
    assert unbounded == 1, "only the 200 x U+D7FF file has no bound"

    def found() -> dict[str, int]:
        t = ws.catalog().load_table("ns.s")
        con = open_warehouse(ws.paths.home)
        out = {}
        for name, text in EDGE_TEXT.items():  # pruned by the bounds: a wrong bound loses the row
            rows = t.scan(row_filter=EqualTo("k", text)).to_arrow().to_pylist()
            duck = con.execute("SELECT v FROM ns.s WHERE k = ?", [text]).fetchall()
            assert [r["v"] for r in rows] == [v for (v,) in duck], name
            out[name] = rows[0]["v"] if len(rows) == 1 else -len(rows)
        return out

    assert found() == dict.fromkeys(EDGE_TEXT, 1)
    # compaction rewrites the six files into one, with valid bounds (its max: 200 x U+D7FF)
    report = maintain_table(ws.catalog(), "ns.s", Maintenance(), SqliteLedger(str(ws.paths.home / "ledger.db")),
                            local_lister, apply=True)
    print("\n".join(report.lines()))
    assert report.compaction is not None and report.compaction.files_after == 1
    assert found() == dict.fromkeys(EDGE_TEXT, 1)
    # the upsert finds each key's file by the same bounds and replaces its row
    ws.put("bkt", "update.parquet", pa.table({"k": list(EDGE_TEXT.values()), "v": [2] * len(EDGE_TEXT)}))
    assert ws.ingest(("bkt", "update.parquet")).count("committed") == 1
    assert found() == dict.fromkeys(EDGE_TEXT, 2) and len(ws.rows("ns.s")) == len(EDGE_TEXT)


MIXED = _lines({"id": 1, "x": "hello", "n": 1, "s": {"a": "q"}},
               {"id": 2, "x": 5, "n": "42", "s": {"a": 1}},
               {"id": 3, "x": True, "n": 3, "s": {"a": "r"}},
               {"id": 4, "x": None, "n": None, "s": {"a": None}},
               {"id": 5, "x": {"a": [1, "b"]}, "n": 5, "s": {"a": "t"}},
               {"id": 6, "x": 'say "hi"\n\u00e9', "n": 6, "s": {"a": 1.5}})


@pytest.mark.parametrize("policy", ["evolve", "strict", "rescue"])
def test_json_values_land_as_their_text_in_every_policy(ws: Workspace, policy: str) -> None:
    """Fields whose lines disagree (DuckDB type JSON) land as the text they hold, not as JSON:
    hello, not "hello"; numbers and booleans as their JSON text; a JSON string "42" casts to a
    long like any string; nested in a struct too."""
    target: dict = {"table": "ns.j", "schema": policy}
    if policy != "evolve":
        target["columns"] = {"id": "long", "x": "string", "n": "long"}
    sql = "SELECT id, x, n FROM source" if policy != "evolve" else "SELECT * FROM source"
    ws.route("j", {"bucket": "bkt"}, target, sql)
    ws.put("bkt", "1.jsonl", MIXED)
    report = ws.ingest(("bkt", "1.jsonl"))
    assert report.count("committed") == 1, [o.message for o in report.outcomes]
    rows = sorted(ws.rows("ns.j"), key=lambda r: r["id"])
    print(policy, rows)
    assert [r["x"] for r in rows] == ["hello", "5", "true", None, '{"a":[1,"b"]}', 'say "hi"\n\u00e9']
    if policy == "evolve":  # a new table: n is a string column (its lines disagree), text too
        assert [r["n"] for r in rows] == ["1", "42", "3", None, "5", "6"]
        assert [r["s"]["a"] for r in rows] == ["q", "1", "r", None, "t", "1.5"]
    else:
        assert [r["n"] for r in rows] == [1, 42, 3, None, 5, 6]
    if policy == "rescue":
        assert all(r["_rescued_data"] is None for r in rows), "nothing needed rescue"


def test_a_json_upsert_key_is_one_key_whatever_the_line_types(ws: Workspace) -> None:
    ws.route("u", {"bucket": "bkt"}, {"table": "ns.u", "mode": "upsert", "key": ["k"]})
    ws.put("bkt", "1.jsonl", _lines({"k": "a1", "v": 1}, {"k": 7, "v": 1}))  # k: JSON
    ws.put("bkt", "2.jsonl", _lines({"k": "a1", "v": 2}, {"k": "7", "v": 2}))  # k: VARCHAR
    for key in ("1.jsonl", "2.jsonl"):
        assert ws.ingest(("bkt", key)).count("committed") == 1
    assert sorted((r["k"], r["v"]) for r in ws.rows("ns.u")) == [("7", 2), ("a1", 2)]


def test_rescue_keeps_a_json_value_as_the_file_had_it(ws: Workspace) -> None:
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.r", "schema": "rescue",
                                     "columns": {"id": "long", "n": "long"}}, "SELECT id, n, s FROM source")
    ws.put("bkt", "1.jsonl", _lines({"id": 1, "n": 1, "s": {"a": 1}}, {"id": 2, "n": "x-2", "s": {"a": "b"}}))
    assert ws.ingest(("bkt", "1.jsonl")).count("committed") == 1
    rows = sorted(ws.rows("ns.r"), key=lambda r: r["id"])
    assert [r["n"] for r in rows] == [1, None]
    assert [json.loads(r["_rescued_data"]) for r in rows] == [{"s": {"a": 1}}, {"n": "x-2", "s": {"a": "b"}}]


def test_nanoseconds_in_an_object_read_in_place_from_s3_are_refused_unless_hinted(ws: Workspace) -> None:
    """Read in place (httpfs), the file cannot be opened by pyarrow: its footer (DuckDB's
    parquet_schema over the same lineage variable the reader uses) decides."""
    import duckdb
    from lakeroute.core.errors import ObjectError
    from lakeroute.core.read.nanos import check_nanoseconds
    from lakeroute.core.routes import load_routes

    tz = pa.timestamp("ns", tz="UTC")
    path = ws.put("bkt", "x.parquet", _parquet(pa.table({"id": [1], "ts": pa.array([1_000], tz),
                                                         "us": pa.array([1], pa.timestamp("us", tz="UTC"))})))
    ws.route("a", {"bucket": "bkt", "prefix": "a/"}, {"table": "ns.a"})
    ws.route("b", {"bucket": "bkt", "prefix": "b/", "columns": {"ts": "timestamptz"}}, {"table": "ns.b"})
    ws.route("c", {"bucket": "bkt", "prefix": "c/"}, {"table": "ns.c"}, "SELECT id, us FROM source")
    routes = {r.name: r for r in load_routes(ws.paths.routes)}
    con = duckdb.connect()
    con.execute("SET VARIABLE source_uri = ?", [str(path)])  # what the S3 reader reads
    with pytest.raises(ObjectError, match=r"column ts: nanosecond timestamps in an object read in place"):
        check_nanoseconds(con, routes["a"], "s3://bkt/a/x.parquet")
    check_nanoseconds(con, routes["b"], "s3://bkt/b/x.parquet")  # hinted: wanted
    check_nanoseconds(con, routes["c"], "s3://bkt/c/x.parquet")  # microseconds and unread ns only


@pytest.mark.parametrize("policy", ["rescue", "rows"])
def test_a_sub_microsecond_value_is_rescued_or_rejected_as_it_is(ws: Workspace, policy: str) -> None:
    """Set aside, it keeps its nanoseconds (as ISO text); the rest of the file lands."""
    source: dict = {"bucket": "bkt", **({"on_error": "rows"} if policy == "rows" else {})}
    ws.route("r", source, {"table": "ns.t", "schema": "rescue" if policy == "rescue" else "strict",
                           "columns": {"id": "long", "ts": "timestamp"}}, "SELECT id, ts FROM source")
    ws.put("bkt", "1.parquet", _parquet(pa.table({"id": [1, 2], "ts": pa.array([1_000_000_001, 2_000_000_000],
                                                                              pa.timestamp("ns"))})))
    [o] = ws.ingest(("bkt", "1.parquet")).outcomes
    print(o.status, o.message)
    assert o.status == "committed"
    rows = sorted(ws.rows("ns.t"), key=lambda r: r["id"])
    kept = "1970-01-01T00:00:01.000000001"
    if policy == "rescue":
        assert [r["ts"] for r in rows][0] is None and json.loads(rows[0]["_rescued_data"]) == {"ts": kept}
        assert rows[1]["ts"].second == 2
    else:
        assert [r["id"] for r in rows] == [2] and o.rejected == 1
        [entry] = [p for p in ws.paths.quarantine.rglob("rejects.ns.t.jsonl")]
        [record] = [json.loads(line) for line in entry.read_text().splitlines()]
        assert json.loads(record["text"]) == {"id": 1, "ts": kept}
