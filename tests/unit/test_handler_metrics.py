"""The handler's EMF metrics: a batch total, and the same figures per (route, table)."""

from __future__ import annotations

import json

import pytest
from lakeroute import handler
from lakeroute.core.pipeline import IngestReport, ObjectRef, Outcome


def test_per_route_metrics_carry_route_and_table(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakeroute-dev")
    report = IngestReport(outcomes=[
        Outcome(ObjectRef("b", "a.csv", size=100), "committed", route="r1", table="ns.t", rows=5, seconds=0.2),
        Outcome(ObjectRef("b", "b.csv", size=50), "committed", route="r1", table="ns.t", rows=3, seconds=0.1),
        Outcome(ObjectRef("b", "c.csv", size=10), "quarantined", route="r2", table="ns.u"),
    ], commits=[{"table": "ns.t", "attempts": 3}, {"table": "ns.u", "attempts": 1}])
    handler.publish_per_route(report)
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    by_route = {d["route"]: d for d in docs}
    print({r: {k: v for k, v in d.items() if k != "_aws"} for r, d in by_route.items()})
    r1, r2 = by_route["r1"], by_route["r2"]
    assert r1["table"] == "ns.t" and r1["RowsCommitted"] == [8.0] and r1["BytesRead"] == [150.0]
    assert r1["ObjectsCommitted"] == [2.0] and sorted(r1["ObjectSeconds"]) == [0.1, 0.2]
    assert r1["CommitRetries"] == [2.0] and r2["ObjectsQuarantined"] == [1.0]
    dims = r1["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    assert set(dims) == {"service", "route", "table"} and r1["service"] == "lakeroute-dev"


def test_unrouted_objects_are_counted_apart_and_among_the_quarantined(capsys: pytest.CaptureFixture[str]) -> None:
    """ObjectsQuarantined (what the quarantine alarm watches) includes the objects no route
    takes; ObjectsUnrouted counts them alone."""
    report = IngestReport(outcomes=[
        Outcome(ObjectRef("b", "exports/order/a.csv"), "quarantined", "no route for b/exports/order/a.csv",
                stage="route", unrouted=True),
        Outcome(ObjectRef("b", "exports/orders/bad.csv"), "quarantined", "route r: bad", route="r", table="ns.t"),
        Outcome(ObjectRef("b", "exports/orders/ok.csv"), "committed", route="r", table="ns.t", rows=1),
    ])
    handler.publish(report)
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (total,) = [d for d in docs if "route" not in d]
    assert (total["ObjectsQuarantined"], total["ObjectsUnrouted"], total["ObjectsCommitted"]) == ([2.0], [1.0], [1.0])
