"""Table maintenance for real: route files, the pipeline, a SQLite catalog, files on disk.

Compaction keeps the rows (PyIceberg and DuckDB agree before and after) and bounds the files
per partition; expiry follows both rules; orphan removal deletes only old unreferenced files;
a dry run changes nothing; exactly once holds after compaction and expiry.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from lakeroute.cli import app
from lakeroute.core.maintain.expiry import plan_expiry
from lakeroute.core.maintain.maintenance import expire_if_due, maintain_table
from lakeroute.core.maintain.references import canonical
from lakeroute.core.routes import Maintenance
from lakeroute.local.files import local_lister
from lakeroute.local.ledger import SqliteLedger
from typer.testing import CliRunner

from tests.support.workspace import Workspace

TABLE = "ns.ev"
SQL = "SELECT *, getvariable('source_key') AS _src FROM source"
LONG = "events/a-key-long-enough-that-default-metrics-would-truncate-it"


def setup(ws: Workspace, objects: int, maintenance: dict | None = None) -> list[str]:
    """``objects`` objects of 20 rows, one commit each, into a table partitioned by day and bucket."""
    ws.route("ev", {"bucket": "landing"}, {
        "table": TABLE, "partition_by": ["day(ts)", "bucket(4, id)"],
        "columns": {"id": "long", "ts": "timestamptz", "region": "string", "_src": "string"},
        # replace mode finds an object's rows by such a column: its bounds must stay exact
        "properties": {"write.metadata.metrics.column._src": "full"},
        **({"maintenance": maintenance} if maintenance else {}),
    }, SQL)
    keys = []
    for i in range(objects):
        key = f"{LONG}-{i:03d}.parquet"
        base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        ids = list(range(i * 20, i * 20 + 20))
        ws.put("landing", key, pa.table({
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array([base + dt.timedelta(hours=(k * 5) % 48) for k in ids], pa.timestamp("us", "UTC")),
            "region": pa.array([f"r{k % 3}" for k in ids]),
        }))
        report = ws.ingest(("landing", key))
        assert report.count("committed") == 1, [o.message for o in report.outcomes]
        keys.append(key)
    return keys


def location(ws: Workspace) -> Path:
    return Path(canonical(ws.catalog().load_table(TABLE).location()))


def ledger(ws: Workspace) -> SqliteLedger:
    return SqliteLedger(str(ws.paths.home / "ledger.db"))


def sorted_rows(ws: Workspace) -> list[tuple]:
    """(id, ts as epoch microseconds, region, _src), sorted: via PyIceberg."""
    tbl = ws.catalog().load_table(TABLE).scan().to_arrow()
    ts = tbl.column("ts").cast(pa.int64()).to_pylist()
    return sorted(zip(tbl.column("id").to_pylist(), ts, tbl.column("region").to_pylist(),
                      tbl.column("_src").to_pylist(), strict=True))


def duckdb_rows(ws: Workspace) -> list[tuple]:
    import duckdb
    import duckdb_ext

    table = ws.catalog().load_table(TABLE)
    con = duckdb.connect()
    duckdb_ext.init(con)
    con.execute("LOAD iceberg")
    con.execute("SET VARIABLE m = ?", [canonical(table.metadata_location)])
    return sorted(con.execute("SELECT id, epoch_us(ts), region, _src FROM iceberg_scan(getvariable('m'))").fetchall())


def live_files(ws: Workspace) -> list:
    table = ws.catalog().load_table(TABLE)
    snap = table.current_snapshot()
    return [e.data_file for m in snap.manifests(table.io) for e in m.fetch_manifest_entry(table.io)]


def tree(ws: Workspace) -> dict[str, float]:
    root = ws.paths.warehouse
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_compaction_keeps_rows_bounds_and_properties(ws: Workspace) -> None:
    setup(ws, 6)
    before_rows, before_duck = sorted_rows(ws), duckdb_rows(ws)
    assert len(before_rows) == 120
    before_files = live_files(ws)
    table = ws.catalog().load_table(TABLE)
    props = dict(table.metadata.properties)
    target = 1  # MB: every partition fits one file
    report = maintain_table(ws.catalog(), TABLE, Maintenance(target_file_mb=target), ledger(ws),
                            local_lister, apply=True)
    print("\n" + "\n".join(report.lines()))
    after = live_files(ws)
    assert report.compaction is not None and report.compaction.snapshot_id is not None
    assert len(after) < len(before_files) and len(after) == report.compaction.files_after
    by_partition: dict[str, list[int]] = {}
    for f in after:
        by_partition.setdefault(repr(f.partition), []).append(int(f.file_size_in_bytes))
    for sizes in by_partition.values():
        assert len(sizes) <= math.ceil(sum(sizes) / (target << 20)) + 1
    assert len(by_partition) == len({repr(f.partition) for f in before_files}), "same partitions"
    assert sorted_rows(ws) == before_rows and duckdb_rows(ws) == before_duck == before_rows
    table = ws.catalog().load_table(TABLE)
    snap = table.current_snapshot()
    assert snap.summary.operation.value == "replace"
    assert snap.summary["total-records"] == "120"
    assert table.metadata.properties == props, "table properties untouched"
    # exact (untruncated) bounds of _src in the rewritten files: full metrics were kept
    src_id = table.schema().find_field("_src").field_id
    for f in after:
        assert f.upper_bounds[src_id].decode().endswith(".parquet"), "upper bound not truncated"


def test_dry_run_changes_nothing(ws: Workspace) -> None:
    setup(ws, 5)
    old = location(ws) / "data" / "stray.parquet"
    old.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 5 * 86400,) * 2)
    meta_location = ws.catalog().load_table(TABLE).metadata_location
    files = tree(ws)
    report = maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=1), ledger(ws), local_lister,
                            apply=False)
    print("\n" + "\n".join(report.lines()))
    assert report.compaction is not None and report.compaction.plan.bins, "there is something to do"
    assert report.snapshots_expired == 4 and report.orphans == 1 and report.expired_files > 0
    assert ws.catalog().load_table(TABLE).metadata_location == meta_location
    assert tree(ws) == files


def test_expiry_keeps_the_newest_n_and_none_older_than_d_days(ws: Workspace) -> None:
    setup(ws, 6, {"auto_expire": False})
    table = ws.catalog().load_table(TABLE)
    snaps = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    now_ms = int(time.time() * 1000)
    # N: the newest 3 stay
    plan = plan_expiry(table.metadata, 3, 7, now_ms)
    assert plan.expire == [s.snapshot_id for s in snaps[:3]]
    # D: ten days later every snapshot is too old, but the current one always stays
    later = now_ms + 10 * 86_400_000
    assert plan_expiry(table.metadata, 100, 7, later).expire == [s.snapshot_id for s in snaps[:-1]]
    # both: a snapshot stays only while both allow it (keep_snapshots 1 wins over keep_days)
    assert plan_expiry(table.metadata, 1, 7, now_ms).expire == [s.snapshot_id for s in snaps[:-1]]
    # applied (after the compaction's replace snapshot): the newest three stay
    report = maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=3, target_file_mb=1),
                            ledger(ws), local_lister, apply=True)
    print("\n" + "\n".join(report.lines()))
    table = ws.catalog().load_table(TABLE)
    kept = {s.snapshot_id for s in table.metadata.snapshots}
    assert len(kept) == 3 and table.metadata.current_snapshot_id in kept
    assert snaps[-1].snapshot_id in kept, "the newest append is among the three (the compaction's parent)"
    # every file the metadata still references exists
    for path in _referenced(ws):
        assert Path(path).exists(), path
    assert len(ws.rows(TABLE)) == 120


def _referenced(ws: Workspace) -> set[str]:
    from lakeroute.core.maintain.references import ManifestReader, referenced

    table = ws.catalog().load_table(TABLE)
    return referenced(table.metadata, table.metadata_location, ManifestReader(table.io))


def test_orphans_old_unreferenced_deleted_fresh_and_referenced_kept(ws: Workspace) -> None:
    setup(ws, 3, {"auto_expire": False})
    data = location(ws) / "data"
    old, fresh = data / "interrupted-run.parquet", data / "in-flight.parquet"
    old_meta = location(ws) / "metadata" / "99999-rejected.metadata.json"
    for p in (old, fresh, old_meta):
        p.write_bytes(b"not referenced")
    four_days_ago = time.time() - 4 * 86400
    os.utime(old, (four_days_ago,) * 2)
    os.utime(old_meta, (four_days_ago,) * 2)
    referenced = _referenced(ws)
    for path in referenced:  # referenced files are old too: age alone must never delete them
        os.utime(path, (four_days_ago,) * 2)
    rows = sorted_rows(ws)
    report = maintain_table(ws.catalog(), TABLE, Maintenance(target_file_mb=1, keep_snapshots=100),
                            ledger(ws), local_lister, apply=True)
    print("\n" + "\n".join(report.lines()))
    assert (report.orphans, report.young_orphans) == (2, 1)
    assert not old.exists() and not old_meta.exists() and fresh.exists()
    for path in referenced:
        assert Path(path).exists(), f"referenced file deleted: {path}"
    assert sorted_rows(ws) == rows


def test_exactly_once_after_compaction_and_expiry(ws: Workspace) -> None:
    keys = setup(ws, 6)
    rows = sorted_rows(ws)
    report = maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=1), ledger(ws), local_lister,
                            apply=True)
    print("\n" + "\n".join(report.lines()))
    table = ws.catalog().load_table(TABLE)
    assert len(table.metadata.snapshots) == 1 and report.snapshots_expired == 6
    again = ws.ingest(*[("landing", k) for k in keys])
    print(f"[redeliver] {again.count('skipped')} skipped, {again.count('committed')} committed")
    assert again.count("skipped") == len(keys) and again.count("committed") == 0
    assert sorted_rows(ws) == rows


@pytest.mark.slow
def test_a_rebuilt_ledger_learns_the_expired_snapshots_from_the_archive(ws: Workspace) -> None:
    """Expiry removes the summaries that named the objects; it archives them first
    (core.archive), so a ledger rebuilt from the table (ledger.db deleted) still skips every
    object: automatic expiries during ingest, then maintain with keep_snapshots 1."""
    from lakeroute.core.ledger.archive import PREFIX, chain, consolidate

    keys = setup(ws, 14, {"keep_snapshots": 1})  # auto-expiry at 7 snapshots: twice
    table = ws.catalog().load_table(TABLE)
    assert [len(d["entries"]) for _, d in chain(table)] == [6, 6], "one archive file per automatic expiry"
    assert consolidate(table, apply=False)[1] == 1 and len(list(chain(table))) == 2, "a dry run writes nothing"
    assert consolidate(table, apply=True)[1] == 1, "two files of equal size merge"
    assert [len(d["entries"]) for _, d in chain(table)] == [12]
    maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=1), ledger(ws), local_lister, apply=True)
    table = ws.catalog().load_table(TABLE)
    files = list(chain(table))
    print(f"\n[archive] chain after maintain: {[len(d['entries']) for _, d in files]} sources per file")
    assert [len(d["entries"]) for _, d in files] == [2, 12], "levels: a small newest file stays apart"
    assert len(table.metadata.snapshots) == 1
    rows = sorted_rows(ws)
    (ws.paths.home / "ledger.db").unlink()
    again = ws.ingest(*[("landing", k) for k in keys])
    assert again.count("skipped") == len(keys), [o.message for o in again.outcomes if o.status != "skipped"]
    assert sorted_rows(ws) == rows
    # the archive is referenced: a later maintain (everything "old") keeps the reachable chain
    later = maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=1), ledger(ws), local_lister,
                           apply=True, now=time.time() + 10 * 86400)
    kept = {p for p, _ in chain(ws.catalog().load_table(TABLE))}
    assert kept and all(Path(canonical(p)).exists() for p in kept)
    leftovers = [p for p in (location(ws) / "metadata").glob(PREFIX + "*") if canonical(str(p)) not in
                 {canonical(k) for k in kept}]
    print(f"[archive] later run: {later.orphans} orphans removed, unreachable archive files left: {leftovers}")
    assert not leftovers, "merged-away archive files are removed once past the grace period"


@pytest.mark.slow
def test_automatic_expiry_after_ingest_commits(ws: Workspace) -> None:
    setup(ws, 12, {"keep_snapshots": 3})
    table = ws.catalog().load_table(TABLE)
    # due past 3 + 5 snapshots: expired back to 3 once, then grows again
    assert 3 <= len(table.metadata.snapshots) <= 8
    assert len(ws.rows(TABLE)) == 240
    dry = maintain_table(ws.catalog(), TABLE, Maintenance(keep_snapshots=3), ledger(ws), local_lister, apply=False)
    assert dry.young_orphans == 0, "the automatic expiry deleted the manifest lists and manifests it freed"
    assert expire_if_due(ws.catalog(), TABLE, Maintenance(keep_snapshots=3, auto_expire=False),
                         ledger(ws)) is None


def test_cli_maintain_dry_run_apply_and_unknown_table(ws: Workspace) -> None:
    setup(ws, 4)
    args = ["--routes", str(ws.paths.routes), "--home", str(ws.paths.home), "--landing", str(ws.paths.landing)]
    runner = CliRunner()
    dry = runner.invoke(app, [*args, "maintain", TABLE])
    print("\n" + dry.output)
    assert dry.exit_code == 0, dry.output
    assert "would rewrite" in dry.output and "dry run" in dry.output
    done = runner.invoke(app, [*args, "maintain", "--apply"])
    print(done.output)
    assert done.exit_code == 0 and "rewrote" in done.output and f"{TABLE}:" in done.output
    bad = runner.invoke(app, [*args, "maintain", "ns.nope"])
    assert bad.exit_code == 2
    assert "error: table ns.nope does not exist" in bad.output and TABLE in bad.output


@pytest.mark.parametrize("bad", [{"keep_snapshots": 0}, {"target_file_mb": 0}, {"orphan_days": 0.5},
                                 {"keep_days": 0}, {"unknown": 1}])
def test_maintenance_settings_are_validated(bad: dict) -> None:
    from lakeroute.core.routes import Target
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="maintenance"):
        Target(table="a.b", maintenance=bad)


def test_one_failing_table_does_not_stop_the_others(ws: Workspace) -> None:
    from lakeroute.core.maintain.maintenance import maintain_tables

    setup(ws, 3)
    real = ws.catalog()

    class Flaky:  # the catalog, failing for one table as a broken metadata file would
        def load_table(self, name: str):  # type: ignore[no-untyped-def]
            if name == "ns.broken":
                raise OSError("metadata file unreadable")
            return real.load_table(name)

    reports, left = maintain_tables(Flaky(), ledger(ws), local_lister, {}, ["ns.broken", TABLE],  # type: ignore[arg-type]
                                    apply=True)
    assert not left and [r.table for r in reports] == ["ns.broken", TABLE]
    assert "OSError: metadata file unreadable" in reports[0].error and reports[0].lines()[1].startswith("  failed")
    assert not reports[1].error and reports[1].compaction is not None and reports[1].compaction.snapshot_id
