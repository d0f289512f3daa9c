"""The commit lane on the embedded default: stage in parallel, commit once per table, exactly once
across every crash point between staging and the catalog commit (``core.lane``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from lakeroute.cli import app
from lakeroute.core.lane.committer import commit_lane
from lakeroute.core.lane.handoff import LaneHandOff
from lakeroute.core.lane.triggers import Triggers
from lakeroute.core.pipeline import ObjectRef
from lakeroute.local.parallel import ingest_parallel, lane_of
from typer.testing import CliRunner

from tests.support.workspace import Workspace, orders


def _stage(ws: Workspace, refs: list[ObjectRef]) -> Any:
    """A staging worker that hands off and never commits (then 'dies')."""
    pipe = ws.pipeline()
    pipe.handoff = LaneHandOff(lane_of(ws.paths))
    return pipe.ingest(refs)


def _files(ws: Workspace, table: str) -> tuple[set[str], set[str]]:
    """(data files on disk under the table, data files the table references)."""
    t = ws.catalog().load_table(table)
    on_disk = {str(p) for p in Path(t.location().removeprefix("file://")).rglob("*.parquet")}
    referenced = {task.file.file_path.removeprefix("file://") for task in t.scan().plan_files()}
    return on_disk, referenced


def _put_orders(ws: Workspace, n: int, prefix: str = "", bucket: str = "bkt") -> list[ObjectRef]:
    refs = []
    for i in range(n):
        ws.put(bucket, f"{prefix}{i}.parquet", orders(3, start=10 * i))
        refs.append(ObjectRef(bucket, f"{prefix}{i}.parquet"))
    return refs


def test_workers_stage_in_parallel_and_each_table_commits_once(ws: Workspace) -> None:
    ws.route("a", {"bucket": "bkt", "prefix": "a/"}, {"table": "ns.a"})
    ws.route("b", {"bucket": "bkt", "prefix": "b/"}, {"table": "ns.b"})
    refs = _put_orders(ws, 8, "a/") + _put_orders(ws, 8, "b/")
    report = ingest_parallel(ws.paths, refs, 2)
    assert report.count("committed") == 16, [(o.status, o.message) for o in report.outcomes]
    assert [c["table"] for c in report.commits] == ["ns.a", "ns.b"] or sorted(
        c["table"] for c in report.commits) == ["ns.a", "ns.b"]
    for table in ("ns.a", "ns.b"):
        assert len(ws.rows(table)) == 24
        assert len(ws.snapshots(table)) == 1, "one snapshot per table for everything staged"
    assert lane_of(ws.paths).tables() == [], "nothing left waiting"
    assert report.seconds > 0, "the summary line's time is the run's, not 0.00s"
    again = ingest_parallel(ws.paths, refs, 2)
    assert again.count("skipped") == 16 and len(ws.rows("ns.a")) == 24


def test_cli_ingest_workers_matches_one_worker(ws: Workspace, tmp_path: Path) -> None:
    """--workers 2 and --workers 1 give the same table, for append and upsert."""
    ws.route("u", {"bucket": "bkt", "prefix": "u/"},
             {"table": "ns.u", "mode": "upsert", "key": ["id"], "order_by": "ts"})
    for i in range(6):
        rows = [{"id": k, "ts": i, "v": f"f{i}"} for k in range(i, i + 4)]
        ws.put("bkt", f"u/{i}.parquet", pa.Table.from_pylist(rows))
    runner = CliRunner()
    args = ["--routes", str(ws.paths.routes), "--home", str(ws.paths.home), "--landing", str(ws.paths.landing)]
    result = runner.invoke(app, [*args, "ingest", "--workers", "2", str(ws.paths.landing / "bkt" / "u")])
    assert result.exit_code == 0, result.output
    two = sorted((r["id"], r["ts"], r["v"]) for r in ws.rows("ns.u"))
    other = Workspace(tmp_path / "one")
    other.route("u", {"bucket": "bkt", "prefix": "u/"},
                {"table": "ns.u", "mode": "upsert", "key": ["id"], "order_by": "ts"})
    for i in range(6):
        rows = [{"id": k, "ts": i, "v": f"f{i}"} for k in range(i, i + 4)]
        other.put("bkt", f"u/{i}.parquet", pa.Table.from_pylist(rows))
    args1 = ["--routes", str(other.paths.routes), "--home", str(other.paths.home),
             "--landing", str(other.paths.landing)]
    result = runner.invoke(app, [*args1, "ingest", "--workers", "1", str(other.paths.landing / "bkt" / "u")])
    assert result.exit_code == 0, result.output
    assert two == sorted((r["id"], r["ts"], r["v"]) for r in other.rows("ns.u"))
    assert len(two) == 9 and (8, 5, "f5") in two


def test_a_hand_off_left_by_a_killed_run_is_committed_by_the_next_run(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    first = _put_orders(ws, 3, "x")
    staged = _stage(ws, first)
    assert staged.count("staged") == 3
    assert not ws.catalog().table_exists("ns.o"), "nothing visible before the committer runs"
    later = _put_orders(ws, 2, "y")
    report = ingest_parallel(ws.paths, later, 1)
    assert report.count("committed") == 5, [(o.ref.key, o.status) for o in report.outcomes]
    assert len(ws.rows("ns.o")) == 15 and lane_of(ws.paths).tables() == []


def test_committer_killed_after_its_commit_never_commits_twice_or_deletes_table_files(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    refs = _put_orders(ws, 4)
    for r in refs:
        ws.put("bkt", r.key.replace(".parquet", "-big.parquet"), orders(40_000, start=1000))
    refs += [ObjectRef("bkt", r.key.replace(".parquet", "-big.parquet")) for r in refs[:1]]
    _stage(ws, refs)
    lane = lane_of(ws.paths)
    real_remove = lane.remove

    def crash(table: str, handoff_id: str) -> None:
        raise KeyboardInterrupt("killed after the catalog commit")

    monkeypatch.setattr(lane, "remove", crash)
    with pytest.raises(KeyboardInterrupt):
        commit_lane(ws.pipeline(), lane, "ns.o", linger=False)
    rows = len(ws.rows("ns.o"))
    assert rows == 4 * 3 + 40_000 and lane.pending("ns.o"), "committed, record still there"
    monkeypatch.setattr(lane, "remove", real_remove)
    out = commit_lane(ws.pipeline(), lane, "ns.o", linger=False)
    assert out.handoffs == 1 and out.commits == 0, "recognised as committed by its summary"
    assert len(ws.rows("ns.o")) == rows and lane.pending("ns.o") == []
    on_disk, referenced = _files(ws, "ns.o")
    assert referenced <= on_disk, "no file of the table was deleted"


def test_the_same_object_staged_twice_commits_once_and_the_copy_is_deleted(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "big.parquet", orders(50_000))
    ref = ObjectRef("bkt", "big.parquet")
    _stage(ws, [ref])
    _stage(ws, [ref])  # a redelivered event, staged again by another worker
    lane = lane_of(ws.paths)
    assert len(lane.pending("ns.o")) == 2
    out = commit_lane(ws.pipeline(), lane, "ns.o", linger=False)
    assert [o.status for o in out.report.outcomes] == ["committed", "skipped"]
    assert len(ws.rows("ns.o")) == 50_000
    on_disk, referenced = _files(ws, "ns.o")
    assert on_disk == referenced, "the second copy's data files are gone"
    assert not any((ws.paths.home / "lane" / "ns.o").iterdir()), "records and blobs removed"


def test_triggers_commit_on_count_or_after_max_seconds(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    _stage(ws, _put_orders(ws, 1, "p"))
    lane = lane_of(ws.paths)
    now = [lane_created := 0.0]
    import lakeroute.core.lane.records as records

    created = records.created_at(lane.pending("ns.o")[0])
    now[0] = created + 1.0
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    out = commit_lane(ws.pipeline(), lane, "ns.o", defaults=Triggers(max_files=10, max_seconds=5),
                      clock=lambda: now[0], sleep=sleep)
    assert slept == [pytest.approx(4.0)] and out.commits == 1, "waited for the age trigger, then committed"
    assert out.freshness and out.freshness[0] >= 0
    _stage(ws, _put_orders(ws, 2, "q"))
    slept.clear()
    out = commit_lane(ws.pipeline(), lane, "ns.o", defaults=Triggers(max_files=2, max_seconds=60),
                      clock=lambda: now[0], sleep=sleep)
    assert slept == [] and out.commits == 1, "the count trigger commits at once"
    assert lane_created == 0.0 and len(ws.rows("ns.o")) == 9


def test_a_table_created_by_the_lane_from_two_workers_results(ws: Workspace) -> None:
    """No declared columns: the first commit creates the table from the staged results,
    new columns of later objects included, as one process would."""
    ws.route("e", {"bucket": "bkt"}, {"table": "ns.e"})
    ws.put("bkt", "1.parquet", pa.Table.from_pylist([{"id": 1}]))
    ws.put("bkt", "2.parquet", pa.Table.from_pylist([{"id": 2, "extra": "x"}]))
    report = ingest_parallel(ws.paths, [ObjectRef("bkt", "1.parquet"), ObjectRef("bkt", "2.parquet")], 2)
    assert report.count("committed") == 2, [(o.status, o.message) for o in report.outcomes]
    assert sorted((r["id"], r["extra"]) for r in ws.rows("ns.e")) == [(1, None), (2, "x")]


def test_a_commit_that_fails_keeps_every_hand_off_and_file_for_the_next_round(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakeroute.core.errors import TransientError
    from lakeroute.core.pipeline import ingest as ingest_module

    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "big.parquet", orders(30_000))
    _stage(ws, [*_put_orders(ws, 3), ObjectRef("bkt", "big.parquet")])
    lane = lane_of(ws.paths)
    real = ingest_module.commit

    def catalog_down(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("the catalog is unreachable")

    monkeypatch.setattr(ingest_module, "commit", catalog_down)
    with pytest.raises(TransientError):
        commit_lane(ws.pipeline(), lane, "ns.o", linger=False)
    assert len(lane.pending("ns.o")) == 1 and not ws.catalog().table_exists("ns.o")
    monkeypatch.setattr(ingest_module, "commit", real)
    out = commit_lane(ws.pipeline(), lane, "ns.o", linger=False)
    assert out.report.count("committed") == 4 and len(ws.rows("ns.o")) == 30_009


def test_a_lingering_committer_reads_each_record_once(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for the age trigger keeps what was read: a published record never changes, and
    each read is a round trip to the store (S3 in AWS)."""
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    _stage(ws, _put_orders(ws, 2, "p"))
    lane = lane_of(ws.paths)
    import lakeroute.core.lane.records as records

    now = [records.created_at(lane.pending("ns.o")[0]) + 1.0]
    loads: list[str] = []
    real_load = lane.load

    def load(table: str, handoff_id: str) -> bytes | None:
        loads.append(handoff_id)
        return real_load(table, handoff_id)

    monkeypatch.setattr(lane, "load", load)

    def sleep(s: float) -> None:
        now[0] += s

    out = commit_lane(ws.pipeline(), lane, "ns.o", defaults=Triggers(max_files=10, max_seconds=5),
                      clock=lambda: now[0], sleep=sleep)
    assert out.commits == 1 and len(ws.rows("ns.o")) == 6
    assert len(loads) == 1, f"the record was read {len(loads)} times across one wait"


def test_the_count_trigger_cuts_rounds_past_a_parallel_read(ws: Workspace) -> None:
    """More hand-offs than are read at once, cut by max_files: every round commits the oldest,
    those read past the cut wait for the next round, nothing is lost or committed twice."""
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    refs = _put_orders(ws, 11, "c")
    for ref in refs:
        _stage(ws, [ref])
    lane = lane_of(ws.paths)
    assert len(lane.pending("ns.o")) == 11
    out = commit_lane(ws.pipeline(), lane, "ns.o", defaults=Triggers(max_files=4, max_seconds=0), linger=False)
    assert out.commits == 3 and out.handoffs == 11 and lane.pending("ns.o") == []
    rows = ws.rows("ns.o")
    assert len(rows) == 33 and len({r["id"] for r in rows}) == 33
    assert [len(json.loads(s.summary.additional_properties["lakeroute.handoffs"]))
            for s in ws.snapshots("ns.o")] == [4, 4, 3], "oldest first, four at a time"
