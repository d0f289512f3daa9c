"""The commit function's EMF metrics (lakeroute.lane_handler.publish) as the stack's alarms read
them: the stage-wide documents carry only the ``service`` dimension (Powertools adds it), the
per-table ones ``service`` and ``table`` (stacks/monitoring.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lakeroute import lane_handler
from lakeroute.core.lane.committer import LaneReport
from lakeroute.core.pipeline.outcomes import ObjectRef, Outcome


def emf_documents(text: str) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]
    assert docs, text
    return docs


def stage_wide(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]]
    return doc


def test_objects_quarantined_by_the_committer_reach_the_stage_wide_alarm_metric(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lane_handler.metrics, "service", "lakeroute-test")  # read at import
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakeroute-test")  # read per EphemeralMetrics
    report = LaneReport("sales.orders", commits=1, freshness=[1.25, 4.5])
    report.report.outcomes += [
        Outcome(ObjectRef("land", "a.parquet"), "committed", table="sales.orders", rows=3),
        Outcome(ObjectRef("land", "b.parquet"), "quarantined", "rows do not fit", table="sales.orders"),
    ]
    lane_handler.publish(report)
    docs = emf_documents(capsys.readouterr().out)
    total = stage_wide(docs)
    assert total["service"] == "lakeroute-test"
    # `objects-quarantined` watches {service}: an object whose rows the committer could not
    # write is counted there too, not only per table.
    assert total["ObjectsQuarantined"] == [1.0]
    assert total["FreshnessMaxSeconds"] == [4.5]
    (per_table,) = [d for d in docs if d.get("table") == "sales.orders"]
    assert sorted(per_table["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["service", "table"]
    assert (per_table["LaneCommits"], per_table["LaneObjects"], per_table["ObjectsQuarantined"]) == (
        [1.0], [1.0], [1.0])
