"""write_modes: upsert, partition overwrite and replace, lakeroute vs PyIceberg's own write API.

Every base table is built once by lakeroute itself (its objects ingested through the real
pipeline into the local SQLite catalog) and kept as a pristine copy; before every contender
run the live home is restored from it (data and manifest files hard-linked, the catalog and
ledger databases copied), so each run starts from the identical table at the same path (the
catalog's metadata paths are absolute). Both contenders run in-process in their own child:
lakeroute one ``Pipeline.ingest`` of the new object(s) through a route of the mode,
PyIceberg ``Table.upsert`` / ``Table.dynamic_partition_overwrite`` of the same object read
with pyarrow. After every run the table's rows are checked against the truth computed in
DuckDB from the source files (row count and a sum of a hash over every column).

- upsert: a batch of 50k rows (10% new keys, the rest spread over the whole key range) into
  tables of 1M and 4M rows built from 200 objects, unpartitioned and ``bucket(64, id)``;
  and into the bucket tables a batch whose keys fall in 3 of the 64 buckets (~5%): files
  touched and seconds vs the full-range batch. PyIceberg's upsert is stopped after
  ``pyiceberg_timeout_seconds``: then its time is a lower bound.
                             target: >= 10x faster than PyIceberg, peak RSS <= 1 GB, flat
- overwrite: one day re-ingested into a 365-day table (identity ``day``), lakeroute
  ``overwrite: partitions`` vs ``dynamic_partition_overwrite``.  target: <= 1.2x PyIceberg
- replace: a new version of one object in a ``mode: replace`` table of 1,000 objects vs the
  same in a table of 100 objects.                              target: time(1,000) <= 1.2x time(100)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import data
from fixtures import lakeroute_catalog
from harness import WORK, Options, log, reset

from scenarios.write_modes_support import EVENT_COLUMNS, TABLE, build, contender, land, route, truth
from scenarios.write_modes_upsert import scenario_upsert

DAY_COLUMNS = ["day", "id", *EVENT_COLUMNS]


def scenario_overwrite(opt: Options, work: Path) -> dict[str, Any]:
    sz = opt.sizes
    days, fix = data.daily_objects(sz.overwrite_days, sz.overwrite_day_rows)
    landing = work / "landing"
    refs = [land(landing, f"daily/{f.name}", f) for f in days]
    fix_ref = land(landing, f"daily/fix/{fix.name}", fix)
    target = {"mode": "overwrite", "overwrite": "partitions", "partition_by": ["day"]}
    route(work / "routes-daily", "daily", "daily/", target)
    live = work / "overwrite" / "home"
    pristine, base = build("overwrite", live, work / "routes-daily", landing, refs, DAY_COLUMNS)
    want = truth(DAY_COLUMNS, days, [fix], f"day IN (SELECT DISTINCT day FROM read_parquet('{fix}'))")  # noqa: S608
    lr = contender("lakeroute", {"routes": str(work / "routes-daily"), "home": str(live), "landing": str(landing),
                                 "refs": [fix_ref]}, pristine, live, DAY_COLUMNS, want, base["snapshot_id"],
                   opt.repeat, "overwrite: lakeroute overwrite: partitions, one day")
    pi = contender("pyiceberg_overwrite", {**lakeroute_catalog(live), "table": TABLE, "input": str(fix)},
                   pristine, live, DAY_COLUMNS, want, base["snapshot_id"], opt.repeat,
                   "overwrite: PyIceberg dynamic_partition_overwrite, one day")
    shutil.rmtree(live.parent)
    ratio = lr["seconds"] / pi["seconds"]
    return {
        "description": f"one day ({fix.stat().st_size / 1000:.0f} KB, {sz.overwrite_day_rows * 9 // 10:,} rows) "
                       f"re-ingested into a {sz.overwrite_days}-day table of {base['rows']:,} rows "
                       f"({base['data_files']} data files), identity partition on day",
        "expected_rows": want["rows"], "base": base,
        "contenders": {"lakeroute": lr, "pyiceberg_overwrite": pi},
        "metrics": {"time_vs_pyiceberg": round(ratio, 3),
                    "lakeroute_seconds": round(lr["seconds"], 3), "pyiceberg_seconds": round(pi["seconds"], 3),
                    "lakeroute_files_deleted": lr["table"].get("deleted-data-files"),
                    "pyiceberg_files_deleted": pi["table"].get("deleted-data-files"),
                    "lakeroute_peak_rss_mb": lr["peak_rss_mb"], "pyiceberg_peak_rss_mb": pi["peak_rss_mb"],
                    "results_match_truth": lr["correct"] and pi["correct"]},
        "targets": {"time_vs_pyiceberg <= 1.2": ratio <= 1.2},
        "correct": lr["correct"] and pi["correct"],
    }


def scenario_replace(opt: Options, work: Path) -> dict[str, Any]:
    sz = opt.sizes
    counts = sorted(sz.replace_objects)
    rows = sz.replace_rows
    files = data.small_files(counts[-1], rows, name="replace")
    index = counts[0] // 2  # an object every table holds
    v2 = data.replace_version(index, rows)
    columns = [f.name for f in data.SCHEMA]
    runs: dict[int, dict[str, Any]] = {}
    for n in counts:
        landing = work / f"replace-{n}" / "landing"
        refs = [land(landing, f"exp/{f.name}", f) for f in files[:n]]
        route(work / "routes-replace", "exp", "exp/", {"mode": "replace"})
        live = work / f"replace-{n}" / "home"
        pristine, base = build(f"replace_{n}", live, work / "routes-replace", landing, refs, columns)
        ref = land(landing, f"exp/{files[index].name}", v2)  # the object's new version, same key
        lo, hi = index * rows, (index + 1) * rows
        want = truth(columns, files[:n], [v2], f"event_id >= {lo} AND event_id < {hi}")
        r = contender("lakeroute", {"routes": str(work / "routes-replace"), "home": str(live),
                                    "landing": str(landing), "refs": [ref]}, pristine, live, columns, want,
                      base["snapshot_id"], opt.repeat, f"replace: lakeroute, one object of {n}")
        r["base"] = base
        runs[n] = r
        shutil.rmtree(live.parent)
    small, large = runs[counts[0]], runs[counts[-1]]
    ratio = large["seconds"] / small["seconds"]
    return {
        "description": f"a new version of one object ({rows:,} -> {rows * 9 // 10:,} rows) in a mode: replace "
                       f"table of {counts[-1]:,} objects vs of {counts[0]:,}",
        "expected_rows": large["table"]["rows"],
        "contenders": {f"lakeroute_{n}_objects": r for n, r in runs.items()},
        "metrics": {f"seconds_{counts[-1]}_objects": round(large["seconds"], 3),
                    f"seconds_{counts[0]}_objects": round(small["seconds"], 3),
                    "time_ratio_large_vs_small": round(ratio, 3),
                    "files_deleted": large["table"].get("deleted-data-files"),
                    "replaced_rows": large["table"].get("lakeroute.replaced-rows"),
                    "lakeroute_peak_rss_mb": max(r["peak_rss_mb"] for r in runs.values()),
                    "results_match_truth": all(r["correct"] for r in runs.values())},
        "targets": {"time_ratio_large_vs_small <= 1.2": ratio <= 1.2},
        "correct": all(r["correct"] and r["table"].get("deleted-data-files") == 1 for r in runs.values()),
    }


def scenario_write_modes(opt: Options) -> dict[str, dict[str, Any]]:
    work = reset(WORK / "write_modes")
    out: dict[str, dict[str, Any]] = {}
    if "replace" in opt.modes:
        log("write_modes: replace")
        out["replace_one_object"] = scenario_replace(opt, work)
    if "overwrite" in opt.modes:
        log("write_modes: overwrite partitions")
        out["overwrite_one_day"] = scenario_overwrite(opt, work)
    layouts = [layout for mode, layout in (("upsert", None), ("upsert_unpartitioned", "unpartitioned"),
                                           ("upsert_bucket64", "bucket64")) if mode in opt.modes]
    if layouts:
        log("write_modes: upsert")
        out.update(scenario_upsert(opt, work, None if None in layouts else tuple(layouts)))
    return out
