"""lakeroute benchmarks, each with its baselines measured in the same run.

    uv run python benchmarks/run.py                      # everything, full sizes (~10 min)
    uv run python benchmarks/run.py --only small,large   # a subset
    uv run python benchmarks/run.py --quick              # small sizes: a smoke run (~1 min)
    uv run python benchmarks/run.py --profile            # also write pyinstrument profiles

Scenarios (each contender runs in its own child process; peak RSS is the child's VmHWM;
times are measured inside the child after its imports, except for cold start):

  small        300 Parquet files of ~50 KB into one table: lakeroute (one Pipeline.ingest via
               local_pipeline, fresh home) vs the reference design (reference.py): one
               invocation, one commit per file.                  target: >= 10x faster
  large        one Parquet file of >= 1 GiB as Arrow into an unpartitioned and a day(ts)
               partitioned table: lakeroute vs the physical floor (pyarrow reads the input
               once and writes the same rows once as zstd Parquet, no catalog; for the
               partitioned table also by day, with pyarrow.dataset); the reference is
               measured too.                       target: <= 1.2x floor, peak RSS <= 1.5 GiB
  csv          a >= 500 MiB CSV: the same comparison.              target: <= 1.2x floor
  concurrency  8 processes x 25 files into one table (SQLite catalog), lakeroute vs reference,
               8 processes each; the table's rows are counted afterwards (lost, duplicated).
  coldstart    a fresh process imports lakeroute.handler (else pipeline + local) and ingests
               one small file into an existing table; -X importtime breakdown.
                                                                     target: <= 1 s
  maintenance  1,000 commits of 50 rows into a day/bucket/truncate-partitioned table (default
               maintenance settings: automatic expiry), then maintain --apply: commit latency
               at 10/100/1,000 and metadata.json size; files per partition, equal rows and
               checksums (PyIceberg, DuckDB), DuckDB query speed-up, compaction throughput vs
               pyarrow reading and rewriting the same files.
                                   target: commit 1,000 <= 1.5x commit 10; >= 0.5x floor
  write_modes  on identical copies of tables lakeroute built: upsert of 50k rows into 1M and 4M
               rows (unpartitioned, bucket(64, id); and a batch in 3 of the 64 buckets) vs
               PyIceberg Table.upsert (stopped after a time limit); one day re-ingested into a
               365-day table vs dynamic_partition_overwrite; a new version of one object in a
               replace table of 1,000 objects vs of 100. Every run checked against DuckDB.
               targets: upsert >= 10x, RSS <= 1 GB; overwrite <= 1.2x; replace 1,000 <= 1.2x 100
  workers      lakeroute ingest --workers 1 vs --workers 2 of the same 300 small files (the local
               commit lane: two staging processes, one committer), fresh home each run.
                                                                     target: >= 1.6x faster
  lane         the commit lane on moto's server (VersionId-enforcing Glue, latency injected):
               N = 1, 2, 4, 8, 16 warm ingest processes pulling batches of 10 from the ingest
               queue and one commit process on the FIFO lane queue, 200 objects of 10 and of
               1,000 rows into one table; the same topology without the lane (each ingest call
               commits) at N = 1 and 16. objects/s, commits, retries, CPU, pick-up to visible
               p50/p99, lost and duplicated objects. targets: objects/s grows with N, N = 16 >= 3x
               N = 1; <= 0.1 retries per commit; p99 <= 15 s; 0 lost, 0 duplicated

lakeroute and the floor run --repeat times (default 3; the reference, which is slow, once) and
ratios use medians. This machine may be shared: each run records the CPU that *other*
processes used meanwhile ("background CPU"), read from /proc/stat, so a noisy run shows.

Inputs are generated deterministically under benchmarks/data/ (gitignored) and reused; work
folders live under benchmarks/.work/ (gitignored). Results: a table on stdout and
benchmarks/results.json (--quick: benchmarks/.work/results-quick.json); a run of a subset
keeps the other scenarios' previous results in the file. Targets are reported, never
asserted: the exit status is non-zero only when lakeroute loses or duplicates rows or a
contender crashes.

Layout: this file parses the options and runs the scenarios, one module each under
scenarios/; harness.py runs the children (timing, peak RSS, background CPU) and owns the work
folders; fixtures.py sets up landing folders, routes and catalogs and counts a table's rows;
report.py prints the table and writes results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import data
from harness import HERE, WORK, Options, log
from report import machine, print_table, write_results
from scenarios.coldstart import scenario_coldstart
from scenarios.concurrency import scenario_concurrency
from scenarios.csv import scenario_csv
from scenarios.lane import scenario_lane
from scenarios.large import scenario_large
from scenarios.maintenance import scenario_maintenance
from scenarios.small import scenario_small
from scenarios.workers import scenario_workers
from scenarios.write_modes import scenario_write_modes

SCENARIOS = ("small", "large", "csv", "concurrency", "coldstart", "maintenance", "write_modes", "workers", "lane")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run")
    ap.add_argument("--modes", default="replace,overwrite,upsert",
                    help="write_modes: comma-separated subset of replace, overwrite, upsert (both layouts), "
                         "upsert_unpartitioned, upsert_bucket64 (default replace,overwrite,upsert)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of lakeroute and the floor per scenario (default 3; --quick: 1)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile lakeroute with pyinstrument: benchmarks/.work/profiles/")
    ap.add_argument("--no-reference-large", action="store_true",
                    help="skip the reference in the large and csv scenarios (no target there)")
    ap.add_argument("--cold-table", action="store_true",
                    help="concurrency: let the racing processes create the table (no provisioning)")
    ap.add_argument("--lane-workers", default=None,
                    help="lane: comma-separated ingest process counts (default 1,2,4,8,16)")
    ap.add_argument("--lane-baseline", default=None,
                    help="lane: process counts also run without the lane (default 1,16; - for none)")
    ap.add_argument("--lane-rows", default=None, help="lane: rows per object, comma-separated (default 10,1000)")
    ap.add_argument("--lane-objects", type=int, default=None, help="lane: objects per run (default 200)")
    ap.add_argument("--lane-max-seconds", type=float, default=None,
                    help="lane: the commit function's max_seconds trigger (LAKEROUTE_COMMIT_DEFAULTS; "
                         "default: the code's)")
    ap.add_argument("--lane-batch", type=int, default=None, help="lane: messages per ingest call (default 10)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (default benchmarks/results.json; --quick: .work/results-quick.json)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    sizes = data.Sizes.quick() if args.quick else data.Sizes()
    lane_sizes = {f: tuple(int(x) for x in v.split(",") if x.strip() not in ("", "-")) for f, v in (
        ("lane_workers", args.lane_workers), ("lane_baseline_workers", args.lane_baseline),
        ("lane_rows", args.lane_rows)) if v}
    if args.lane_objects:
        lane_sizes["lane_objects"] = args.lane_objects  # type: ignore[assignment]
    sizes = replace(sizes, **lane_sizes)  # type: ignore[arg-type]
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    opt = Options(sizes=sizes, repeat=max(1, repeat), profile=args.profile,
                  reference_large=not args.no_reference_large, cold_table=args.cold_table,
                  lane_max_seconds=args.lane_max_seconds, lane_batch=args.lane_batch,
                  modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()))
    if unknown := set(opt.modes) - {"replace", "overwrite", "upsert", "upsert_unpartitioned", "upsert_bucket64"}:
        ap.error(f"--modes: unknown {', '.join(sorted(unknown))} "
                 "(replace, overwrite, upsert, upsert_unpartitioned, upsert_bucket64)")
    out_path = args.out or (WORK / "results-quick.json" if args.quick else HERE / "results.json")
    WORK.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    small_set: list[Path] = []
    if any(s in only for s in ("small", "concurrency", "coldstart", "workers")):
        small_set = data.small_files(max(sizes.small_files, sizes.concurrency_procs * sizes.concurrency_files),
                                     sizes.small_rows)
    results: dict[str, Any] = {}
    for name in SCENARIOS:
        if name not in only:
            continue
        t = time.monotonic()
        before, load_before = set(results), os.getloadavg()
        if name == "small":
            results["small"] = scenario_small(opt, small_set)
        elif name == "large":
            results.update(scenario_large(opt))
        elif name == "csv":
            results.update(scenario_csv(opt))
        elif name == "concurrency":
            results["concurrency"] = scenario_concurrency(opt, small_set)
        elif name == "coldstart":
            results["coldstart"] = scenario_coldstart(opt, small_set)
        elif name == "maintenance":
            results["maintenance"] = scenario_maintenance(opt)
        elif name == "write_modes":
            results.update(scenario_write_modes(opt))
        elif name == "workers":
            results["workers"] = scenario_workers(opt, small_set)
        elif name == "lane":
            # A run with tuned settings is kept beside the default one, not over it.
            tuned = [f"{k}={v}" for k, v in (("max_seconds", opt.lane_max_seconds), ("batch", opt.lane_batch))
                     if v is not None]
            results["lane" + (f" ({', '.join(tuned)})" if tuned else "")] = scenario_lane(opt)
        load_after = os.getloadavg()
        for key in set(results) - before:  # what ran where: each scenario's own machine and load
            results[key]["machine"] = machine()
            results[key]["load_average"] = {"before": [round(x, 2) for x in load_before],
                                            "after": [round(x, 2) for x in load_after]}
        log(f"{name}: done in {time.monotonic() - t:.0f} s (load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after)")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for sc in results.values():
        sc["date"] = now

    print_table(results)
    write_results(out_path, results, now=now, started=started, keep_previous=set(only) != set(SCENARIOS),
                  options={"only": only, "quick": args.quick, "repeat": opt.repeat, "profile": args.profile,
                           "reference_large": opt.reference_large, "cold_table": opt.cold_table,
                           "lane_max_seconds": opt.lane_max_seconds, "lane_batch": opt.lane_batch},
                  sizes=asdict(sizes))
    log(f"wrote {out_path} ({time.monotonic() - started:.0f} s in all)")
    bad = [n for n, sc in results.items() if not sc.get("correct", True)]
    if bad:
        log(f"lakeroute lost or duplicated rows in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
