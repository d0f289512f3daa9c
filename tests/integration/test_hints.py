"""Schema hints (source.columns) applied to the reader at ingest, nested types included."""

from __future__ import annotations

import pyarrow as pa
import pytest
from lakeroute.core.routes import Route
from lakeroute.core.routes.column_types import parse_type

from tests.support.workspace import Workspace

EXPERIMENT = "SELECT id, experiment.variant AS variant, tags FROM source"
HINTS = {"id": "long", "experiment": "struct<variant: string>", "tags": "list<string>"}


def test_an_optional_json_field_absent_from_early_files_binds_and_reads_null(ws: Workspace) -> None:
    ws.route("ex", {"bucket": "bkt", "columns": HINTS}, {"table": "ns.ex"}, EXPERIMENT)
    ws.put("bkt", "1.jsonl", b'{"id": 1}\n{"id": 2}\n')  # neither experiment nor tags yet
    report = ws.ingest(("bkt", "1.jsonl"))
    assert not report.failed, [o.message for o in report.failed]
    ws.put("bkt", "2.jsonl", b'{"id": 3, "experiment": {"variant": "B", "other": 1}, "tags": ["x"]}\n')
    report = ws.ingest(("bkt", "2.jsonl"))
    assert not report.failed, [o.message for o in report.failed]
    rows = sorted(ws.rows("ns.ex"), key=lambda r: r["id"])
    assert [(r["id"], r["variant"], r["tags"]) for r in rows] == [(1, None, None), (2, None, None), (3, "B", ["x"])]
    schema = {f.name: str(f.field_type) for f in ws.catalog().load_table("ns.ex").schema().fields}
    assert schema["id"] == "long" and schema["variant"] == "string"


def test_a_hinted_field_beyond_duckdbs_sample_is_read_not_dropped(ws: Workspace) -> None:
    """Without the hint DuckDB types the file from a sample and never reads the field."""
    ws.route("ex", {"bucket": "bkt", "columns": {"late": "string"}}, {"table": "ns.ex"},
             "SELECT id, late FROM source")
    lines = [b'{"id": %d}' % i for i in range(30_000)] + [b'{"id": 30000, "late": "here"}']
    ws.put("bkt", "late.jsonl", b"\n".join(lines) + b"\n")
    report = ws.ingest(("bkt", "late.jsonl"))
    assert not report.failed, [o.message for o in report.failed]
    late = [r for r in ws.rows("ns.ex") if r["late"] is not None]
    assert late == [{"id": 30000, "late": "here"}]


def test_csv_hints_type_present_columns_and_add_absent_ones(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "columns": {"code": "string", "qty": "long", "region": "string"}},
             {"table": "ns.c"}, "SELECT code, qty, region FROM source")
    ws.put("bkt", "1.csv", b"code,qty\n007,3\n010,4\n")  # without the hint, code would be a number
    report = ws.ingest(("bkt", "1.csv"))
    assert not report.failed, [o.message for o in report.failed]
    assert sorted((r["code"], r["qty"], r["region"]) for r in ws.rows("ns.c")) == [("007", 3, None), ("010", 4, None)]


def test_parquet_hints_cast_present_columns_and_null_absent_ones(ws: Workspace) -> None:
    ws.route("p", {"bucket": "bkt", "columns": {"id": "long", "meta": "struct<a: string, b: long>"}},
             {"table": "ns.p"}, "SELECT id, meta.b AS b FROM source")
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1], pa.int32())}))
    ws.put("bkt", "2.parquet", pa.table({"id": pa.array([2], pa.int32()), "meta": [{"b": 5, "c": "x"}]}))
    report = ws.ingest(("bkt", "1.parquet"), ("bkt", "2.parquet"))
    assert not report.failed, [o.message for o in report.failed]
    assert sorted((r["id"], r["b"]) for r in ws.rows("ns.p")) == [(1, None), (2, 5)]


def test_a_value_contradicting_a_hint_quarantines_the_file_by_default(ws: Workspace) -> None:
    ws.route("h", {"bucket": "bkt", "columns": {"id": "long"}}, {"table": "ns.h"})
    ws.put("bkt", "bad.jsonl", b'{"id": 1}\n{"id": "u-9"}\n')
    [o] = ws.ingest(("bkt", "bad.jsonl")).outcomes
    print(o.message)
    assert o.status == "quarantined" and "u-9" in o.message
    assert ws.rows("ns.h") == []


@pytest.mark.parametrize(("text", "canonical", "duck"), [
    ("STRUCT<a:string,b: LONG>", "struct<a: string, b: long>", 'STRUCT("a" VARCHAR, "b" BIGINT)'),
    ("list<struct<x: decimal(12, 2)>>", "list<struct<x: decimal(12,2)>>", 'STRUCT("x" DECIMAL(12, 2))[]'),
    ("map<string, list<long>>", "map<string, list<long>>", "MAP(VARCHAR, BIGINT[])"),
])
def test_nested_type_spellings(text: str, canonical: str, duck: str) -> None:
    t = parse_type(text)
    assert (t.text(), t.duck()) == (canonical, duck)


@pytest.mark.parametrize(("text", "says"), [
    ("struct<a string>", "expected ':'"),
    ("struct<a: strin>", "unknown column type 'strin'"),
    ("map<struct<a: long>, long>", "map key must be a primitive"),
    ("list<long", "expected '>'"),
    ("struct<a: long, a: long>", "twice"),
    ("list<decimal(40,2)>", "precision of 1 to 38"),
])
def test_bad_nested_types_are_route_errors(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="columns") as e:
        Route.model_validate({"name": "r", "source": {"bucket": "bkt", "columns": {"c": text}},
                              "target": {"table": "ns.t"}})
    assert says in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="unknown column type"):  # tables take primitives only (today)
        Route.model_validate({"name": "r", "source": {"bucket": "bkt"},
                              "target": {"table": "ns.t", "columns": {"c": "struct<a: long>"}}})


def test_a_csv_with_none_of_the_hinted_columns_is_quarantined_not_read_as_nulls(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt", "columns": {"id": "long", "qty": "long"}}, {"table": "ns.c"})
    ws.put("bkt", "semi.csv", b"ident,quantity\n1,2\n")  # e.g. a renamed export, or a bad sniff
    [o] = ws.ingest(("bkt", "semi.csv")).outcomes
    assert o.status == "quarantined" and "none of the hinted columns" in o.message and "delim" in o.message
