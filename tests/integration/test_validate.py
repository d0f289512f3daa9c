"""`lakeroute validate` applies ingest's rules, earlier (shared/DESIGN.md §4, §5).

Real route files in a temporary workspace, real sample files, the real CLI: the statement
rule with or without a sample, the ingest lockdown, what always fails at ingest (errors,
exit 2, one line naming the route file) and what readers downstream struggle with
(``warning:`` lines, exit code unaffected); a declared uuid column end to end.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from lakeroute.core.read.engine import Engine

from tests.integration.test_cli import run  # `lakeroute --routes --home --landing ...` via CliRunner
from tests.support.workspace import Workspace, orders


def lines(err: str, prefix: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(prefix)]


def route_file(ws: Workspace, name: str) -> str:
    return str(ws.paths.routes / f"{name}.yaml")


def validate(ws: Workspace, what: str) -> tuple[int, list[str], list[str]]:
    """Run `validate`; (exit code, error lines, warning lines), printed with what is checked."""
    code, out, err = run(ws, "validate")
    print(f"{what}: exit {code}\n{out}{err}")
    return code, lines(err, "error: "), lines(err, "warning: ")


COLUMNS = {"id": "long", "amount": "double"}


# ---------------------------------------------------------------- the statement rule, the lockdown


def test_multi_statement_sql_without_a_sample_is_an_error(ws: Workspace) -> None:
    ws.route("multi", {"bucket": "bkt", "prefix": "m/"}, {"table": "ns.m"},
             "SELECT * FROM source; DELETE FROM x")
    code, errors, _ = validate(ws, "two statements, no sample, no source.columns")
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'multi')}: sql: ") and "exactly one SELECT" in line
    assert "SELECT, DELETE" in line, line

    ws.route("multi", {"bucket": "bkt", "prefix": "m/"}, {"table": "ns.m"}, "SELECT * FROM source")
    code, out, err = run(ws, "validate")
    print(f"one SELECT, still nothing to bind against: exit {code}\n{out}{err}")
    assert code == 0 and "note: " in err and "not bound: no sample" in err


def test_binding_is_under_the_ingest_lockdown_no_extension_loaded(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "duckdb-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # where DuckDB would install an extension
    settings: list[tuple[Any, ...]] = []
    connect = Engine._connect

    def spy(self: Engine, obj: Any) -> Any:
        con = connect(self, obj)
        settings.append(con.sql(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions'), current_setting('enable_external_access'), "
            "current_setting('lock_configuration')").fetchone())
        return con

    monkeypatch.setattr(Engine, "_connect", spy)
    ws.route("ice", {"bucket": "bkt", "prefix": "i/", "columns": COLUMNS}, {"table": "ns.i"},
             "SELECT * FROM iceberg_scan('s3://bucket/warehouse/t')")
    ws.route("web", {"bucket": "bkt", "prefix": "w/"}, {"table": "ns.w"},
             "SELECT s.* FROM source, read_csv('https://example.com/x.csv') AS s")
    ws.put("bkt", "w/sample.parquet", orders(2))
    code, errors, _ = validate(ws, "iceberg extension over source.columns, httpfs over a sample")
    assert code == 2 and len(errors) == 2, errors
    ice = next(ln for ln in errors if route_file(ws, "ice") in ln)
    assert "iceberg" in ice and "not in the catalog" in ice and "(bound against source.columns)" in ice
    web = next(ln for ln in errors if route_file(ws, "web") in ln)
    assert "Permission Error" in web and "bound against sample" in web
    assert settings == [(False, False, False, True)] * 2, settings  # exactly Engine._connect's lockdown
    assert list(home.iterdir()) == [], "an extension was installed or downloaded"


def test_the_sample_is_what_ingest_would_read_through_a_scratch_copy(ws: Workspace, tmp_path: Path) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"}, "SELECT id, amount FROM source")
    ws.route("o-special", {"bucket": "bkt", "prefix": "in/special/"}, {"table": "ns.s"}, "SELECT * FROM source")
    outside = tmp_path / "outside.csv"
    outside.write_text("other\n1\n")
    (ws.paths.landing / "bkt" / "in").mkdir(parents=True)
    (ws.paths.landing / "bkt" / "in" / "a-link.csv").symlink_to(outside)  # ingest never reads it
    ws.put("bkt", "in/b.csv.partial", b"other\n1\n")  # nor a file still being written
    ws.put("bkt", "in/special/c.csv", b"other\n1\n")  # routed to o-special at ingest
    code, out, err = run(ws, "validate")
    print(f"only files ingest would not read for route o: exit {code}\n{out}{err}")
    assert code == 0 and f"{route_file(ws, 'o')}: sql: not bound: no sample" in err

    ws.put("bkt", "in/d it's.csv", b"id,amount\n1,2.5\n")
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"}, "SELECT id, nope FROM source")
    code, errors, _ = validate(ws, "a real sample, with a quote in its name")
    assert code == 2
    [line] = errors
    landing_path = str(ws.paths.landing / "bkt" / "in" / "d it's.csv")
    assert "nope" in line and f"(bound against sample {landing_path})" in line, line
    assert "lakeroute-local" not in line  # the scratch copy DuckDB read is not shown


# ---------------------------------------------------------------- what always fails at ingest


@pytest.mark.parametrize(("expr", "arrow"), [("INTERVAL 1 DAY", "month_day_nano_interval"),
                                             ("union_value(a := 1)", "union"),
                                             ("1::VARINT", "bignum")])
def test_result_type_without_an_iceberg_counterpart_is_an_error(ws: Workspace, expr: str, arrow: str) -> None:
    ws.route("typ", {"bucket": "bkt", "prefix": "t/", "columns": COLUMNS}, {"table": "ns.t"},
             f"SELECT id, {expr} AS wait FROM source")  # noqa: S608
    code, errors, _ = validate(ws, f"result column of {expr}")
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'typ')}: sql: column wait: type ") and arrow in line, line
    assert "no Iceberg counterpart; cast it in the SQL" in line


def test_result_type_checked_over_a_sample_too(ws: Workspace) -> None:
    ws.route("typ", {"bucket": "bkt", "prefix": "t/"}, {"table": "ns.t", "columns": COLUMNS},
             "SELECT id, amount, now() - now() AS age FROM source")
    ws.put("bkt", "t/sample.parquet", orders(2))
    code, errors, _ = validate(ws, "INTERVAL result over a Parquet sample, declared table")
    assert code == 2 and any("column age: type month_day_nano_interval" in ln for ln in errors), errors


@pytest.mark.parametrize(("sql", "said"), [("SELECT id, id FROM source", "'id' twice"),
                                           ("SELECT id, amount AS ID FROM source", "as 'id' and 'ID'")])
def test_duplicate_result_names_are_an_error(ws: Workspace, sql: str, said: str) -> None:
    ws.route("dup", {"bucket": "bkt", "prefix": "d/", "columns": COLUMNS}, {"table": "ns.d"}, sql)
    code, errors, _ = validate(ws, sql)
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'dup')}: sql: ") and said in line, line


def test_partition_column_missing_from_the_result_is_an_error(ws: Workspace) -> None:
    ws.route("part", {"bucket": "bkt", "prefix": "p/", "columns": {**COLUMNS, "ts": "timestamptz"}},
             {"table": "ns.p", "partition_by": ["day(ts)"]}, "SELECT id, amount FROM source")
    code, errors, _ = validate(ws, "partition_by day(ts), the SQL drops ts, no target.columns")
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'part')}: target.partition_by: partition column 'ts'"), line

    ws.route("part", {"bucket": "bkt", "prefix": "p/", "columns": {**COLUMNS, "ts": "timestamptz"}},
             {"table": "ns.p", "partition_by": ["day(ts)"]}, "SELECT id, amount, ts FROM source")
    code, errors, _ = validate(ws, "the SQL keeps ts")
    assert code == 0 and errors == []


def test_names_differing_only_in_case_are_an_error(ws: Workspace) -> None:
    ws.route("case", {"bucket": "bkt", "prefix": "c/", "columns": COLUMNS},
             {"table": "ns.c", "columns": {"id": "long", "ID": "long"}}, "SELECT id FROM source")
    code, errors, _ = validate(ws, "target.columns id and ID")
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'case')}: target.columns: 'id' and 'ID' differ only "
                           "in case"), line


# ---------------------------------------------------------------- warnings


def test_declared_time_column_is_a_warning(ws: Workspace) -> None:
    ws.route("clock", {"bucket": "bkt", "prefix": "c/", "columns": {"id": "long", "opens": "time"}},
             {"table": "ns.c", "columns": {"id": "long", "opens": "time"}}, "SELECT id, opens FROM source")
    code, errors, warnings = validate(ws, "declared time column")
    assert code == 0 and errors == []
    [line] = warnings
    assert line.startswith(f"warning: {route_file(ws, 'clock')}: target.columns.opens: type time: ")
    assert "Spark and Athena" in line


def test_upper_case_column_name_is_a_warning(ws: Workspace) -> None:
    ws.route("up", {"bucket": "bkt", "prefix": "u/", "columns": COLUMNS},
             {"table": "ns.u"}, 'SELECT id AS "OrderId", amount AS "net amount" FROM source')
    ws.route("decl", {"bucket": "bkt", "prefix": "v/", "columns": COLUMNS},
             {"table": "ns.v", "columns": {"Id": "long"}}, 'SELECT id AS "Id" FROM source')
    code, errors, warnings = validate(ws, "result names OrderId, 'net amount'; declared Id")
    assert code == 0 and errors == []
    assert any(f"{route_file(ws, 'up')}: sql: column name 'OrderId' is not a lower-case identifier" in ln
               and "prefer 'orderid'" in ln for ln in warnings), warnings
    assert any("'net amount'" in ln and "prefer 'net_amount'" in ln for ln in warnings), warnings
    assert any(f"{route_file(ws, 'decl')}: target.columns: column name 'Id'" in ln for ln in warnings)
    assert len(warnings) == 3, warnings


def test_declared_column_never_produced_is_a_warning(ws: Workspace) -> None:
    ws.route("few", {"bucket": "bkt", "prefix": "f/", "columns": COLUMNS},
             {"table": "ns.f", "columns": {"id": "long", "note": "string"}}, "SELECT id FROM source")
    code, errors, warnings = validate(ws, "declared note, the SQL selects only id")
    assert code == 0 and errors == []
    [line] = warnings
    assert line.startswith(f"warning: {route_file(ws, 'few')}: target.columns: note: declared but never "
                           "produced"), line

    # Another route feeding the table produces it: no warning.
    ws.route("more", {"bucket": "bkt", "prefix": "g/", "columns": {"id": "long", "note": "string"}},
             {"table": "ns.f", "columns": {"id": "long", "note": "string"}}, "SELECT id, note FROM source")
    code, errors, warnings = validate(ws, "a second route of ns.f selects note")
    assert code == 0 and errors == [] and warnings == []


# ---------------------------------------------------------------- uuid, end to end


def test_declared_uuid_accepts_strings_and_duckdb_uuids_end_to_end(ws: Workspace) -> None:
    ids = [uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"), uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")]
    ws.route("u-text", {"bucket": "bkt", "prefix": "text/", "columns": {"id": "string", "n": "long"}},
             {"table": "ns.ids", "columns": {"id": "uuid", "n": "long"}}, "SELECT id, n FROM source")
    ws.route("u-duck", {"bucket": "bkt", "prefix": "duck/", "columns": {"n": "long"}},
             {"table": "ns.gen", "columns": {"id": "uuid", "fixed": "uuid", "n": "long"}},
             f"SELECT gen_random_uuid() AS id, '{ids[0]}'::UUID AS fixed, n FROM source")  # noqa: S608
    code, errors, warnings = validate(ws, "VARCHAR and UUID results into declared uuid columns")
    assert code == 0 and errors == [] and warnings == []

    ws.put("bkt", "text/ids.csv", f"id,n\n{ids[0]},1\n{ids[1]},2\n".encode())
    ws.put("bkt", "duck/n.csv", b"n\n1\n2\n")
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    print(f"ingest: exit {code}\n{out}{err}")
    assert code == 0 and "ingested bkt/text/ids.csv -> ns.ids (2 rows" in out
    assert "ingested bkt/duck/n.csv -> ns.gen (2 rows" in out
    assert sorted((r["n"], r["id"]) for r in ws.rows("ns.ids")) == [(1, ids[0]), (2, ids[1])]
    generated = ws.rows("ns.gen")
    assert {r["fixed"] for r in generated} == {ids[0]}
    assert all(isinstance(r["id"], uuid.UUID) for r in generated) and len({r["id"] for r in generated}) == 2
    assert str(ws.catalog().load_table("ns.ids").schema().find_field("id").field_type) == "uuid"


def test_result_type_that_never_casts_to_the_declared_type_is_an_error(tmp_path: Path) -> None:
    from tests.support.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.route("s", {"bucket": "bkt"}, {"table": "ns.t", "columns": {"id": "int", "ts": "timestamptz"}},
             "SELECT {'a': 1} AS id, now()::TIMESTAMP AS ts FROM source")
    ws.put("bkt", "x.csv", b"a\n1\n")
    code, _, err = run(ws, "validate")
    print(err.strip())
    assert code == 2 and "column id" in err and "column ts" in err and "time zone" in err
