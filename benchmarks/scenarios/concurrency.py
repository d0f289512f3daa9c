"""concurrency: 8 processes x 25 files into one table (SQLite catalog), lakeroute vs the
reference, 8 processes each, started together; the table's rows are counted afterwards
(lost, duplicated). ``--cold-table``: the racing processes create the table themselves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fixtures import (
    REFERENCE_SQL,
    lakeroute_catalog,
    link_landing,
    reference_setup,
    result_schema,
    table_stats,
    write_route,
)
from harness import WORK, Child, Options, background_share, log, reset


def _concurrent(kind: str, specs: list[dict[str, Any]], barrier: Path) -> tuple[list[dict[str, Any]], float, float]:
    """Start the children together (after their imports); (results, seconds, background share)."""
    reset(barrier)
    children = [Child(kind, {**s, "barrier": str(barrier), "id": i}, stderr_to=barrier.parent / f"{kind}-{i}.stderr")
                for i, s in enumerate(specs)]
    deadline = time.monotonic() + 300
    while len(list(barrier.glob("ready-*"))) < len(children):
        if any(c.proc.poll() is not None for c in children) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    go = time.time()
    (barrier / "go").touch()
    results = [c.wait(check=False) for c in children]
    seconds = max(r["wall_end"] for r in results) - go
    share = background_share(results, max(r["process_wall_seconds"] for r in results))
    return results, seconds, share


def provision(route_file: Path, home: Path, sample: Path) -> None:
    """Create the route's table the way `lakeroute sync` / a first load would, before the race."""
    from lakeroute.core.routes import load_route_file
    from lakeroute.core.shape.tables import ensure_table
    from lakeroute.local import local_catalog

    ensure_table(local_catalog(home), load_route_file(route_file).target, result_schema(sample, "parquet"))


def scenario_concurrency(opt: Options, files: list[Path]) -> dict[str, Any]:
    work = reset(WORK / "concurrency")
    procs, per, rows = opt.sizes.concurrency_procs, opt.sizes.concurrency_files, opt.sizes.small_rows
    refs = link_landing(work / "landing", "conc", files[:procs * per])
    route = write_route(work / "routes", "bench-conc", "conc", "bench.conc")
    expected = procs * per * rows
    shares = [refs[i * per:(i + 1) * per] for i in range(procs)]

    home = work / "lakeroute-home"
    if not opt.cold_table:
        provision(route, home, files[0])
    log(f"concurrency: lakeroute, {procs} processes x {per} files, one shared home"
        + (" (table created by the racing processes)" if opt.cold_table else ""))
    lr_runs, lr_wall, lr_bg = _concurrent("lakeroute", [
        {"routes": str(work / "routes"), "landing": str(work / "landing"), "home": str(home), "refs": share}
        for share in shares], work / "barrier")
    try:
        lr_table = table_stats(lakeroute_catalog(home), "bench.conc")
    except Exception as e:  # e.g. every process crashed before creating the table
        lr_table = {"rows": 0, "scanned_rows": 0, "distinct_event_ids": 0, "error": f"{type(e).__name__}: {e}"}

    log(f"concurrency: reference, {procs} processes x {per} invocations")
    cat = reference_setup(work / "reference-home", "ref.conc", files[0], "parquet")
    ref_runs, ref_wall, ref_bg = _concurrent("reference", [
        {**cat, "landing": str(work / "landing"), "refs": share, "log": str(work / f"reference-{i}.log"),
         "routing_table": {"conc": {"target_table": "ref.conc", "query_sql": REFERENCE_SQL["parquet"]}}}
        for i, share in enumerate(shares)], work / "barrier")
    ref_table = table_stats(cat, "ref.conc")

    def summary(runs: list[dict[str, Any]], wall: float, bg: float, table: dict[str, Any]) -> dict[str, Any]:
        distinct = table.get("distinct_event_ids", 0)
        out: dict[str, Any] = {
            "seconds": round(wall, 3), "files_per_second": round(procs * per / wall, 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "background_cpu_share": bg,
            "table": table, "lost_rows": expected - distinct,
            "duplicated_rows": table.get("scanned_rows", 0) - distinct,
            "per_process_seconds": [round(r["seconds"], 3) for r in runs if "seconds" in r],
        }
        crashed = [r for r in runs if r.get("crashed")]
        if crashed:
            out["crashed_processes"] = len(crashed)
            out["crash_errors"] = sorted({r["error"] for r in crashed})
        for k in ("failed_invocations", "retry_sleeps", "retry_sleep_seconds"):
            if any(k in r for r in runs):
                out[k] = sum(r.get(k, 0) for r in runs)
        statuses: dict[str, int] = {}
        for r in runs:
            for s, c in r.get("statuses", {}).items():
                statuses[s] = statuses.get(s, 0) + c
        if statuses:
            out["statuses"] = statuses
            out["commit_attempts"] = [c["attempts"] for r in runs for c in r.get("commits", [])]
        failures = [f for r in runs for f in r.get("failures", [])]
        if failures:
            out["failures"] = failures[:10]
        return out

    lr = summary(lr_runs, lr_wall, lr_bg, lr_table)
    ref = summary(ref_runs, ref_wall, ref_bg, ref_table)
    ratio = lr["files_per_second"] / ref["files_per_second"]
    how = "created by the racing processes" if opt.cold_table else "provisioned first"
    return {
        "description": f"{procs} processes x {per} Parquet files ({rows} rows each) into one table "
                       f"(SQLite catalog); table {how}",
        "expected_rows": expected,
        "contenders": {"lakeroute": lr, "reference": ref},
        "metrics": {"throughput_vs_reference": round(ratio, 2),
                    "lakeroute_lost_rows": lr["lost_rows"], "lakeroute_duplicated_rows": lr["duplicated_rows"],
                    "reference_lost_rows": ref["lost_rows"], "reference_duplicated_rows": ref["duplicated_rows"]},
        "targets": {"lakeroute_lost_rows == 0": lr["lost_rows"] == 0,
                    "lakeroute_duplicated_rows == 0": lr["duplicated_rows"] == 0},
        "correct": lr["lost_rows"] == 0 and lr["duplicated_rows"] == 0,
    }
