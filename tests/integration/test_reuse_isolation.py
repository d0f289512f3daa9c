"""The batch's reused DuckDB database (core.read.reuse): one object never sees another's
file, variable, table, view, macro or setting; any failure gives the next object a new one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute.core.errors import ObjectError
from lakeroute.core.objects import SourceObject
from lakeroute.core.read.engine import Engine
from lakeroute.core.read.reuse import LINEAGE_VARIABLES, ReusedDatabase
from lakeroute.core.routes import Route

from tests.support.workspace import Workspace, orders

# The window (allowed_directories[1]; [2] is its spill folder) and what is in it.
WINDOW = "current_setting('allowed_directories')[1]"
FILES = f"(SELECT list(file) FROM glob({WINDOW} || '**'))"  # noqa: S608
LOOK = f"SELECT id, {WINDOW} AS window, {FILES} AS files, getvariable('source_key') AS key FROM source"  # noqa: S608
PROBE = ("SELECT (SELECT count(*) FROM duckdb_tables()) AS tables, "
         "(SELECT count(*) FROM duckdb_functions() WHERE NOT internal) AS macros, "
         "(SELECT list(view_name) FROM duckdb_views() WHERE NOT internal) AS views, "
         "(SELECT list(name ORDER BY name) FROM duckdb_variables()) AS variables, "
         "(SELECT list(database_name ORDER BY database_name) FROM duckdb_databases()) AS dbs, "
         "(SELECT list(name ORDER BY name) FROM duckdb_prepared_statements()) AS prepared, "
         "(SELECT count(*) FROM duckdb_secrets()) AS secrets, "
         "(SELECT count(*) FROM duckdb_sequences()) AS sequences, "
         "(SELECT count(*) FROM duckdb_types() WHERE NOT internal) AS types, "
         "current_setting('threads') AS threads, current_setting('enable_external_access') AS external, "
         "current_setting('enable_external_file_cache') AS file_cache, "
         "current_setting('allowed_directories')[1] AS window FROM source LIMIT 1")


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    e = Engine(window_root=str(tmp_path / "read"), temp_directory=str(tmp_path / "spill"))
    yield e
    e.release()


def _obj(tmp_path: Path, i: int) -> SourceObject:
    path = tmp_path / "scratch" / f"{i}" / f"part-{i}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array([i], pa.int64())}), path)
    return SourceObject(bucket="bkt", key=f"in/part-{i}.parquet", path=str(path), version=f"v{i}",
                        size=path.stat().st_size)


def _read(engine: Engine, obj: SourceObject, sql: str, **source: Any) -> list[dict[str, Any]]:
    route = Route.model_validate({"name": "r", "source": {"bucket": "bkt", **source},
                                  "target": {"table": "ns.t"}, "sql": sql})
    with engine.run(route, obj) as reader:
        return reader.read_all().to_pylist()


def _clean(probe: dict[str, Any]) -> None:
    assert probe["tables"] == probe["macros"] == probe["secrets"] == 0
    assert probe["prepared"] == ["lakeroute_tables", "lakeroute_variables"]  # the check's own, the same for all
    assert probe["sequences"] == probe["types"] == 0
    assert probe["views"] == ["source"]
    assert probe["variables"] == sorted(LINEAGE_VARIABLES)
    assert probe["dbs"] == ["memory", "system", "temp"]
    assert probe["threads"] == 1 and probe["external"] is False and probe["file_cache"] is False


def test_small_objects_share_one_database_and_see_only_their_own_file(engine: Engine, tmp_path: Path) -> None:
    rows = [_read(engine, _obj(tmp_path, i), LOOK)[0] for i in range(3)]
    print(rows)
    assert len({r["window"] for r in rows}) == 1  # one database for the three
    for i, r in enumerate(rows):
        assert r["id"] == i and r["key"] == f"in/part-{i}.parquet"
        [file] = r["files"]  # the window holds the current object alone, at the one path
        assert file == os.path.join(r["window"], "source.parquet")
    [window] = os.listdir(tmp_path / "read")
    engine.release()
    assert os.listdir(tmp_path / "read") == []  # the batch's window goes with the database
    assert [p for p in (tmp_path / "spill").rglob("*") if p.is_file()] == []


def test_hive_partitioning_sees_the_keys_folders_and_nothing_else(engine: Engine, tmp_path: Path) -> None:
    rows = []
    for i in range(2):
        obj = _obj(tmp_path, i)
        obj = SourceObject(bucket=obj.bucket, key=f"events/dt=2026-01-0{i + 1}/x.parquet", path=obj.path,
                           version=obj.version, size=obj.size)
        sql = f"SELECT id, dt, {FILES} AS files FROM source"  # noqa: S608
        rows += _read(engine, obj, sql, options={"hive_partitioning": True})
    print(rows)
    assert [(r["id"], str(r["dt"])) for r in rows] == [(0, "2026-01-01"), (1, "2026-01-02")]
    assert [len(r["files"]) for r in rows] == [1, 1]
    assert rows[1]["files"][0].endswith("/events/dt=2026-01-02/x.parquet")


def test_the_previous_objects_file_is_gone(engine: Engine, tmp_path: Path) -> None:
    first = _obj(tmp_path, 0)
    [a] = _read(engine, first, LOOK)
    [a_path] = a["files"]
    # The path it was read at holds the next object now: every way to it gives the next one's rows.
    again = (f"SELECT id FROM source UNION ALL SELECT id FROM read_parquet('{a_path}') "  # noqa: S608
             f"UNION ALL SELECT id FROM read_parquet({WINDOW} || '**')")
    assert _read(engine, _obj(tmp_path, 1), again) == [{"id": 1}] * 3
    with pytest.raises(ObjectError) as e:  # lakeroute's scratch copy of it: outside the window
        _read(engine, _obj(tmp_path, 2), f"SELECT id FROM read_parquet('{first.path}')")  # noqa: S608
    print(e.value.message)
    assert "Permission Error" in e.value.message
    [after] = _read(engine, _obj(tmp_path, 3), PROBE)
    _clean(after)


def test_the_catalog_shows_the_current_objects_columns_only(engine: Engine, tmp_path: Path) -> None:
    """The source view a reused database keeps between objects records columns, which the
    catalog shows even to SQL that never reads ``source``: it is kept only for a file of the
    same Parquet schema, so what shows is the current object's own."""
    cols = "SELECT list(column_name || ' ' || data_type ORDER BY column_index) FROM duckdb_columns()"
    sql = f"SELECT ({cols} WHERE table_name = 'source') AS cols, {WINDOW} AS window"  # noqa: S608
    got = []
    for i, t in enumerate([pa.table({"secret_a": pa.array([1], pa.int64())}),
                           pa.table({"b": pa.array([2], pa.int64())}),
                           pa.table({"b": pa.array([3], pa.int64())}),
                           pa.table({"b": pa.array(["4"])})]):
        path = tmp_path / "scratch" / f"c{i}" / "x.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(t, path)
        obj = SourceObject(bucket="bkt", key="x.parquet", path=str(path), version=f"c{i}", size=path.stat().st_size)
        got += _read(engine, obj, sql)
    print(got)
    assert [r["cols"] for r in got] == [["secret_a BIGINT"], ["b BIGINT"], ["b BIGINT"], ["b VARCHAR"]]
    assert len({r["window"] for r in got}) == 1, "one database read them all"


