"""A removed route, locally: `sync` and `sync --plan` name the table it leaves behind, and keep it."""

from __future__ import annotations

from lakeroute.cli import app
from typer.testing import CliRunner

from tests.support.workspace import Workspace, orders

runner = CliRunner()


def sync(ws: Workspace, *args: str) -> tuple[int, str]:
    p = ws.paths
    result = runner.invoke(app, ["--routes", str(p.routes), "--home", str(p.home), "--landing", str(p.landing),
                                 "sync", *args])
    return result.exit_code, result.stdout + result.stderr


def test_sync_plan_says_a_table_without_a_route_is_kept(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "orders/"}, {"table": "ns.orders"})
    ws.route("r", {"bucket": "bkt", "prefix": "refunds/"}, {"table": "ns.refunds", "columns": {"id": "long"}})
    ws.put("bkt", "orders/1.parquet", orders(2))
    assert [o.status for o in ws.ingest(("bkt", "orders/1.parquet")).outcomes] == ["committed"]
    code, out = sync(ws, "--plan")
    assert code == 0 and "no longer has a route" not in out, out

    (ws.paths.routes / "o.yaml").unlink()
    line = "table ns.orders no longer has a route; kept — `lakeroute reset ns.orders --yes` to drop"
    for args in (("--plan",), ()):
        code, out = sync(ws, *args)
        assert code == 0, out
        assert [ln for ln in out.splitlines() if "no longer has a route" in ln] == [line], out
    assert len(ws.rows("ns.orders")) == 2, "kept, with its rows"
    # Locally too, its next file is quarantined "no route", naming the closest route.
    ws.put("bkt", "orders/2.parquet", orders(1))
    (outcome,) = ws.ingest(("bkt", "orders/2.parquet")).outcomes
    assert (outcome.status, outcome.unrouted) == ("quarantined", True)
    assert outcome.message.startswith("no route for bkt/orders/2.parquet; ") and "refunds/" in outcome.message
