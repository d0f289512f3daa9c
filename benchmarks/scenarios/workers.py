"""workers: ``lakeroute ingest --workers 1`` vs ``--workers 2`` of 300 small Parquet files into one
table (the local commit lane: 2 processes stage, one committer commits), fresh home each run,
medians of ``--repeat``. Timed inside the child from the command's start (after importing
``lakeroute.cli`` only: DuckDB, PyArrow and PyIceberg are imported by the command as it runs,
as for a user); the process's whole life (interpreter start, exit) is recorded beside it.
Target: >= 1.6x faster with 2 workers (on 2 cores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fixtures import exact, lakeroute_catalog, link_landing, table_stats, write_route
from harness import NPROC, WORK, Options, log, profiles_dir, repeated, reset, run_child


def scenario_workers(opt: Options, files: list[Path]) -> dict[str, Any]:
    work = reset(WORK / "workers")
    n, rows = opt.sizes.small_files, opt.sizes.small_rows
    link_landing(work / "landing", "small", files[:n])
    write_route(work / "routes", "bench-small", "small", "bench.small")
    folder = work / "landing" / "bench-landing" / "small"
    results: dict[str, Any] = {}
    for workers in (1, 2):
        def spec(i: int, workers: int = workers) -> dict[str, Any]:
            home = reset(work / f"home-{workers}-{i}")
            return {"routes": str(work / "routes"), "landing": str(work / "landing"), "home": str(home),
                    "path": str(folder), "workers": workers}

        def check(i: int, _: dict[str, Any], workers: int = workers) -> dict[str, Any]:
            return table_stats(lakeroute_catalog(work / f"home-{workers}-{i}"), "bench.small")

        log(f"workers: lakeroute ingest --workers {workers}, {n} files")
        results[f"workers-{workers}"] = repeated("cli_ingest", spec, opt.repeat, check, f"workers: --workers {workers}")
        if opt.profile:
            log(f"workers: profiling --workers {workers} (pyinstrument, the parent process)")
            run_child("cli_ingest", {**spec(99), "profile": str(profiles_dir() / f"workers-{workers}.txt")})
    one, two = results["workers-1"], results["workers-2"]
    speedup = one["seconds"] / two["seconds"]
    # One process already keeps more than one core busy (DuckDB prepares the next object's
    # database on a thread meanwhile): N cores can then give at most N / that.
    cores_1 = one.get("parent_cpu_seconds", 0.0) / one["seconds"] if one["seconds"] else 0.0
    wall = one["process_wall_seconds"] / two["process_wall_seconds"]
    expected = n * rows
    return {
        "description": f"lakeroute ingest --workers 1 vs 2: {n} Parquet files of "
                       f"~{files[0].stat().st_size / 1000:.0f} KB ({rows} rows each) into one table, {NPROC} cores",
        "expected_rows": expected,
        "contenders": results,
        "metrics": {"speedup_2_workers": round(speedup, 2),
                    "speedup_2_workers_whole_process": round(wall, 2),
                    "cores_busy_with_1_worker": round(cores_1, 2),
                    "speedup_ceiling_on_these_cores": round(NPROC / cores_1, 2) if cores_1 else None,
                    "cpu_seconds_1": round(one["cpu_seconds"], 2), "cpu_seconds_2": round(two["cpu_seconds"], 2),
                    "commit_all_seconds_2": two.get("phases", {}).get("commit_all"),
                    "stagers_cpu_seconds_2": [w["cpu"] for w in two.get("stagers", [])],
                    "parent_cpu_seconds_2": two.get("parent_cpu_seconds")},
        "targets": {"speedup_2_workers >= 1.6": speedup >= 1.6},
        "correct": all(exact(t, expected) for c in results.values() for t in c["tables_ok"]),
    }
