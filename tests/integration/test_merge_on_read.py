"""Merge-on-read upserts (``write.merge.mode: merge-on-read``) on real files and the SQLite
catalog: position delete files instead of rewritten data files; PyIceberg and DuckDB's
``iceberg_scan`` read what a DuckDB truth over the input files says, after several upserts,
CDC deletes, redelivery, a concurrent commit and a compaction."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_write_modes import parquet, summary, table_rows
from tests.support.workspace import Workspace

MOR = {"write.merge.mode": "merge-on-read"}
TARGET: dict[str, Any] = {"table": "crm.deals", "mode": "upsert", "key": ["id"], "order_by": "ts",
                          "operation": {"column": "op", "delete": ["D"]}, "properties": MOR}
SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.int64()), ("v", pa.string()), ("op", pa.string())])


def truth(ws: Workspace, keys: list[str]) -> list[dict[str, Any]]:
    """Per id the newest change (ts; ties: the later file, then the later row) over every
    input file; a delete removes the id."""
    paths = [str(ws.paths.landing / "land" / k) for k in keys]
    con = duckdb.connect()
    con.register("f", pa.table({"path": paths, "n": list(range(len(paths)))}))
    rows = con.execute("""
        WITH r AS (SELECT t.*, f.n FROM read_parquet($paths, filename = true, file_row_number = true) t
                   JOIN f ON t.filename = f.path)
        SELECT id, ts, v FROM r
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY ts DESC, n DESC, file_row_number DESC) = 1
            AND op IS DISTINCT FROM 'D'
        ORDER BY id""", {"paths": paths}).fetch_arrow_table().to_pylist()
    return rows


def live_files(ws: Workspace, table: str) -> tuple[set[str], int]:
    """(live data file paths, live position delete files) of the current snapshot."""
    t = ws.catalog().load_table(table)
    files = t.inspect.files().to_pylist()
    return ({f["file_path"] for f in files if f["content"] == 0},
            sum(1 for f in files if f["content"] == 1))


def changes(rng: random.Random, n: int, top: int, ts: range, deletes: float = 0.1) -> list[dict[str, Any]]:
    ids = rng.sample(range(top), n)
    return [{"id": i, "ts": rng.choice(ts), "v": f"v{rng.randrange(10**6)}",
             "op": "D" if rng.random() < deletes else "U"} for i in ids]


def test_merge_on_read_upserts_delete_by_position_and_equal_the_truth(ws: Workspace) -> None:
    rng = random.Random(21)
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, TARGET)
    keys = [parquet(ws, "deals/0.parquet", [{"id": i, "ts": 0, "v": "base", "op": "U"} for i in range(3000)],
                    SCHEMA)]
    assert ws.ingest(("land", keys[0])).count("committed") == 1
    base, deletes = live_files(ws, "crm.deals")
    assert deletes == 0
    for step in range(1, 5):  # several upserts, one of two objects in one batch
        batch = [parquet(ws, f"deals/{step}-{j}.parquet", changes(rng, 400, 3500, range(1, 50)), SCHEMA)
                 for j in range(1 if step % 2 else 2)]
        keys += batch
        report = ws.ingest(*[("land", k) for k in batch])
        assert report.count("committed") == len(batch), report.outcomes
        assert table_rows(ws, "crm.deals") == truth(ws, keys)
        s = summary(ws, "crm.deals")
        assert s["operation"] == "Operation.OVERWRITE"
        assert int(s["added-position-deletes"]) == int(s["lakeroute.upsert-replaced-rows"]) > 0
        assert int(s["added-delete-files"]) == int(s["lakeroute.upsert-delete-files"]) > 0
    data, deletes = live_files(ws, "crm.deals")
    assert base <= data, "merge-on-read never rewrote the base file"
    # the files as the spec says: delete manifests; file_path/pos with their reserved ids,
    # sorted by position, the file_path bounds naming the one data file
    t = ws.catalog().load_table("crm.deals")
    snap = t.current_snapshot()
    assert snap is not None
    contents = {str(m.content) for m in snap.manifests(t.io)}
    assert contents == {"ManifestContent.DATA", "ManifestContent.DELETES"}, contents
    for f in t.inspect.delete_files().to_pylist():
        assert f["content"] == 1
        written = pq.read_table(f["file_path"].removeprefix("file://"))
        ids = [fld.metadata[b"PARQUET:field_id"] for fld in written.schema]
        assert written.column_names == ["file_path", "pos"] and ids == [b"2147483546", b"2147483545"]
        [named] = written.column("file_path").unique().to_pylist()
        assert named in data
        pos = written.column("pos").to_pylist()
        assert pos == sorted(set(pos)) and f["record_count"] == len(pos)
        bounds = {k: dict(f[k])[2147483546] for k in ("lower_bounds", "upper_bounds")}
        assert bounds == {"lower_bounds": named.encode(), "upper_bounds": named.encode()}
    assert deletes > 0
    # redelivery: exactly once
    again = ws.ingest(("land", keys[1]), ("land", keys[2]))
    assert again.count("skipped") == 2
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def _base(ws: Workspace, target: dict[str, Any] = TARGET, n: int = 2000) -> list[str]:
    """Two commits whose files overlap in key range (evens, then odds): compaction merges them."""
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, target)
    keys = []
    for part in (0, 1):
        keys.append(parquet(ws, f"deals/base-{part}.parquet",
                            [{"id": i, "ts": 0, "v": "base", "op": "U"} for i in range(part, n, 2)], SCHEMA))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
    return keys


def test_compaction_folds_the_position_deletes_and_drops_their_files(ws: Workspace) -> None:
    from lakeroute.core.maintain.compaction import compact

    rng = random.Random(5)
    keys = _base(ws)
    for step in range(3):
        keys.append(parquet(ws, f"deals/c{step}.parquet", changes(rng, 300, 2200, range(1, 9)), SCHEMA))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
    before, deletes = live_files(ws, "crm.deals")
    assert deletes > 0
    result = compact(ws.catalog(), "crm.deals", 128 << 20, apply=True)
    assert result.snapshot_id is not None
    after, deletes = live_files(ws, "crm.deals")
    assert deletes == 0, "every delete file was applied and dropped"
    assert not (before & after), "every file with deletes (and the overlapping ones) rewritten"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)
    # and merge-on-read goes on after it
    keys.append(parquet(ws, "deals/after.parquet", changes(rng, 300, 2200, range(10, 19)), SCHEMA))
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    assert live_files(ws, "crm.deals")[1] > 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_compaction_rewrites_a_lone_big_file_that_deletes_apply_to(ws: Workspace) -> None:
    """A file of its own key range, big enough to stay under plain compaction, is rewritten
    when position deletes apply to it (else its delete files would live forever)."""
    from lakeroute.core.maintain.compaction import compact

    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, TARGET)
    keys = [parquet(ws, "deals/base.parquet", [{"id": i, "ts": 0, "v": "base", "op": "U"} for i in range(2000)],
                    SCHEMA)]
    ws.ingest(("land", keys[0]))
    # CDC deletes only: a delete file, no new data file overlapping the base file
    keys.append(parquet(ws, "deals/new.parquet", [{"id": i, "ts": 1, "v": "", "op": "D"} for i in (5, 6)],
                        SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] == 1
    size = max(f["file_size_in_bytes"] for f in ws.catalog().load_table("crm.deals").inspect.files().to_pylist())
    result = compact(ws.catalog(), "crm.deals", size, apply=True)  # target = the big file: it is not small
    assert result.snapshot_id is not None
    assert live_files(ws, "crm.deals")[1] == 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_a_compaction_between_plan_and_commit_makes_the_upsert_plan_again(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete files of our plan name data files a concurrent compaction removes: the
    catalog refuses our stale base, the next attempt plans on the compacted files, and no
    delete file ever names a vanished data file."""
    from lakeroute.core.maintain.compaction import compact
    from lakeroute.core.write import commit as commit_mod

    keys = _base(ws)
    plan = commit_mod.plan_changes
    calls: list[int] = []
    planned: list[str] = []

    def plan_then_compaction(*args: Any, **kwargs: Any) -> None:
        plan(*args, **kwargs)
        changes = args[3]
        planned.extend(f.file_path for f in changes.added if f.content != 0)
        calls.append(1)
        if len(calls) == 1:
            assert compact(ws.catalog(), "crm.deals", 128 << 20, apply=True).snapshot_id is not None

    monkeypatch.setattr(commit_mod, "plan_changes", plan_then_compaction)
    ours = [{"id": i, "ts": 3, "v": "ours", "op": "U"} for i in range(0, 2000, 7)]
    keys.append(parquet(ws, "deals/ours.parquet", [*ours, {"id": 5, "ts": 3, "v": "", "op": "D"}], SCHEMA))
    report = ws.ingest(("land", keys[-1]))
    assert report.count("committed") == 1 and report.commits[0]["attempts"] == 2, report.commits
    t = ws.catalog().load_table("crm.deals")
    data = {f["file_path"] for f in t.inspect.files().to_pylist() if f["content"] == 0}
    for task in t.scan().plan_files():
        for d in task.delete_files:
            named = set(pq.read_table(d.file_path.removeprefix("file://"), columns=["file_path"])
                        .column(0).unique().to_pylist())
            assert named <= data, "a delete file names a data file that is gone"
    first = set(planned) - {d.file_path for task in t.scan().plan_files() for d in task.delete_files}
    assert first, "the first attempt's delete files were not committed"
    assert not any(os.path.exists(p.removeprefix("file://")) for p in first), \
        "the rejected attempt's delete files were deleted"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_an_overwrite_of_a_merge_on_read_table_drops_its_delete_files(ws: Workspace) -> None:
    """Mode overwrite (table) on the same table later (the route changed its mode): the data
    files go, and the delete files that applied to them with them."""
    keys = _base(ws)
    keys.append(parquet(ws, "deals/u.parquet", [{"id": i, "ts": 1, "v": "u", "op": "U"} for i in range(0, 50)],
                        SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] > 0
    ws.route("deals", {"bucket": "land", "prefix": "deals/"},
             {"table": "crm.deals", "mode": "overwrite", "overwrite": "table"},
             sql="SELECT id, ts, v FROM source")
    parquet(ws, "deals/full.parquet", [{"id": i, "ts": 9, "v": "full", "op": "U"} for i in range(10)], SCHEMA)
    assert ws.ingest(("land", "deals/full.parquet")).count("committed") == 1
    assert live_files(ws, "crm.deals")[1] == 0
    assert summary(ws, "crm.deals")["lakeroute.removed-delete-files"] != "0"
    assert [r["v"] for r in table_rows(ws, "crm.deals")] == ["full"] * 10


def test_a_route_opts_an_existing_table_in_and_the_table_records_it(ws: Workspace) -> None:
    copy_on_write = {k: v for k, v in TARGET.items() if k != "properties"}
    keys = _base(ws, copy_on_write)
    keys.append(parquet(ws, "deals/cow.parquet", [{"id": 3, "ts": 1, "v": "cow", "op": "U"}], SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] == 0, "copy-on-write by default: no delete file"
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, TARGET)
    keys.append(parquet(ws, "deals/mor.parquet", [{"id": 4, "ts": 1, "v": "mor", "op": "U"}], SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] == 1
    assert ws.catalog().load_table("crm.deals").metadata.properties["write.merge.mode"] == "merge-on-read"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_the_commit_lane_upserts_merge_on_read(ws: Workspace) -> None:
    from lakeroute.core.pipeline import ObjectRef
    from lakeroute.local.parallel import ingest_parallel, lane_of

    rng = random.Random(8)
    keys = _base(ws)
    refs = []
    for j in range(4):
        rows = changes(rng, 200, 2200, range(100 * j + 1, 100 * j + 50))  # later objects newer
        keys.append(parquet(ws, f"deals/lane-{j}.parquet", rows, SCHEMA))
        refs.append(ObjectRef("land", keys[-1]))
    report = ingest_parallel(ws.paths, refs, 2)
    assert report.count("committed") == 4, [(o.status, o.message) for o in report.outcomes]
    assert lane_of(ws.paths).tables() == []
    assert live_files(ws, "crm.deals")[1] > 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_the_tables_own_property_opts_in_and_a_route_can_opt_back_out(ws: Workspace) -> None:
    """Another engine set ``write.update.mode`` on the table: lakeroute's upserts follow it;
    a route that declares ``copy-on-write`` wins, and its rewrite folds the delete files in."""
    copy_on_write = {k: v for k, v in TARGET.items() if k != "properties"}
    keys = _base(ws, copy_on_write)
    t = ws.catalog().load_table("crm.deals")
    with t.transaction() as txn:  # as Spark's ALTER TABLE ... SET TBLPROPERTIES would
        txn.set_properties({"write.update.mode": "merge-on-read"})
    keys.append(parquet(ws, "deals/a.parquet", [{"id": i, "ts": 1, "v": "a", "op": "U"} for i in range(0, 40)], SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] > 0
    assert table_rows(ws, "crm.deals") == truth(ws, keys)
    ws.route("deals", {"bucket": "land", "prefix": "deals/"},
             {**copy_on_write, "properties": {"write.update.mode": "copy-on-write"}})
    keys.append(parquet(ws, "deals/b.parquet", [{"id": i, "ts": 2, "v": "b", "op": "U"} for i in range(0, 2000, 5)],
                        SCHEMA))
    ws.ingest(("land", keys[-1]))
    assert live_files(ws, "crm.deals")[1] == 0, "copy-on-write rewrote the files and dropped their deletes"
    assert ws.catalog().load_table("crm.deals").metadata.properties["write.update.mode"] == "copy-on-write"
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_maintenance_compacts_and_keeps_every_delete_file_a_retained_snapshot_needs(ws: Workspace) -> None:
    """``maintain`` (compaction, expiry, orphans) on a merge-on-read table: the delete files
    count as referenced (orphan removal never takes them, however old), the compaction folds
    them, and the snapshot before it still reads as it did."""
    from lakeroute.core.maintain.maintenance import maintain_table
    from lakeroute.core.maintain.references import ManifestReader, canonical, referenced
    from lakeroute.core.routes import Maintenance
    from lakeroute.local.files import local_lister
    from lakeroute.local.ledger import SqliteLedger

    rng = random.Random(3)
    keys = _base(ws)
    for step in range(2):
        keys.append(parquet(ws, f"deals/m{step}.parquet", changes(rng, 300, 2200, range(1, 9)), SCHEMA))
        ws.ingest(("land", keys[-1]))
    t = ws.catalog().load_table("crm.deals")
    before, snap = table_rows(ws, "crm.deals"), t.metadata.current_snapshot_id
    delete_paths = [canonical(f["file_path"]) for f in t.inspect.delete_files().to_pylist()]
    assert delete_paths
    old = time.time() - 30 * 86400
    for p in Path(canonical(t.location())).rglob("*"):
        os.utime(p, (old, old))
    report = maintain_table(ws.catalog(), "crm.deals", Maintenance(keep_snapshots=100), SqliteLedger(
        str(ws.paths.home / "ledger.db")), local_lister, apply=True)
    t = ws.catalog().load_table("crm.deals")
    assert t.inspect.delete_files().to_pylist() == [], "\n".join(report.lines())
    refs = referenced(t.metadata, t.metadata_location, ManifestReader(t.io))
    for p in delete_paths:
        assert p in {canonical(r) for r in refs} and Path(p).exists(), f"delete file removed: {p}"
    assert sorted(t.scan(snapshot_id=snap).to_arrow().to_pylist(), key=lambda r: r["id"]) == before
    assert table_rows(ws, "crm.deals") == truth(ws, keys) == before


def test_a_delete_file_that_fails_to_write_leaves_no_file_behind(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails on one delete file of several: the attempt's other delete files (and
    its new data files) are deleted with it, the object is retried later, nothing lands."""
    from lakeroute.core.write import merge_on_read

    keys = _base(ws)
    t = ws.catalog().load_table("crm.deals")
    first = t.snapshots()[0]
    [evens] = [task.file.file_path for task in t.scan(snapshot_id=first.snapshot_id).plan_files()]
    write = merge_on_read.write_position_deletes
    calls: list[int] = []

    def second_fails(*args: Any) -> Any:
        calls.append(1)
        if args[2].file_path == evens:  # the first of the plan's files (lowest keys): the others still write
            raise OSError("the store refused the write")
        return write(*args)

    monkeypatch.setattr(merge_on_read, "write_position_deletes", second_fails)
    rows = [{"id": i, "ts": 1, "v": "x", "op": "U"} for i in range(0, 2000, 3)]
    keys.append(parquet(ws, "deals/x.parquet", rows, SCHEMA))
    report = ws.ingest(("land", keys[-1]))
    assert report.count("committed") == 0 and len(calls) >= 2, report.outcomes
    t = ws.catalog().load_table("crm.deals")
    referenced = {task.file.file_path.removeprefix("file://") for task in t.scan().plan_files()}
    on_disk = {str(p) for p in Path(t.location().removeprefix("file://")).rglob("*.parquet")}
    assert on_disk == referenced, "the failed attempt's files were deleted"
    monkeypatch.setattr(merge_on_read, "write_position_deletes", write)
    assert ws.ingest(("land", keys[-1])).count("committed") == 1
    assert table_rows(ws, "crm.deals") == truth(ws, keys)


def test_merge_on_read_on_a_bucket_partitioned_table(ws: Workspace) -> None:
    """Delete files carry their data file's partition (and spec): readers apply them there."""
    rng = random.Random(13)
    keys = _base(ws, {**TARGET, "partition_by": ["bucket(4, id)"]})
    for step in range(2):
        keys.append(parquet(ws, f"deals/p{step}.parquet", changes(rng, 300, 2200, range(1, 9)), SCHEMA))
        assert ws.ingest(("land", keys[-1])).count("committed") == 1
    t = ws.catalog().load_table("crm.deals")
    deletes = t.inspect.delete_files().to_pylist()
    assert deletes and all(d["partition"] is not None for d in deletes)
    for task in t.scan().plan_files():
        for d in task.delete_files:
            assert d.partition == task.file.partition
    assert table_rows(ws, "crm.deals") == truth(ws, keys)