def test_successive_objects_of_other_columns_each_read_their_own(engine: Engine, tmp_path: Path) -> None:
    """The view a reused database keeps between objects reads each object's own columns: other
    names, other types, more columns, or other extensions (another path) than the object before."""
    tables = [pa.table({"id": pa.array([0], pa.int64())}),
              pa.table({"other": pa.array([1], pa.int64())}),  # same type, another name
              pa.table({"id": pa.array(["2"])}),  # same name, another type
              pa.table({"id": pa.array([3], pa.int64()), "x": ["three"]}),
              pa.table({"id": pa.array([4], pa.int64())}),
              pa.table({"id": pa.array([5], pa.int64()), "y": ["five"]}),  # more columns
              pa.table({"id": pa.array([6], pa.int64())})]  # fewer
    rows, windows = [], set()
    for i, t in enumerate(tables):
        path = tmp_path / "scratch" / f"t{i}" / ("x.gz.parquet" if i == 3 else "x.parquet")
        path.parent.mkdir(parents=True)
        pq.write_table(t, path)
        obj = SourceObject(bucket="bkt", key=path.name, path=str(path), version=f"t{i}", size=path.stat().st_size)
        got = _read(engine, obj, f"SELECT *, {WINDOW} AS window FROM source")  # noqa: S608
        windows |= {r.pop("window") for r in got}
        rows += got
    assert rows == [{"id": 0}, {"other": 1}, {"id": "2"}, {"id": 3, "x": "three"}, {"id": 4},
                    {"id": 5, "y": "five"}, {"id": 6}]
    assert len(windows) == 1, "one database read them all"


