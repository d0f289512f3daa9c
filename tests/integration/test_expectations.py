"""target.expect: checked before commit; a failing file is quarantined with the failed
expectation and up to 5 example rows, and nothing of it lands."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.support.workspace import Workspace

EXPECT = {"not_null": ["id"], "unique": ["id"], "accepted_values": {"stage": ["open", "won", "lost"]},
          "min_rows": 1}


def _deals(ids: list[int | None], stages: list[str | None]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "stage": pa.array(stages, pa.string())})


def test_a_file_that_meets_its_expectations_commits(ws: Workspace) -> None:
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "expect": EXPECT})
    ws.put("bkt", "ok.parquet", _deals([1, 2, 3], ["open", "won", None]))  # null passes accepted_values
    report = ws.ingest(("bkt", "ok.parquet"))
    assert not report.failed, [o.message for o in report.failed]
    assert len(ws.rows("ns.d")) == 3


@pytest.mark.parametrize(("ids", "stages", "says"), [
    ([1, None, None], ["open"] * 3, "not_null(id) failed (2 rows; e.g. [{\"id\": null, \"stage\": \"open\"}"),
    ([1, 2, 2, 3, 3, 3], ["open"] * 6, "unique(id) failed (2 duplicated keys; e.g. [{\"id\": 2, \"rows\": 2}, "
                                       "{\"id\": 3, \"rows\": 3}]"),
    ([1, 2], ["open", "maybe"], "accepted_values(stage: ['open', 'won', 'lost']) failed (1 rows; e.g. "
                                "[{\"id\": 2, \"stage\": \"maybe\"}]"),
    ([], [], "min_rows(1) failed (the file has 0 rows)"),
])
def test_a_failing_expectation_quarantines_the_file(ws: Workspace, ids: list, stages: list, says: str) -> None:
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "expect": EXPECT})
    ws.put("bkt", "ok.parquet", _deals([10], ["won"]))
    ws.put("bkt", "bad.parquet", _deals(ids, stages))
    outcomes = {o.ref.key: o for o in ws.ingest(("bkt", "ok.parquet"), ("bkt", "bad.parquet")).outcomes}
    bad = outcomes["bad.parquet"]
    print(bad.message)
    assert outcomes["ok.parquet"].status == "committed"
    assert bad.status == "quarantined" and bad.stage == "expect"
    assert says in bad.message, bad.message
    assert [r["id"] for r in ws.rows("ns.d")] == [10], "nothing of the failing file landed"
    record = ws.record("bkt", "bad.parquet")
    assert record["stage"] == "expect" and says in record["message"]


def test_examples_are_capped_at_five_and_every_failure_is_named(ws: Workspace) -> None:
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "expect": EXPECT})
    ws.put("bkt", "bad.parquet", _deals([None] * 20 + [1, 1], ["nope"] * 22))
    [o] = ws.ingest(("bkt", "bad.parquet")).outcomes
    assert "not_null(id) failed (20 rows" in o.message
    assert "unique(id) failed (2 duplicated keys" in o.message, "nulls group as one key, like SQL's GROUP BY"
    assert "accepted_values(stage" in o.message and "(22 rows" in o.message
    not_null = o.message.split("not_null(id) failed", 1)[1].split(";", 1)[1].split("]", 1)[0]
    assert not_null.count("{") == 5


def test_expectations_see_the_rows_after_rescue(ws: Workspace) -> None:
    """A value set aside into _rescued_data is NULL in its column: not_null catches it."""
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "schema": "rescue", "columns": {"id": "long"},
                                      "expect": {"not_null": ["id"]}})
    ws.put("bkt", "x.jsonl", b'{"id": 1}\n{"id": "u-9"}\n')
    [o] = ws.ingest(("bkt", "x.jsonl")).outcomes
    assert o.status == "quarantined" and "not_null(id)" in o.message and "u-9" in o.message


def test_expectations_on_a_column_the_table_lacks_is_a_clear_error(ws: Workspace) -> None:
    ws.route("d", {"bucket": "bkt"}, {"table": "ns.d", "expect": {"not_null": ["missing"]}})
    ws.put("bkt", "x.parquet", _deals([1], ["open"]))
    [o] = ws.ingest(("bkt", "x.parquet")).outcomes
    assert o.status == "quarantined" and "'missing'" in o.message and "target.expect" in o.message
