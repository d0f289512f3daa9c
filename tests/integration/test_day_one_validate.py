"""Day one, `validate` catches what always fails: a string result feeding a typed declared
column. The rule (``core.pipeline.sample_casts``): an error when the sample's values do not
cast with ingest's safe cast and such a file would be quarantined; a warning naming the SQL
cast otherwise. Real route files, real sample files, the real CLI and ingest."""

from __future__ import annotations

import decimal

from tests.integration.test_cli import run
from tests.support.workspace import Workspace

LATIN = "id;amount;name\n1;1.326,05;Müller\n2;3,5;Zoë\n".encode("latin-1")
COLUMNS = {"id": "long", "amount": "decimal(12,2)", "name": "string"}
SOURCE = {"bucket": "bkt", "prefix": "l/", "options": {"delim": ";", "encoding": "latin-1"}}


def validate(ws: Workspace) -> tuple[int, list[str], list[str]]:
    code, out, err = run(ws, "validate")
    print(f"exit {code}\n{out}{err}")
    lines = err.splitlines()
    return code, [ln for ln in lines if ln.startswith("error: ")], [ln for ln in lines if ln.startswith("warning: ")]


def test_a_decimal_comma_string_into_a_declared_decimal_is_an_error_with_the_cast_that_fixes_it(
        ws: Workspace) -> None:
    ws.route("eu", SOURCE, {"table": "ns.eu", "columns": COLUMNS})
    ws.put("bkt", "l/a.csv", LATIN)
    code, errors, _ = validate(ws)
    fix = """CAST(replace(replace("amount", '.', ''), ',', '.') AS DECIMAL(12, 2))"""
    assert code == 2
    [line] = errors
    assert "eu.yaml: sql: result column amount is a string and the sample" in line
    assert "'1.326,05', which does not cast to the declared decimal(12,2)" in line and fix in line
    [o] = ws.ingest(("bkt", "l/a.csv")).outcomes
    assert o.status == "quarantined", "validate said what ingest does"

    # the fix it names, pasted into the SQL: valid, and the values land exactly
    ws.route("eu", SOURCE, {"table": "ns.eu", "columns": COLUMNS},
             f"SELECT id, {fix} AS amount, name FROM source")  # noqa: S608 - the test's own text
    code, errors, warnings = validate(ws)
    assert code == 0 and not errors and not [w for w in warnings if "amount" in w]
    [o] = ws.ingest(("bkt", "l/a.csv")).outcomes
    assert o.status == "committed", o.message
    assert sorted(r["amount"] for r in ws.rows("ns.eu")) == [decimal.Decimal("3.50"), decimal.Decimal("1326.05")]


def test_string_values_that_cast_or_no_sample_are_a_warning_naming_the_cast(ws: Workspace) -> None:
    ws.route("ts", {"bucket": "bkt", "prefix": "t/"},
             {"table": "ns.ts", "columns": {"id": "long", "ts": "timestamptz"}},
             "SELECT id, ts::VARCHAR AS ts FROM source")
    ws.put("bkt", "t/a.json", b'{"id": 1, "ts": "2026-01-01T00:00:00+00:00"}\n')
    ws.route("hinted", {"bucket": "none", "columns": {"d": "string"}}, {"table": "ns.d", "columns": {"d": "date"}},
             "SELECT d FROM source")
    code, errors, warnings = validate(ws)
    assert code == 0 and not errors
    assert any("ts.yaml: sql: result column ts is a string and target.columns declares timestamptz: the sample's "
               '1 row(s) cast' in w and 'CAST("ts" AS TIMESTAMPTZ)' in w for w in warnings), warnings
    assert any("hinted.yaml: sql: result column d is a string" in w and 'CAST("d" AS DATE)' in w
               for w in warnings), warnings


def test_bad_values_that_would_be_rejected_or_rescued_are_a_warning(ws: Workspace) -> None:
    ws.route("rows", {**SOURCE, "on_error": "rows"}, {"table": "ns.rows", "columns": COLUMNS})
    ws.route("kept", {**SOURCE, "prefix": "k/"}, {"table": "ns.kept", "columns": COLUMNS, "schema": "rescue"})
    ws.put("bkt", "l/a.csv", LATIN)
    ws.put("bkt", "k/a.csv", LATIN)
    code, errors, warnings = validate(ws)
    assert code == 0 and not errors
    assert any("rows.yaml" in w and "such rows would be rejected (on_error: rows)" in w for w in warnings), warnings
    assert any("kept.yaml" in w and "such rows would be kept in _rescued_data" in w for w in warnings), warnings
