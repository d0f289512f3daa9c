"""Fan-out (`targets:`): one file feeds several tables, each exactly once on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lakeroute.core.routes import Route

from tests.integration.test_cli import run
from tests.support.workspace import Workspace

EXPORT = (b'{"order_id": 1, "customer": "ann", "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}\n'
          b'{"order_id": 2, "customer": "bob", "lines": [{"sku": "a", "qty": 5}]}\n')


def _route(ws: Workspace, lines_sql: str = "SELECT order_id, l.sku AS sku, l.qty AS qty "
                                          "FROM source, unnest(lines) AS t(l)",
           lines_extra: dict | None = None) -> None:
    ws.paths.routes.mkdir(parents=True, exist_ok=True)
    doc = {"name": "shop-export", "source": {"bucket": "shop", "prefix": "exports/"},
           "targets": [{"table": "shop.orders", "sql": "SELECT order_id, customer FROM source"},
                       {"table": "shop.lines", "sql": lines_sql, **(lines_extra or {})}]}
    (ws.paths.routes / "shop-export.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_one_file_feeds_each_table_once(ws: Workspace) -> None:
    _route(ws)
    ws.put("shop", "exports/1.jsonl", EXPORT)
    report = ws.ingest(("shop", "exports/1.jsonl"))
    assert not report.failed, [o.message for o in report.failed]
    assert sorted((o.table, o.status, o.rows) for o in report.outcomes) == [
        ("shop.lines", "committed", 3), ("shop.orders", "committed", 2)]
    assert sorted((r["order_id"], r["customer"]) for r in ws.rows("shop.orders")) == [(1, "ann"), (2, "bob")]
    assert sorted((r["order_id"], r["sku"], r["qty"]) for r in ws.rows("shop.lines")) == [
        (1, "a", 2), (1, "b", 1), (2, "a", 5)]
    code, out, _ = run(ws, "preview", "shop-export", str(ws.paths.landing / "shop" / "exports" / "1.jsonl"))
    assert code == 0 and "append 2 row(s) to shop.orders" in out and "append 3 row(s) to shop.lines" in out
    again = ws.ingest(("shop", "exports/1.jsonl"))
    assert sorted((o.table, o.status) for o in again.outcomes) == [
        ("shop.lines", "skipped"), ("shop.orders", "skipped")]
    assert len(ws.rows("shop.lines")) == 3 and len(ws.snapshots("shop.lines")) == 1


def test_a_failing_target_quarantines_for_that_target_only_and_retries_alone(ws: Workspace) -> None:
    _route(ws, lines_extra={"expect": {"accepted_values": {"sku": ["a"]}}})
    ws.put("shop", "exports/1.jsonl", EXPORT)
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "shop" / "exports" / "1.jsonl"))
    print(out, err)
    assert code == 1
    assert "ingested shop/exports/1.jsonl -> shop.orders" in out
    [line] = [ln for ln in err.splitlines() if ln.startswith("quarantined")]
    assert "shop/exports/1.jsonl" in line and "target shop.lines:" in line and "accepted_values(sku" in line
    assert len(ws.rows("shop.orders")) == 2 and ws.rows("shop.lines") == []
    record = ws.record("shop", "exports/1.jsonl")
    assert record["table"] == "shop.lines" and record["stage"] == "expect"

    _route(ws, lines_extra={"expect": {"accepted_values": {"sku": ["a", "b"]}}})  # fixed
    report = ws.ingest(("shop", "exports/1.jsonl"))
    assert sorted((o.table, o.status) for o in report.outcomes) == [
        ("shop.lines", "committed"), ("shop.orders", "skipped")], "the committed target is not written again"
    assert len(ws.rows("shop.orders")) == 2 and len(ws.rows("shop.lines")) == 3


def test_a_target_whose_sql_fails_does_not_stop_the_other(ws: Workspace) -> None:
    _route(ws, lines_sql="SELECT order_id, nope FROM source")
    ws.put("shop", "exports/1.jsonl", EXPORT)
    outcomes = {o.table: o for o in ws.ingest(("shop", "exports/1.jsonl")).outcomes}
    assert outcomes["shop.orders"].status == "committed"
    assert outcomes["shop.lines"].status == "quarantined" and "nope" in outcomes["shop.lines"].message


def test_fan_out_route_model_rules_and_validate(ws: Workspace) -> None:
    base = {"name": "r", "source": {"bucket": "bkt"}}
    with pytest.raises(ValueError, match="not both or neither"):
        Route.model_validate(base)
    with pytest.raises(ValueError, match="not both or neither"):
        Route.model_validate({**base, "target": {"table": "a.b"}, "targets": [{"table": "a.c"}]})
    with pytest.raises(ValueError, match="move sql into the items"):
        Route.model_validate({**base, "sql": "SELECT 1", "targets": [{"table": "a.c"}]})
    with pytest.raises(ValueError, match="table a.c twice"):
        Route.model_validate({**base, "targets": [{"table": "a.c"}, {"table": "a.c"}]})
    route = Route.model_validate({**base, "targets": [{"table": "a.c", "sql": "SELECT 1 AS x"},
                                                      {"table": "a.d", "schema": "rescue"}]})
    assert Route.from_item(route.to_item()) == route, "the routing-table item round-trips"
    assert [(leg.target.table, leg.sql, leg.target.schema_policy) for leg in route.legs()] == [
        ("a.c", "SELECT 1 AS x", "evolve"), ("a.d", "SELECT * FROM source", "rescue")]
    assert Route.from_item(route.to_item()) == route, "legs() leaves the route equal to its copy (route sync)"

    _route(ws, lines_sql="SELECT order_id, nope FROM source")
    ws.put("shop", "exports/sample.jsonl", EXPORT)
    code, out, err = run(ws, "validate")
    print(out, err)
    assert code == 2
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert f"{Path(ws.paths.routes / 'shop-export.yaml')}: targets[1]: sql:" in line and "nope" in line
    _route(ws)
    code, out, err = run(ws, "validate")
    assert code == 0, err
    assert json.loads(json.dumps(route.to_item()))["route"]["targets"][1]["schema"] == "rescue"