@pytest.mark.parametrize("sql", [
    "CREATE TABLE leak AS SELECT 1 AS x; SELECT * FROM source",
    "CREATE TEMP MACRO leak(x) AS x + 1; SELECT * FROM source",
    "CREATE TEMP VIEW leak AS SELECT 1; SELECT * FROM source",
    "SET VARIABLE leak = 1; SELECT * FROM source",
    "SELECT * FROM source; SET VARIABLE source_key = 'forged'",
    "SET threads = 4; SELECT * FROM source",
    "ATTACH ':memory:' AS leak; SELECT * FROM source",
    "PREPARE leak AS SELECT 1; SELECT * FROM source",
    "CREATE SEQUENCE leak; SELECT * FROM source",
    "CREATE TYPE leak AS INTEGER; SELECT * FROM source",
    "SELECT * FROM query('CREATE TABLE leak AS SELECT 1')",
    "SELECT * FROM source WHERE getvariable('source_key') = (SELECT error('boom'))",
])
def test_hostile_sql_leaves_nothing_for_the_next_object(engine: Engine, tmp_path: Path, sql: str) -> None:
    [before] = _read(engine, _obj(tmp_path, 0), PROBE)
    _clean(before)
    with pytest.raises(ObjectError) as e:
        _read(engine, _obj(tmp_path, 1), sql)
    print(e.value.stage, e.value.message)
    [after] = _read(engine, _obj(tmp_path, 2), PROBE)
    _clean(after)
    assert after["window"] != before["window"]  # a failed object's database is never reused
    assert _read(engine, _obj(tmp_path, 3), "SELECT getvariable('leak') AS v, getvariable('source_etag') AS e "
                 "FROM source") == [{"v": None, "e": "v3"}]
    assert len(os.listdir(tmp_path / "read")) == 1  # the discarded window is gone


def test_time_limit_interrupts_a_reused_database_and_the_next_object_gets_a_new_one(
        engine: Engine, tmp_path: Path) -> None:
    [before] = _read(engine, _obj(tmp_path, 0), PROBE)
    with pytest.raises(ObjectError) as e:
        _read(engine, _obj(tmp_path, 1), "SELECT count(*) AS n FROM source, range(100000000000000)",
              timeout_seconds=1)
    assert e.value.stage == "timeout"
    [after] = _read(engine, _obj(tmp_path, 2), PROBE)
    _clean(after)
    assert after["window"] != before["window"]


def test_a_read_left_unfinished_discards_the_database(engine: Engine, tmp_path: Path) -> None:
    [before] = _read(engine, _obj(tmp_path, 0), PROBE)
    route = Route.model_validate({"name": "r", "source": {"bucket": "bkt"}, "target": {"table": "ns.t"},
                                  "sql": "SELECT * FROM source"})
    with engine.run(route, _obj(tmp_path, 1)):
        pass  # the stream is never read
    [after] = _read(engine, _obj(tmp_path, 2), PROBE)
    assert after["window"] != before["window"]


@pytest.mark.parametrize("leftover", ["CREATE TEMP TABLE t AS SELECT 1", "SET VARIABLE v = 1", "spill file"])
def test_reset_refuses_a_database_that_is_not_back_to_pristine(tmp_path: Path, leftover: str) -> None:
    # What the route's one SELECT cannot leave (the tests above), lakeroute's own code could:
    # the second line catches it, here made by hand.
    db = ReusedDatabase({"threads": 1}, str(tmp_path / "read"), str(tmp_path / "spill"))
    try:
        db.con.execute("CREATE TEMP VIEW source AS SELECT 1")
        assert db.reset() is True
        db.con.execute("CREATE OR REPLACE TEMP VIEW source AS SELECT 1")
        if leftover == "spill file":
            os.makedirs(db.spill, exist_ok=True)
            Path(db.spill, "duckdb_temp_block-1.block").write_bytes(b"x")
        else:
            db.con.execute(leftover)
        assert db.reset() is False
    finally:
        db.close()
    assert not Path(db.window).exists() and not Path(db.spill).exists()


