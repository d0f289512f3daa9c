"""target.schema: evolve | strict | rescue, on real files and the SQLite catalog.

Each test lands files through the real local pipeline and reads the table back: what the
table's schema became, in which snapshot, which rows landed and what was set aside.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tests.support.workspace import Workspace


def _schema(ws: Workspace, table: str) -> dict[str, str]:
    return {f.name: str(f.field_type) for f in ws.catalog().load_table(table).schema().fields}


def test_evolve_adds_columns_and_widens_in_the_commit_of_the_rows(ws: Workspace) -> None:
    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev"})  # no columns: evolve by default
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1, 2], pa.int32()),
                                         "price": pa.array([1.5, 2.5], pa.float32())}))
    assert not ws.ingest(("bkt", "1.parquet")).failed
    assert _schema(ws, "ns.ev") == {"id": "int", "price": "float"}
    first = ws.catalog().load_table("ns.ev").current_snapshot()

    # id no longer fits an int, price is a double, and a new column appears
    ws.put("bkt", "2.parquet", pa.table({"id": pa.array([2**40], pa.int64()), "price": pa.array([0.1], pa.float64()),
                                       "note": ["new"]}))
    report = ws.ingest(("bkt", "2.parquet"))
    assert not report.failed, [o.message for o in report.failed]
    [o] = report.outcomes
    print("outcome:", o.message)
    assert "added column note (string)" in o.message and "widened id int -> long" in o.message
    assert "widened price float -> double" in o.message
    table = ws.catalog().load_table("ns.ev")
    assert _schema(ws, "ns.ev") == {"id": "long", "price": "double", "note": "string"}
    snaps = list(table.snapshots())
    assert len(snaps) == 2, "the schema change rides on the commit of the rows, no extra snapshot"
    assert table.metadata.current_schema_id != first.schema_id
    rows = sorted(ws.rows("ns.ev"), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [1, 2, 2**40], "old files read under the widened type"
    assert rows[2]["note"] == "new" and rows[0]["note"] is None

    # never narrowed: a later int32 file keeps the column long
    ws.put("bkt", "3.parquet", pa.table({"id": pa.array([3], pa.int32())}))
    assert not ws.ingest(("bkt", "3.parquet")).failed
    assert _schema(ws, "ns.ev")["id"] == "long"


def test_evolve_quarantines_a_change_that_cannot_evolve_with_the_reason(ws: Workspace) -> None:
    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev"})
    ws.put("bkt", "1.jsonl", b'{"user_id": 1}\n{"user_id": 2}\n')
    assert not ws.ingest(("bkt", "1.jsonl")).failed
    ws.put("bkt", "2.jsonl", b'{"user_id": 3}\n{"user_id": "u-9"}\n')
    [o] = ws.ingest(("bkt", "2.jsonl")).outcomes
    print("quarantined:", o.message)
    assert o.status == "quarantined" and o.stage == "schema"
    assert "user_id" in o.message and "u-9" in o.message and "rescue" in o.message
    assert sorted(r["user_id"] for r in ws.rows("ns.ev")) == [1, 2], "nothing of it landed"
    assert _schema(ws, "ns.ev") == {"user_id": "long"}


def test_a_quarantined_file_leaves_no_schema_change(ws: Workspace) -> None:
    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev", "expect": {"not_null": ["id"]}})
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1], pa.int32())}))
    assert not ws.ingest(("bkt", "1.parquet")).failed
    # would widen id and add a column, but fails its expectation
    ws.put("bkt", "2.parquet", pa.table({"id": pa.array([None, 2**40], pa.int64()), "extra": ["x", "y"]}))
    [o] = ws.ingest(("bkt", "2.parquet")).outcomes
    assert o.status == "quarantined" and o.stage == "expect"
    assert _schema(ws, "ns.ev") == {"id": "int"}
    assert len(ws.snapshots("ns.ev")) == 1


def test_strict_with_declared_columns_quarantines_new_columns(ws: Workspace) -> None:
    ws.route("st", {"bucket": "bkt"}, {"table": "ns.st", "columns": {"id": "long", "name": "string"}},
             "SELECT * FROM source")
    ws.put("bkt", "ok.jsonl", b'{"id": "1", "name": "a"}\n')  # values that cast exactly are cast
    assert not ws.ingest(("bkt", "ok.jsonl")).failed
    ws.put("bkt", "new.jsonl", b'{"id": 2, "name": "b", "color": "red"}\n')
    [o] = ws.ingest(("bkt", "new.jsonl")).outcomes
    print("strict:", o.message)
    assert o.status == "quarantined" and o.stage == "schema"
    assert "color" in o.message and "schema: strict" in o.message
    assert _schema(ws, "ns.st") == {"id": "long", "name": "string"}
    assert [r["id"] for r in ws.rows("ns.st")] == [1]


def test_strict_without_declared_columns_freezes_the_first_schema(ws: Workspace) -> None:
    ws.route("st", {"bucket": "bkt"}, {"table": "ns.st", "schema": "strict"})
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1], pa.int32())}))
    assert not ws.ingest(("bkt", "1.parquet")).failed
    ws.put("bkt", "wide.parquet", pa.table({"id": pa.array([2**40], pa.int64())}))
    ws.put("bkt", "new.parquet", pa.table({"id": pa.array([5], pa.int32()), "x": [1]}))
    outcomes = {o.ref.key: o for o in ws.ingest(("bkt", "wide.parquet"), ("bkt", "new.parquet")).outcomes}
    assert outcomes["wide.parquet"].status == "quarantined", "a value beyond int is not cast, not widened"
    assert "cannot cast" in outcomes["wide.parquet"].message
    assert outcomes["new.parquet"].status == "quarantined" and "x" in outcomes["new.parquet"].message
    assert _schema(ws, "ns.st") == {"id": "int"}


def test_rescue_keeps_the_row_and_what_did_not_fit(ws: Workspace) -> None:
    ws.route("rs", {"bucket": "bkt"}, {"table": "ns.rs", "schema": "rescue",
                                     "columns": {"id": "long", "user_id": "long"}},
             "SELECT id, u.id AS user_id, color FROM source")
    ws.put("bkt", "1.jsonl", b'{"id": 1, "u": {"id": 7}, "color": null}\n'
                           b'{"id": 2, "u": {"id": "u-9"}, "color": "red"}\n'
                           b'{"id": 3, "u": {"id": 8}, "color": null}\n')
    report = ws.ingest(("bkt", "1.jsonl"))
    assert not report.failed, [o.message for o in report.failed]
    [o] = report.outcomes
    assert o.rescued == 1 and "1 with _rescued_data" in o.message
    rows = sorted(ws.rows("ns.rs"), key=lambda r: r["id"])
    assert [(r["id"], r["user_id"]) for r in rows] == [(1, 7), (2, None), (3, 8)]
    assert rows[0]["_rescued_data"] is None and rows[2]["_rescued_data"] is None
    assert json.loads(rows[1]["_rescued_data"]) == {"user_id": "u-9", "color": "red"}
    props = ws.snapshots("ns.rs")[-1].summary.additional_properties
    assert props["lakeroute.rescued_rows"] == "1"
    assert _schema(ws, "ns.rs") == {"id": "long", "user_id": "long", "_rescued_data": "string"}


def test_rescue_without_declared_columns_adds_only_the_rescue_column(ws: Workspace) -> None:
    ws.route("rs", {"bucket": "bkt"}, {"table": "ns.rs", "schema": "rescue"})
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1], pa.int64())}))
    assert not ws.ingest(("bkt", "1.parquet")).failed
    assert _schema(ws, "ns.rs") == {"id": "long", "_rescued_data": "string"}
    ws.put("bkt", "2.parquet", pa.table({"id": pa.array([2], pa.int64()), "b": [b"\x00\x01"], "n": [None]}))
    [o] = ws.ingest(("bkt", "2.parquet")).outcomes
    assert o.status == "committed" and o.rescued == 1
    assert _schema(ws, "ns.rs") == {"id": "long", "_rescued_data": "string"}, "rescue never adds a column"
    row = [r for r in ws.rows("ns.rs") if r["id"] == 2][0]
    assert json.loads(row["_rescued_data"]) == {"b": "AAE="}, "bytes as base64; nulls are not rescued"


@pytest.mark.parametrize("policy", ["evolve", "strict"])
def test_declared_table_policies_keep_sync_plan_clean(ws: Workspace, policy: str) -> None:
    """Under evolve, what ingest added or widened is not an 'unsafe change' for sync."""
    from lakeroute.core.routes import load_routes
    from lakeroute.core.shape.tables import ensure_declared_tables

    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "schema": policy, "columns": {"id": "int"}})
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([2**40], pa.int64()), "extra": ["e"]}))
    [o] = ws.ingest(("bkt", "1.parquet")).outcomes
    if policy == "strict":
        assert o.status == "quarantined"
        return
    assert o.status == "committed", o.message
    assert _schema(ws, "ns.d") == {"id": "long", "extra": "string"}
    lines = ensure_declared_tables(ws.catalog(), load_routes(ws.paths.routes), plan=True)
    assert lines == ["table ns.d up to date"], lines


def test_preview_applies_the_policy_and_says_what_a_commit_would_change(ws: Workspace) -> None:
    from tests.integration.test_cli import run

    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev"})
    ws.put("bkt", "1.parquet", pa.table({"id": pa.array([1], pa.int32())}))
    assert not ws.ingest(("bkt", "1.parquet")).failed
    wide = ws.put("bkt", "2.parquet", pa.table({"id": pa.array([2**40], pa.int64()), "note": ["n"]}))
    code, out, err = run(ws, "preview", "ev", str(wide))
    print(out, err)
    assert code == 0 and "added column note (string)" in out and "widened id int -> long" in out
    assert "schema evolve" in out and _schema(ws, "ns.ev") == {"id": "int"}, "preview commits nothing"

    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev", "schema": "rescue"})
    code, out, err = run(ws, "preview", "ev", str(wide))
    print(out, err)
    assert code == 0 and "1 row(s) would carry _rescued_data" in out and "added column _rescued_data" in out
