"""Write modes on real files and the SQLite catalog: upsert (ordering, CDC deletes), replace,
overwrite (partitions, table); exactly once on redelivery; PyIceberg and DuckDB agree."""

from __future__ import annotations

import random
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from lakeroute.local.warehouse import open_warehouse

from tests.support.workspace import Workspace


def parquet(ws: Workspace, key: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> str:
    ws.put("land", key, pa.Table.from_pylist(rows, schema=schema))
    return key


def table_rows(ws: Workspace, table: str, *, by: str = "id") -> list[dict[str, Any]]:
    """The rows as PyIceberg reads them, checked against DuckDB's iceberg_scan."""
    def order(r: dict[str, Any]) -> tuple[Any, str]:  # total: rows may share ``by`` (mode replace)
        return r[by], repr(sorted(r.items()))

    ours = sorted(ws.rows(table), key=order)
    con = open_warehouse(ws.paths.home)
    theirs = sorted(con.execute(f"SELECT * FROM {table}").fetch_arrow_table().to_pylist(), key=order)  # noqa: S608 (test tables)
    assert theirs == ours, "DuckDB iceberg_scan disagrees with PyIceberg"
    return ours


def summary(ws: Workspace, table: str) -> dict[str, str]:
    snap = ws.catalog().load_table(table).current_snapshot()
    assert snap is not None
    return dict(snap.summary.additional_properties) | {"operation": str(snap.summary.operation)}


UPSERT = {"table": "crm.deals", "mode": "upsert", "key": ["id"]}


def test_upsert_updates_inserts_and_last_duplicate_wins(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    parquet(ws, "deals/1.parquet", [{"id": i, "v": "one"} for i in range(10)])
    assert ws.ingest(("land", "deals/1.parquet")).count("committed") == 1
    # 5..14: 5..9 update, 10..14 new; id 7 twice in the file: the later row wins
    rows = [{"id": i, "v": "two"} for i in range(5, 15)] + [{"id": 7, "v": "last"}]
    parquet(ws, "deals/2.parquet", rows)
    report = ws.ingest(("land", "deals/2.parquet"))
    assert report.count("committed") == 1, report.outcomes
    got = {r["id"]: r["v"] for r in table_rows(ws, "crm.deals")}
    want = {i: "one" for i in range(5)} | {i: "two" for i in range(5, 15)} | {7: "last"}
    assert got == want
    assert len(ws.rows("crm.deals")) == 15
    s = summary(ws, "crm.deals")
    assert s["operation"] == "Operation.OVERWRITE" and s["lakeroute.upsert-replaced-rows"] == "5"
    # redelivery of both changes nothing
    again = ws.ingest(("land", "deals/1.parquet"), ("land", "deals/2.parquet"))
    assert again.count("skipped") == 2 and {r["id"]: r["v"] for r in ws.rows("crm.deals")} == want


def test_upsert_order_by_any_arrival_order_equals_duckdb_truth(ws: Workspace) -> None:
    target = {**UPSERT, "order_by": "version"}
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, target)
    rnd = random.Random(7)
    keys = []
    all_rows = []
    for f in range(8):
        rows = [{"id": rnd.randrange(40), "version": f * 100 + rnd.randrange(100), "v": f"f{f}"}
                for _ in range(30)]
        all_rows += rows
        keys.append(parquet(ws, f"deals/{f}.parquet", rows))
    rnd.shuffle(keys)  # newest files may come first: older rows must never win
    for i in range(0, len(keys), 3):  # several batches, several files per batch
        report = ws.ingest(*[("land", k) for k in keys[i:i + 3]])
        assert report.count("committed") == len(keys[i:i + 3]), report.outcomes
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist(all_rows))
    truth = con.execute("SELECT id, max(version) AS version FROM t GROUP BY id ORDER BY id").fetchall()
    got = [(r["id"], r["version"]) for r in table_rows(ws, "crm.deals")]
    assert got == truth