def test_a_batch_through_the_pipeline_reuses_and_cleans_up(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"}, "SELECT *, getvariable('source_key') AS k FROM source")
    keys = [f"{i}.parquet" for i in range(4)]
    for i, key in enumerate(keys):
        ws.put("bkt", key, orders(2, start=2 * i))
    ws.put("bkt", "bad.parquet", b"not parquet")
    report = ws.ingest(("bkt", keys[0]), ("bkt", keys[1]), ("bkt", "bad.parquet"), ("bkt", keys[2]), ("bkt", keys[3]))
    got = {o.ref.key: o.status for o in report.outcomes}
    print(got)
    assert got == {**dict.fromkeys(keys, "committed"), "bad.parquet": "quarantined"}
    assert sorted((r["k"], r["id"]) for r in ws.rows("ns.o")) == sorted(
        (k, 2 * i + j) for i, k in enumerate(keys) for j in range(2))
    read = ws.paths.home / "tmp" / "read"
    assert read.is_dir() and list(read.iterdir()) == []  # windows are closed with the batch


def test_absent_modules_are_still_absent(engine: Engine, tmp_path: Path) -> None:
    # core.read.absent answers DuckDB's per-call search for pandas at once: an import of it
    # must fail exactly as before (ModuleNotFoundError), and installed modules still import.
    import importlib
    import importlib.util

    if importlib.util.find_spec("pandas") is not None:
        pytest.skip("pandas is installed here: the finder leaves it alone")
    import sys

    searched: list[str] = []

    class Last:  # after every other finder: reached only by a search of the whole sys.path
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            searched.append(name)

    last = Last()
    sys.meta_path.append(last)  # type: ignore[arg-type]
    try:
        _read(engine, _obj(tmp_path, 0), "SELECT * FROM source")  # the finder checks once what is absent
        searched.clear()
        for i in range(1, 4):
            _read(engine, _obj(tmp_path, i), "SELECT * FROM source")
    finally:
        sys.meta_path.remove(last)  # type: ignore[arg-type]
    assert "pandas" not in searched, searched
    with pytest.raises(ModuleNotFoundError):
        import pandas  # noqa: F401
    assert importlib.util.find_spec("pandas") is None  # a probe for it answers as ever
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pandas")
    import json  # noqa: F401 - anything else imports as ever


def _variables(engine: Engine) -> list[str]:
    db = engine._reused
    assert db is not None  # the batch's database, given back after a clean read
    return sorted(n for (n,) in db.con.execute("SELECT name FROM duckdb_variables()").fetchall())


def test_lineage_is_set_only_for_reads_that_may_look_and_never_outlives_its_object(
        engine: Engine, tmp_path: Path) -> None:
    # A read that may look gets its own five values; the bucket (unchanged) is not set again.
    assert _read(engine, _obj(tmp_path, 0), "SELECT getvariable('source_key') AS k FROM source") == [
        {"k": "in/part-0.parquet"}]
    assert _variables(engine) == sorted(LINEAGE_VARIABLES)
    # One that cannot (no variable named, no SQL text run) sets none, and the earlier object's
    # values are gone before its SQL runs.
    assert _read(engine, _obj(tmp_path, 1), "SELECT id FROM source") == [{"id": 1}]
    assert _variables(engine) == []
    # Looking again, through any way to reach them, gives this object's values.
    for i, sql in enumerate(["SELECT list(name ORDER BY name) AS v, getvariable('source_bucket') AS b, "
                             "getvariable('source_etag') AS e FROM duckdb_variables(), source",
                             "SELECT * FROM query('SELECT getvariable(''source_etag'') AS e')",
                             "SELECT getvariable('source_etag') AS e FROM source"], start=2):
        [row] = _read(engine, _obj(tmp_path, i), sql)
        assert row["e"] == f"v{i}"
        if "b" in row:
            assert row["v"] == sorted(LINEAGE_VARIABLES) and row["b"] == "bkt"
    # The filename option reads the object's URI through a variable.
    assert _read(engine, _obj(tmp_path, 5), "SELECT id, filename FROM source", options={"filename": True}) == [
        {"id": 5, "filename": "s3://bkt/in/part-5.parquet"}]


def test_reset_refuses_a_variable_the_database_did_not_set(tmp_path: Path) -> None:
    db = ReusedDatabase({"threads": 1}, str(tmp_path / "read"), str(tmp_path / "spill"))
    try:
        obj = SourceObject(bucket="b", key="k.parquet", path=str(tmp_path / "x"), version="v1")
        db.set_lineage(obj, True)
        db.con.execute("CREATE TEMP VIEW source AS SELECT 1")
        assert db.reset() is True
        db.set_lineage(obj, False)
        db.con.execute("CREATE OR REPLACE TEMP VIEW source AS SELECT 1")
        db.con.execute("SET VARIABLE source_key = 'left over'")  # set, but not by set_lineage
        assert db.reset() is False
    finally:
        db.close()
