"""`lakeroute validate` checks the schema policy, expectations, hints and on_error statically."""

from __future__ import annotations

from tests.integration.test_validate import route_file, validate
from tests.support.workspace import Workspace, orders


def test_expectations_on_columns_the_sql_does_not_produce(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "o/"}, {"table": "ns.o", "expect": {"unique": ["order_id"]}},
             "SELECT id, amount FROM source")
    ws.put("bkt", "o/sample.parquet", orders(2))
    code, errors, _ = validate(ws, "expect names a column the SQL does not make")
    assert code == 2
    [line] = errors
    assert line.startswith(f"error: {route_file(ws, 'o')}: target.expect: order_id: not produced by the SQL")


def test_expectations_on_undeclared_columns_and_a_misdeclared_rescue_column(ws: Workspace) -> None:
    ws.route("a", {"bucket": "bkt", "prefix": "a/"},
             {"table": "ns.a", "columns": {"id": "long"}, "expect": {"not_null": ["nope"]}})
    ws.route("b", {"bucket": "bkt", "prefix": "b/"},
             {"table": "ns.b", "schema": "rescue", "columns": {"id": "long", "_rescued_data": "long"}})
    code, errors, _ = validate(ws, "expect outside target.columns; _rescued_data as long")
    assert code == 2
    text = "\n".join(errors)
    assert "expect names nope, not in target.columns" in text
    assert "_rescued_data is the column schema: rescue fills" in text


def test_routes_of_one_table_must_agree_on_the_policy(ws: Workspace) -> None:
    ws.route("a", {"bucket": "bkt", "prefix": "a/"}, {"table": "ns.t", "columns": {"id": "long"}})  # strict
    ws.route("b", {"bucket": "bkt", "prefix": "b/"}, {"table": "ns.t", "columns": {"id": "long"},
                                                      "schema": "rescue"})
    code, errors, _ = validate(ws, "one table, strict and rescue")
    assert code == 2 and any("schema" in e for e in errors), errors


def test_a_hint_the_sample_contradicts(ws: Workspace) -> None:
    ws.route("h", {"bucket": "bkt", "prefix": "h/", "columns": {"deal_id": "long", "name": "string"}},
             {"table": "ns.h"})
    ws.put("bkt", "h/sample.jsonl", b'{"deal_id": 1, "name": "a"}\n{"deal_id": "D-2", "name": "b"}\n')
    code, errors, _ = validate(ws, "deal_id hinted long, sample has D-2")
    assert code == 2
    [line] = [e for e in errors if "source.columns" in e]
    assert "source.columns.deal_id: hinted long" in line and "D-2" in line


def test_nested_hints_bind_without_a_sample_and_against_one_that_lacks_the_field(ws: Workspace) -> None:
    sql = "SELECT id, experiment.variant AS variant FROM source"
    ws.route("x", {"bucket": "bkt", "prefix": "x/",
                   "columns": {"id": "long", "experiment": "struct<variant: string>"}}, {"table": "ns.x"}, sql)
    code, errors, _ = validate(ws, "nested hint, no sample")
    assert code == 0, errors
    ws.put("bkt", "x/sample.jsonl", b'{"id": 1}\n')
    code, errors, _ = validate(ws, "nested hint, a sample without the field")
    assert code == 0, errors


def test_policy_decides_what_extra_result_columns_are(ws: Workspace) -> None:
    for policy, expected in (("strict", 2), ("rescue", 0), ("evolve", 0)):
        ws.route("p", {"bucket": "bkt", "prefix": "p/"}, {"table": "ns.p", "schema": policy,
                                                          "columns": {"id": "long"}})
        ws.put("bkt", "p/sample.parquet", orders(2))  # id and amount; amount is not declared
        code, errors, _ = validate(ws, f"schema {policy} with an undeclared result column")
        assert code == expected, (policy, errors)
        if expected:
            assert "amount" in errors[0]


def test_on_error_settings(ws: Workspace) -> None:
    ws.route("w", {"bucket": "bkt", "prefix": "w/", "options": {"ignore_errors": True}}, {"table": "ns.w"})
    code, _, warnings = validate(ws, "ignore_errors with on_error: file")
    assert code == 0 and any("use source.on_error: rows" in w for w in warnings), warnings
    ws.route("w", {"bucket": "bkt", "prefix": "w/", "on_error": "rows", "options": {"ignore_errors": True}},
             {"table": "ns.w"})
    code, errors, _ = validate(ws, "ignore_errors with on_error: rows")
    assert code == 2 and "options.ignore_errors would drop" in errors[0]
    ws.route("w", {"bucket": "bkt", "prefix": "w/", "on_error": "rows", "format": "parquet"}, {"table": "ns.w"})
    code, errors, _ = validate(ws, "on_error: rows on parquet")
    assert code == 2 and "applies to csv and json" in errors[0]