def test_cdc_deletes_and_operation_column_not_written(ws: Workspace) -> None:
    target = {**UPSERT, "order_by": "ts", "operation": {"column": "op", "delete": ["D"]}}
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, target)
    parquet(ws, "cdc/1.parquet", [{"id": i, "ts": 1, "op": "I", "v": i} for i in range(6)])
    parquet(ws, "cdc/2.parquet", [{"id": 1, "ts": 2, "op": "D", "v": None},
                                  {"id": 2, "ts": 2, "op": "U", "v": 20},
                                  {"id": 3, "ts": 0, "op": "D", "v": None},  # older than the row: no effect
                                  {"id": 9, "ts": 2, "op": "D", "v": None}])  # unknown key: nothing
    assert ws.ingest(("land", "cdc/1.parquet"), ("land", "cdc/2.parquet")).count("committed") == 2
    rows = table_rows(ws, "crm.deals")
    assert {r["id"]: r["v"] for r in rows} == {0: 0, 2: 20, 3: 3, 4: 4, 5: 5}
    assert "op" not in rows[0]


def test_upsert_null_key_quarantines_the_object(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    parquet(ws, "deals/bad.parquet", [{"id": 1, "v": "a"}, {"id": None, "v": "b"}],
            pa.schema([("id", pa.int64()), ("v", pa.string())]))
    report = ws.ingest(("land", "deals/bad.parquet"))
    [o] = report.outcomes
    assert o.status == "quarantined" and "key column 'id' is null in 1 rows" in o.message
    assert ws.rows("crm.deals") == []


def test_upsert_bucket_partitioned_reads_only_the_touched_partitions(ws: Workspace) -> None:
    target = {**UPSERT, "partition_by": ["bucket(16, id)"]}
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, target)
    parquet(ws, "deals/base.parquet", [{"id": i, "v": 0} for i in range(2000)])
    ws.ingest(("land", "deals/base.parquet"))
    files = len(ws.catalog().load_table("crm.deals").inspect.files())
    assert files == 16
    parquet(ws, "deals/upd.parquet", [{"id": 5, "v": 1}, {"id": 6, "v": 1}])
    assert ws.ingest(("land", "deals/upd.parquet")).count("committed") == 1
    s = summary(ws, "crm.deals")
    assert int(s["lakeroute.upsert-files-read"]) <= 2, s
    rows = table_rows(ws, "crm.deals")
    assert len(rows) == 2000 and [r["v"] for r in rows if r["id"] in (5, 6)] == [1, 1]
    assert sum(r["v"] for r in rows) == 2


