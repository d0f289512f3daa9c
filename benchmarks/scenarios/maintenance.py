"""maintenance: 1,000 small commits (50 rows each) into a table partitioned by day(ts),
bucket(8, id), truncate(3, region), then `maintain --apply`; one child process, one run.

Commit cost (issue 14, item 7): each object is one ``Pipeline.ingest`` call (one commit, with
the default maintenance settings: the automatic expiry runs after commits). Reported: the
median commit seconds (CommitResult.seconds) and ingest-call seconds over a window of 11
commits around commit 10, 100 and N, and the metadata.json size there.
                                               target: commit at N <= 1.5x commit at 10
Compaction (item 4): DuckDB count(*) and a filtered query timed before and after; files per
partition <= ceil(partition bytes / target) + 1; rows and a checksum equal across PyIceberg
and DuckDB, before and after; metadata.json size after; compaction throughput (bytes
rewritten / second of the compaction) against the physical floor: pyarrow reads the same
input files and writes the same rows per partition as zstd Parquet, no catalog.
                                               target: throughput >= 0.5x floor
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from harness import WORK, Options, log, reset, run_child

PARTITION_BY = ["day(ts)", "bucket(8, id)", "truncate(3, region)"]
ROWS = 50
WINDOW = 5  # commits each side of a checkpoint


def scenario_maintenance(opt: Options) -> dict[str, Any]:
    work = reset(WORK / "maintenance")
    commits = opt.sizes.maintenance_commits
    log(f"maintenance: {commits} commits of {ROWS} rows, then maintain --apply (one child)")
    r = run_child("maintenance", {"work": str(work), "commits": commits})
    c = r["commit_latency"]
    last = str(commits)
    growth = c[last]["commit_median_s"] / max(c["10"]["commit_median_s"], 1e-9)
    m = r["maintain"]
    metrics = {
        "commit_10_s": c["10"]["commit_median_s"], "commit_100_s": c.get("100", {}).get("commit_median_s"),
        f"commit_{last}_s": c[last]["commit_median_s"],
        "commit_growth": round(growth, 2),
        "ingest_call_10_s": c["10"]["ingest_median_s"], f"ingest_call_{last}_s": c[last]["ingest_median_s"],
        "metadata_json_kb_10": c["10"]["metadata_kb"], f"metadata_json_kb_{last}": c[last]["metadata_kb"],
        "files_before": m["files_before"], "files_after": m["files_after"],
        "worst_partition_excess": m["worst_partition_excess"],
        "metadata_json_kb_after": m["metadata_kb_after"],
        "count_query_speedup": m["count_speedup"], "filter_query_speedup": m["filter_speedup"],
        "compaction_mb_per_s": m["compaction_mb_per_s"], "floor_mb_per_s": m["floor_mb_per_s"],
        "throughput_vs_floor": m["throughput_vs_floor"],
    }
    targets = {
        "commit_growth <= 1.5": growth <= 1.5,
        "worst_partition_excess <= 0 (files <= ceil(bytes/target)+1)": m["worst_partition_excess"] <= 0,
        "throughput_vs_floor >= 0.5": m["throughput_vs_floor"] >= 0.5,
        "count_query_speedup > 1": m["count_speedup"] > 1,
    }
    return {"contenders": {"lakeroute": {k: v for k, v in r.items() if not k.startswith("_")}},
            "metrics": metrics, "targets": targets, "correct": bool(m["data_equal"])}


# ---------------------------------------------------------------- the child (contenders.py)


def _batch(i: int) -> Any:
    import datetime as dt

    import pyarrow as pa

    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    ids = [i * ROWS + j for j in range(ROWS)]
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "ts": pa.array([base + dt.timedelta(hours=(k * 7) % 72) for k in ids], pa.timestamp("us", "UTC")),
        "region": pa.array([("eu-west", "eu-central", "us-east", "ap-south")[k % 4] for k in ids]),
        "amount": pa.array([k * 0.5 for k in ids], pa.float64()),
    })


def _window(values: dict[int, float], at: int) -> float:
    picked = [v for k, v in values.items() if at - WINDOW <= k <= at + WINDOW]
    return round(statistics.median(picked), 4)


def _duck(metadata_location: str) -> tuple[Any, str]:
    import duckdb
    import duckdb_ext

    con = duckdb.connect()
    duckdb_ext.init(con)
    con.execute("LOAD iceberg")
    con.execute("SET VARIABLE meta = ?", [metadata_location.removeprefix("file://")])
    return con, "iceberg_scan(getvariable('meta'))"


CHECK_SQL = "SELECT count(*), sum(id), sum(hash(id, ts, region, amount)) FROM {src}"
FILTER_SQL = "SELECT count(*), sum(amount) FROM {src} WHERE region = 'us-east' AND id % 10 = 3"


def _queries(table: Any) -> dict[str, Any]:
    import time

    import duckdb

    con, src = _duck(table.metadata_location)
    out: dict[str, Any] = {}
    for name, sql in (("count", "SELECT count(*) FROM {src}"), ("filter", FILTER_SQL)):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            con.execute(sql.format(src=src)).fetchall()
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    out["duckdb_check"] = [str(v) for v in con.execute(CHECK_SQL.format(src=src)).fetchone()]
    arrow = table.scan().to_arrow()  # noqa: F841  (DuckDB reads the local variable)
    local = duckdb.connect()
    out["pyiceberg_check"] = [str(v) for v in local.execute(CHECK_SQL.format(src="arrow")).fetchone()]
    return out


def _floor(files: list[tuple[str, str]], out_dir: Path) -> tuple[float, int]:
    """pyarrow alone: read each partition's files (ParquetFile.read, the lightest per file),
    write them as one zstd Parquet file."""
    import time
    from collections import defaultdict

    import pyarrow as pa
    import pyarrow.parquet as pq

    groups: dict[str, list[str]] = defaultdict(list)
    for path, partition in files:
        groups[partition].append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    size = 0
    for i, paths in enumerate(groups.values()):
        tbl = pa.concat_tables([pq.ParquetFile(p).read() for p in paths])
        pq.write_table(tbl, out_dir / f"{i}.parquet", compression="zstd")
        size += sum(Path(p).stat().st_size for p in paths)
    return time.perf_counter() - t, size


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import time

    import pyarrow.parquet as pq
    from lakeroute.core.maintain.compaction import plan_compaction
    from lakeroute.core.maintain.maintenance import MB, maintain_table
    from lakeroute.core.pipeline import ObjectRef
    from lakeroute.core.routes import load_route_file
    from lakeroute.local import LocalPaths, local_pipeline
    from lakeroute.local.files import local_lister

    work = Path(spec["work"])
    commits = int(spec["commits"])
    paths = LocalPaths(work / "routes", work / "home", work / "landing")
    paths.routes.mkdir(parents=True, exist_ok=True)
    (paths.routes / "m.yaml").write_text(
        "name: m\nsource: {bucket: bench-maint}\ntarget:\n  table: bench.maint\n"
        f"  partition_by: {PARTITION_BY!r}\n"
        "  columns: {id: long, ts: timestamptz, region: string, amount: double}\n")
    pipe = local_pipeline(paths)
    landing = paths.landing / "bench-maint"
    landing.mkdir(parents=True, exist_ok=True)
    commit_s: dict[int, float] = {}
    ingest_s: dict[int, float] = {}
    meta_kb: dict[int, float] = {}
    checkpoints = sorted({10, 100, commits} & set(range(1, commits + 1)))
    for i in range(1, commits + 1):
        pq.write_table(_batch(i), landing / f"o{i:05d}.parquet")
        t = time.perf_counter()
        report = pipe.ingest([ObjectRef("bench-maint", f"o{i:05d}.parquet")])
        ingest_s[i] = time.perf_counter() - t
        assert not report.failed and report.commits, [o.message for o in report.failed]
        commit_s[i] = float(report.commits[0]["seconds"])
        if any(abs(i - c) <= WINDOW for c in checkpoints):
            table = pipe.catalog.load_table("bench.maint")
            meta_kb[i] = Path(table.metadata_location.removeprefix("file://")).stat().st_size / 1024
        if i % 100 == 0:
            log(f"maintenance: {i} commits, last {commit_s[i]:.3f} s")
    latency = {str(c): {"commit_median_s": _window(commit_s, c), "ingest_median_s": _window(ingest_s, c),
                        "metadata_kb": round(_window(meta_kb, c), 1)} for c in checkpoints}
    table = pipe.catalog.load_table("bench.maint")
    settings = load_route_file(paths.routes / "m.yaml").target.maintenance
    target = settings.target_file_mb * MB
    before_plan = plan_compaction(table, target)
    inputs = [(f.file_path.removeprefix("file://"), b.partition) for b in before_plan.bins for f in b.files]
    before = _queries(table)
    t = time.perf_counter()
    rep = maintain_table(pipe.catalog, "bench.maint", settings, pipe.ledger, local_lister, apply=True)
    maintain_s = time.perf_counter() - t
    table = pipe.catalog.load_table("bench.maint")
    after = _queries(table)
    compaction = rep.compaction
    assert compaction is not None
    floor_s, floor_bytes = _floor(inputs, work / "floor")
    # files per partition vs ceil(bytes / target) + 1
    per: dict[str, list[int]] = {}
    snap = table.current_snapshot()
    assert snap is not None
    for m in snap.manifests(table.io):
        for e in m.fetch_manifest_entry(table.io, discard_deleted=True):
            per.setdefault(repr(e.data_file.partition), []).append(int(e.data_file.file_size_in_bytes))
    excess = max(len(sizes) - (math.ceil(sum(sizes) / target) + 1) for sizes in per.values())
    rewritten = sum(b.bytes for b in compaction.plan.bins)
    mb_s = rewritten / MB / max(compaction.seconds, 1e-9)
    floor_mb_s = floor_bytes / MB / max(floor_s, 1e-9)
    equal = (before["duckdb_check"] == before["pyiceberg_check"] == after["duckdb_check"]
             == after["pyiceberg_check"] and int(after["duckdb_check"][0]) == commits * ROWS)
    return {
        "seconds": maintain_s, "commits": commits, "commit_latency": latency,
        "report": rep.lines(),
        "maintain": {
            "seconds": round(maintain_s, 2), "compaction_seconds": round(compaction.seconds, 2),
            "files_before": compaction.plan.files, "files_after": compaction.files_after,
            "partitions": len(per), "worst_partition_excess": excess,
            "snapshots_expired": rep.snapshots_expired, "orphans_removed": rep.orphans,
            "metadata_kb_after": round(Path(table.metadata_location.removeprefix("file://")).stat().st_size / 1024, 1),
            "count_before_s": round(before["count"], 4), "count_after_s": round(after["count"], 4),
            "filter_before_s": round(before["filter"], 4), "filter_after_s": round(after["filter"], 4),
            "count_speedup": round(before["count"] / max(after["count"], 1e-9), 1),
            "filter_speedup": round(before["filter"] / max(after["filter"], 1e-9), 1),
            "compaction_mb_per_s": round(mb_s, 2), "floor_mb_per_s": round(floor_mb_s, 2),
            "throughput_vs_floor": round(mb_s / max(floor_mb_s, 1e-9), 2),
            "checks": {"before": before["duckdb_check"], "after": after["duckdb_check"]},
            "data_equal": equal,
        },
    }