def test_upsert_prunes_by_key_bounds(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    keys = [parquet(ws, f"deals/{i}.parquet", [{"id": i * 100 + j, "v": 0} for j in range(100)])
            for i in range(10)]
    ws.ingest(*[("land", k) for k in keys])
    parquet(ws, "deals/upd.parquet", [{"id": 250, "v": 1}, {"id": 5000, "v": 1}])
    ws.ingest(("land", "deals/upd.parquet"))
    s = summary(ws, "crm.deals")
    assert s["lakeroute.upsert-files-read"] == "1", s
    rows = table_rows(ws, "crm.deals")
    assert len(rows) == 1001 and sum(r["v"] for r in rows) == 2


@pytest.mark.slow
def test_replace_swaps_exactly_the_previous_version_of_the_key(ws: Workspace) -> None:
    ws.route("exp", {"bucket": "land", "prefix": "exp/"}, {"table": "erp.items", "mode": "replace"})
    keys = [parquet(ws, f"exp/{i}.parquet", [{"id": i * 10 + j, "v": "v1"} for j in range(10)])
            for i in range(20)]
    ws.ingest(*[("land", k) for k in keys])
    # a corrected re-export of object 3: 4 rows instead of 10
    parquet(ws, "exp/3.parquet", [{"id": 30 + j, "v": "v2"} for j in range(4)])
    report = ws.ingest(("land", "exp/3.parquet"))
    assert report.count("committed") == 1, report.outcomes
    rows = table_rows(ws, "erp.items")
    assert len(rows) == 194
    assert sorted(r["id"] for r in rows if r["v"] == "v2") == [30, 31, 32, 33]
    assert {r["_lakeroute_object"] for r in rows if r["v"] == "v2"} == {"land/exp/3.parquet"}
    s = summary(ws, "erp.items")
    assert s["lakeroute.replaced-rows"] == "10" and s["deleted-data-files"] == "1", s
    # the same version again: nothing
    assert ws.ingest(("land", "exp/3.parquet")).count("skipped") == 1
    assert len(table_rows(ws, "erp.items")) == 194
    parquet(ws, "exp/4.parquet", [{"id": 40, "v": "v2"}])
    assert ws.ingest(("land", "exp/4.parquet")).count("committed") == 1
    assert len(table_rows(ws, "erp.items")) == 194 - 10 + 1


def test_replace_after_rows_of_several_objects_share_a_file(ws: Workspace) -> None:
    """After compaction a file holds several objects: replace rewrites it without the old rows."""
    ws.route("exp", {"bucket": "land", "prefix": "exp/"}, {"table": "erp.items", "mode": "replace"})
    keys = [parquet(ws, f"exp/{i}.parquet", [{"id": i * 10 + j, "v": "v1"} for j in range(10)])
            for i in range(3)]
    ws.ingest(*[("land", k) for k in keys])
    table = ws.catalog().load_table("erp.items")
    everything = table.scan().to_arrow()
    table.overwrite(everything)  # one file with all three objects, as a compaction leaves it
    assert len(ws.catalog().load_table("erp.items").inspect.files()) == 1
    parquet(ws, "exp/1.parquet", [{"id": 99, "v": "v2"}])
    assert ws.ingest(("land", "exp/1.parquet")).count("committed") == 1
    rows = table_rows(ws, "erp.items")
    assert sorted(r["id"] for r in rows) == [*range(10), *range(20, 30), 99]


DAILY = {"table": "fin.daily", "mode": "overwrite", "overwrite": "partitions", "partition_by": ["day"]}


def test_overwrite_partitions_replaces_only_the_days_in_the_file(ws: Workspace) -> None:
    import datetime as dt

    ws.route("daily", {"bucket": "land", "prefix": "daily/"}, DAILY)
    d = [dt.date(2026, 1, i) for i in range(1, 5)]
    parquet(ws, "daily/all.parquet", [{"day": day, "id": i, "v": "old"} for day in d for i in range(3)])
    ws.ingest(("land", "daily/all.parquet"))
    # the extract for day 2 again, corrected: 2 rows
    parquet(ws, "daily/d2.parquet", [{"day": d[1], "id": i, "v": "new"} for i in range(2)])
    # and in the same batch two extracts of day 3: the later one wins
    parquet(ws, "daily/d3a.parquet", [{"day": d[2], "id": 0, "v": "a"}])
    parquet(ws, "daily/d3b.parquet", [{"day": d[2], "id": 0, "v": "b"}, {"day": d[2], "id": 1, "v": "b"}])
    report = ws.ingest(("land", "daily/d2.parquet"), ("land", "daily/d3a.parquet"), ("land", "daily/d3b.parquet"))
    assert report.count("committed") == 3
    rows = sorted(ws.rows("fin.daily"), key=lambda r: (r["day"], r["id"]))
    by_day: dict[Any, list[str]] = {}
    for r in rows:
        by_day.setdefault(r["day"], []).append(r["v"])
    assert by_day == {d[0]: ["old"] * 3, d[1]: ["new"] * 2, d[2]: ["b", "b"], d[3]: ["old"] * 3}
    con = open_warehouse(ws.paths.home)
    assert con.execute("SELECT count(*) FROM fin.daily").fetchone() == (10,)
    assert len(ws.catalog().load_table("fin.daily").snapshots()) == 2, "one snapshot per batch"
    # redelivery: nothing changes
    assert ws.ingest(("land", "daily/d2.parquet")).count("skipped") == 1
    assert len(ws.rows("fin.daily")) == 10


def test_overwrite_table_keeps_only_the_latest_full_extract(ws: Workspace) -> None:
    ws.route("snap", {"bucket": "land", "prefix": "snap/"},
             {"table": "fin.snap", "mode": "overwrite", "overwrite": "table"})
    parquet(ws, "snap/1.parquet", [{"id": i, "v": 1} for i in range(5)])
    parquet(ws, "snap/2.parquet", [{"id": i, "v": 2} for i in range(3)])
    ws.ingest(("land", "snap/1.parquet"))
    assert len(table_rows(ws, "fin.snap")) == 5
    parquet(ws, "snap/3.parquet", [{"id": i, "v": 3} for i in range(2)])
    ws.ingest(("land", "snap/2.parquet"), ("land", "snap/3.parquet"))
    assert [(r["id"], r["v"]) for r in table_rows(ws, "fin.snap")] == [(0, 3), (1, 3)]


def test_upsert_into_a_declared_table_with_a_new_column_later(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"},
             {**UPSERT, "order_by": "ts", "columns": {"id": "long", "ts": "long", "v": "string"}})
    parquet(ws, "deals/1.parquet", [{"id": 1, "ts": 5, "v": "a"}, {"id": 2, "ts": 5, "v": "a"}])
    parquet(ws, "deals/2.parquet", [{"id": 1, "ts": 4, "v": "stale"}, {"id": 2, "ts": 6, "v": "b"}])
    ws.ingest(("land", "deals/1.parquet"))
    ws.ingest(("land", "deals/2.parquet"))
    assert {r["id"]: r["v"] for r in table_rows(ws, "crm.deals")} == {1: "a", 2: "b"}
    assert summary(ws, "crm.deals")["lakeroute.upsert-stale-rows"] == "1"


@pytest.mark.parametrize("mode", ["upsert", "replace", "overwrite"])
def test_routes_of_one_table_must_agree_on_the_mode(ws: Workspace, mode: str) -> None:
    from lakeroute.core.errors import ConfigError
    from lakeroute.core.routes import load_routes

    other: dict[str, Any] = {"table": "crm.deals", "mode": mode}
    if mode == "upsert":
        other["key"] = ["id"]
    if mode == "overwrite":
        other["overwrite"] = "table"
    ws.route("a", {"bucket": "land", "prefix": "a/"}, {"table": "crm.deals"})
    ws.route("b", {"bucket": "land", "prefix": "b/"}, other)
    with pytest.raises(ConfigError, match="mode"):
        load_routes(ws.paths.routes)


def test_a_commit_that_lands_between_plan_and_commit_makes_the_merge_run_again(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent upsert of the same keys lands after our plan: ours is rejected, planned
    again on the fresh table, and the newer row wins either way."""
    from lakeroute.core.write import commit as commit_mod

    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, {**UPSERT, "order_by": "ts"})
    parquet(ws, "deals/base.parquet", [{"id": i, "ts": 0, "v": "base"} for i in range(4)])
    ws.ingest(("land", "deals/base.parquet"))
    parquet(ws, "deals/ours.parquet", [{"id": 1, "ts": 5, "v": "ours"}, {"id": 2, "ts": 5, "v": "ours"}])
    parquet(ws, "deals/theirs.parquet", [{"id": 2, "ts": 9, "v": "theirs"}, {"id": 3, "ts": 9, "v": "theirs"}])
    plan = commit_mod.plan_changes
    calls = []

    def plan_then_someone_commits(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        plan(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(commit_mod, "plan_changes", plan)
            assert ws.ingest(("land", "deals/theirs.parquet")).count("committed") == 1
            monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)

    monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)
    report = ws.ingest(("land", "deals/ours.parquet"))
    assert report.count("committed") == 1 and report.commits[0]["attempts"] == 2, report.commits
    got = {r["id"]: r["v"] for r in table_rows(ws, "crm.deals")}
    assert got == {0: "base", 1: "ours", 2: "theirs", 3: "theirs"}
    table = ws.catalog().load_table("crm.deals")
    referenced = {t.file.file_path.removeprefix("file://") for snap in table.snapshots()
                  for t in table.scan(snapshot_id=snap.snapshot_id).plan_files()}
    written = {str(p) for p in ws.paths.home.rglob("*.parquet")}
    assert written == referenced, "the rejected attempt's files were deleted, the others kept"


VALIDATE_CASES = [
    ({"mode": "upsert", "key": ["deal"]}, "SELECT id, amount FROM source",
     "target.key: key column 'deal' is not in the result of the SQL"),
    ({"mode": "upsert", "key": ["amount"]}, "SELECT id, amount FROM source",
     "target.key: key column 'amount' is double: a key must be"),
    ({"mode": "upsert", "key": ["id"], "order_by": "ts"}, "SELECT id, amount FROM source",
     "target.order_by: order_by column 'ts' is not in the result"),
    ({"mode": "upsert", "key": ["id"], "order_by": "flag"}, "SELECT id, amount, true AS flag FROM source",
     "target.order_by: order_by column 'flag' is bool"),
    ({"mode": "upsert", "key": ["id"], "operation": {"column": "op", "delete": ["D"]}},
     "SELECT id, amount FROM source", "target.operation: operation column 'op' is not in the result"),
    ({"mode": "replace"}, "SELECT id, amount, 'x' AS _lakeroute_object FROM source",
     "sql: _lakeroute_object is set by lakeroute in mode replace"),
]


@pytest.mark.parametrize(("target", "sql", "said"), VALIDATE_CASES, ids=[c[2][:40] for c in VALIDATE_CASES])
def test_validate_checks_the_mode_columns_against_the_result(ws: Workspace, target: dict, sql: str,
                                                             said: str) -> None:
    from tests.integration.test_cli import run

    ws.route("m", {"bucket": "land", "prefix": "m/", "columns": {"id": "long", "amount": "double"}},
             {"table": "crm.m", **target}, sql)
    code, out, err = run(ws, "validate")
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and said in errors[0], out + err


def test_validate_accepts_a_cdc_route_with_declared_columns(ws: Workspace) -> None:
    from tests.integration.test_cli import run

    ws.route("cdc", {"bucket": "land", "prefix": "c/", "columns": {"id": "long", "ts": "long", "op": "string"}},
             {"table": "crm.c", "mode": "upsert", "key": ["id"], "order_by": "ts",
              "operation": {"column": "op", "delete": ["D"]}, "columns": {"id": "long", "ts": "long"}},
             "SELECT id, ts, op FROM source")
    code, out, err = run(ws, "validate")
    assert code == 0, out + err


CDC = {**UPSERT, "order_by": "ts", "operation": {"column": "op", "delete": ["D"]}}


def test_an_operation_column_the_table_has_is_written_and_still_deletes(ws: Workspace) -> None:
    """A table that kept ``op`` (an earlier append route wrote it): CDC files delete by it and
    write it like any column; preview and validate agree with ingest."""
    from tests.integration.test_cli import run

    ws.route("cdc", {"bucket": "land", "prefix": "c/"}, {"table": "crm.deals"}, "SELECT id, ts, op, v FROM source")
    parquet(ws, "c/0.parquet", [{"id": i, "ts": 1, "op": "I", "v": i} for i in range(4)])
    assert ws.ingest(("land", "c/0.parquet")).count("committed") == 1
    ws.route("cdc", {"bucket": "land", "prefix": "c/"}, CDC, "SELECT id, ts, op, v FROM source")
    path = ws.put("land", "c/1.parquet", pa.Table.from_pylist(
        [{"id": 1, "ts": 2, "op": "D", "v": None}, {"id": 2, "ts": 2, "op": "U", "v": 20},
         {"id": 7, "ts": 2, "op": "I", "v": 7}], schema=pa.schema([("id", pa.int64()), ("ts", pa.int64()),
                                                                  ("op", pa.string()), ("v", pa.int64())])))
    code, out, err = run(ws, "preview", "cdc", str(path))
    print(out, err)
    assert code == 0 and "KeyError" not in out + err and "3 row(s)" in out, out + err
    code, out, err = run(ws, "validate")
    assert code == 0, out + err
    report = ws.ingest(("land", "c/1.parquet"))
    assert report.count("committed") == 1, [o.message for o in report.outcomes]
    rows = {r["id"]: (r["op"], r["v"]) for r in table_rows(ws, "crm.deals")}
    assert rows == {0: ("I", 0), 2: ("U", 20), 3: ("I", 3), 7: ("I", 7)}, "D deleted id 1; op written"


def test_a_declared_operation_column_is_written(ws: Workspace) -> None:
    from tests.integration.test_cli import run

    columns = {"id": "long", "ts": "long", "op": "string", "v": "long"}
    ws.route("cdc", {"bucket": "land", "prefix": "c/"}, {**CDC, "columns": columns}, "SELECT id, ts, op, v FROM source")
    parquet(ws, "c/0.parquet", [{"id": 1, "ts": 1, "op": "I", "v": 1}, {"id": 2, "ts": 1, "op": "I", "v": 2}])
    parquet(ws, "c/1.parquet", [{"id": 1, "ts": 2, "op": "D", "v": None}])
    code, out, err = run(ws, "validate")
    assert code == 0, out + err
    for key in ("c/0.parquet", "c/1.parquet"):
        assert ws.ingest(("land", key)).count("committed") == 1
    assert [(r["id"], r["op"]) for r in table_rows(ws, "crm.deals")] == [(2, "I")]


# ---------------------------------------------------------------- shared data files (append)


@pytest.mark.slow
def test_a_batch_of_small_objects_shares_data_files(ws: Workspace) -> None:
    ws.route("ev", {"bucket": "land", "prefix": "ev/"}, {"table": "ev.plain"})
    ws.route("evp", {"bucket": "land", "prefix": "evp/"}, {"table": "ev.parted", "partition_by": ["bucket(4, id)"]})
    keys = [parquet(ws, f"ev/{i}.parquet", [{"id": i * 10 + j} for j in range(10)]) for i in range(30)]
    pkeys = [parquet(ws, f"evp/{i}.parquet", [{"id": i * 10 + j} for j in range(10)]) for i in range(30)]
    report = ws.ingest(*[("land", k) for k in keys + pkeys])
    assert report.count("committed") == 60
    cat = ws.catalog()
    assert len(cat.load_table("ev.plain").inspect.files()) == 1, "30 objects, one data file"
    assert len(cat.load_table("ev.parted").inspect.files()) == 4, "one file per partition, not per object"
    assert len(table_rows(ws, "ev.plain")) == 300 and len(table_rows(ws, "ev.parted")) == 300
    # exactly once holds for objects in shared files: a redelivery adds nothing
    assert ws.ingest(*[("land", k) for k in keys[:5]]).count("skipped") == 5


def test_rows_that_fail_to_write_at_commit_quarantine_only_their_object(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging checks what the writer rejects; if a write still fails in the shared commit,
    each object is written alone so that only the failing one is quarantined."""
    from lakeroute.core.write import staging

    monkeypatch.setattr(staging, "check_writable", lambda *a: None)  # let the bad rows reach the commit
    ws.route("ev", {"bucket": "land", "prefix": "ev/"}, {"table": "ev.t"},
             "SELECT id, CASE WHEN id = 99 THEN 'infinity'::TIMESTAMP ELSE TIMESTAMP '2026-01-01' END AS ts "
             "FROM source")
    good = [parquet(ws, f"ev/{i}.parquet", [{"id": i}]) for i in range(3)]
    bad = parquet(ws, "ev/bad.parquet", [{"id": 99}])
    report = ws.ingest(*[("land", k) for k in [good[0], bad, *good[1:]]])
    statuses = {o.ref.key: o.status for o in report.outcomes}
    assert statuses == {**{k: "committed" for k in good}, bad: "quarantined"}, report.outcomes
    [q] = [o for o in report.outcomes if o.status == "quarantined"]
    assert q.stage == "write" and q.table == "ev.t" and q.quarantined_to
    assert sorted(r["id"] for r in ws.rows("ev.t")) == [0, 1, 2]


@pytest.mark.parametrize("target", [
    {**UPSERT, "order_by": "v"},
    {"table": "crm.deals", "mode": "replace"},
    {"table": "crm.deals", "mode": "overwrite", "overwrite": "table"},
], ids=["upsert", "replace", "overwrite"])
def test_lost_commit_response_is_detected_in_every_mode(ws: Workspace, target: dict) -> None:
    """The catalog applied the snapshot, the client saw an error: the retry sees its own
    snapshot (the sources are in it) and commits nothing again; the files stay."""
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, target)
    parquet(ws, "deals/1.parquet", [{"id": i, "v": 1} for i in range(5)])
    ws.ingest(("land", "deals/1.parquet"))
    parquet(ws, "deals/2.parquet", [{"id": i, "v": 2} for i in range(3, 8)])
    pipe = ws.pipeline()
    real_commit = pipe.catalog.commit_table
    calls = {"n": 0}

    def commit_then_lose_response(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        response = real_commit(*args, **kwargs)
        if calls["n"] == 1:
            raise ConnectionError("connection reset after the catalog applied the commit")
        return response

    pipe.catalog.commit_table = commit_then_lose_response  # type: ignore[method-assign]
    from lakeroute.core.pipeline import ObjectRef

    report = pipe.ingest([ObjectRef("land", "deals/2.parquet")])
    assert calls["n"] == 1 and report.count("skipped") == 1, report.outcomes
    want = {"upsert": 8, "replace": 10, "overwrite": 5}[target.get("mode", "")]
    rows = table_rows(ws, "crm.deals")  # readable: the landed snapshot's files were kept
    assert len(rows) == want
    assert ws.ingest(("land", "deals/2.parquet")).count("skipped") == 1


@pytest.mark.parametrize("mode", ["replace", "upsert"])
def test_replace_and_upsert_stay_correct_after_compaction(ws: Workspace, mode: str) -> None:
    """`maintain` bin-packs the objects' files into one; the next version of one object (or
    an update of its keys) still changes exactly its rows."""
    from lakeroute.core.maintain.compaction import compact

    target: dict[str, Any] = ({"table": "erp.items", "mode": "replace"} if mode == "replace"
                              else {"table": "erp.items", "mode": "upsert", "key": ["id"]})
    ws.route("exp", {"bucket": "land", "prefix": "exp/"}, target)
    for batch in range(3):  # three commits of 4 objects: 3 files (shared per batch, or per object)
        keys = [parquet(ws, f"exp/{batch}-{i}.parquet", [{"id": batch * 100 + i * 10 + j, "v": "v1"}
                                                         for j in range(10)]) for i in range(4)]
        ws.ingest(*[("land", k) for k in keys])
    before = len(ws.catalog().load_table("erp.items").inspect.files())
    result = compact(ws.catalog(), "erp.items", 128 << 20, apply=True)
    assert result.snapshot_id is not None
    assert len(ws.catalog().load_table("erp.items").inspect.files()) == 1 < before
    parquet(ws, "exp/1-2.parquet", [{"id": 120 + j, "v": "v2"} for j in range(3)])
    assert ws.ingest(("land", "exp/1-2.parquet")).count("committed") == 1
    rows = table_rows(ws, "erp.items")
    v2 = sorted(r["id"] for r in rows if r["v"] == "v2")
    assert v2 == [120, 121, 122]
    assert len(rows) == (120 - 10 + 3 if mode == "replace" else 120)


KEY_TYPES = {  # documented key type -> (declared type, three distinct JSON values)
    "string": ("string", ["a1", "b2", "c3"]),
    "int": ("int", [1, -2, 2_000_000_000]),
    "long": ("long", [1, 2**40, -(2**62)]),
    "decimal": ("decimal(12,2)", ["12.50", "0.01", "-99999.99"]),
    "date": ("date", ["2026-01-02", "1999-12-31", "2026-01-03"]),
    "timestamp": ("timestamp", ["2026-01-02T03:04:05.123456", "2026-01-02T03:04:05", "1970-01-01T00:00:00"]),
    "timestamptz": ("timestamptz", ["2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:06Z", "2000-01-01T00:00:00Z"]),
    "uuid": ("uuid", ["9b2f7f0e-3f4e-4c1a-9d5e-0a6b7c8d9e0f", "00000000-0000-0000-0000-000000000001",
                      "ffffffff-ffff-4fff-bfff-ffffffffffff"]),
}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    import json

    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("kind", [*KEY_TYPES, "composite"])
@pytest.mark.slow
def test_upsert_works_with_every_documented_key_type(ws: Workspace, kind: str) -> None:
    """Two batches: the second updates one key and adds one; every later file keeps working."""
    if kind == "composite":
        columns = {"tenant": "string", "k": "uuid", "day": "date", "v": "long"}
        keys = ["tenant", "k", "day"]
        values = [{"tenant": "t", "k": KEY_TYPES["uuid"][1][i], "day": KEY_TYPES["date"][1][i % 2]}
                  for i in range(3)]
    else:
        declared, raw = KEY_TYPES[kind]
        columns, keys, values = {"k": declared, "v": "long"}, ["k"], [{"k": v} for v in raw]
    ws.route("u", {"bucket": "bkt", "format": "json", "columns": columns},  # hints: parsed as declared
             {"table": "ns.u", "mode": "upsert", "key": keys, "columns": columns})
    ws.put("bkt", "1.json", _jsonl([{**values[0], "v": 1}]))
    ws.put("bkt", "2.json", _jsonl([{**values[1], "v": 1}]))
    ws.put("bkt", "3.json", _jsonl([{**values[1], "v": 2}, {**values[2], "v": 2}]))
    ws.put("bkt", "4.json", _jsonl([{**values[0], "v": 3}]))
    read = []
    for key in ("1.json", "2.json", "3.json", "4.json"):  # one batch each: each merges with the table
        report = ws.ingest(("bkt", key))
        assert report.count("committed") == 1, (kind, key, [o.message for o in report.outcomes])
        read.append(summary(ws, "ns.u")["lakeroute.upsert-files-read"])
    assert read[2] == "1", f"{kind}: 3.json's keys are in one of the two files, found by their bounds ({read})"
    rows = ws.rows("ns.u")
    assert sorted(r["v"] for r in rows) == [2, 2, 3], rows
    con = open_warehouse(ws.paths.home)
    assert con.execute("SELECT count(*), sum(v) FROM ns.u").fetchone() == (3, 7), "DuckDB reads the same"
