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

lakeroute and the floor run --repeat times (default 3; the reference, which is slow, once) and
ratios use medians. This machine may be shared: each run records the CPU that *other*
processes used meanwhile ("background CPU"), read from /proc/stat, so a noisy run shows.

Inputs are generated deterministically under benchmarks/data/ (gitignored) and reused; work
folders live under benchmarks/.work/ (gitignored). Results: a table on stdout and
benchmarks/results.json (--quick: benchmarks/.work/results-quick.json); a run of a subset
keeps the other scenarios' previous results in the file. Targets are reported, never
asserted: the exit status is non-zero only when lakeroute loses or duplicates rows or a
contender crashes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import data

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
CONTENDERS = HERE / "contenders.py"
SCENARIOS = ("small", "large", "csv", "concurrency", "coldstart")
BUCKET = "bench-landing"
GIB = 1 << 30
NPROC = len(os.sched_getaffinity(0))
REFERENCE_SQL = {"parquet": "SELECT * FROM read_parquet('{s3_input_path}')",
                 "csv": "SELECT * FROM read_csv('{s3_input_path}')"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    sizes: data.Sizes
    repeat: int
    profile: bool
    reference_large: bool
    cold_table: bool


# ---------------------------------------------------------------- child processes


def child_env(bytecode: bool = True) -> dict[str, str]:
    """Children keep bytecode under .work/pycache, as the Lambda image is compileall-ed (this
    environment sets PYTHONDONTWRITEBYTECODE=1: every import would compile from source)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have used since boot (every core), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Child:
    counter = 0

    def __init__(self, kind: str, spec: dict[str, Any], env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, stderr_to: Path | None = None) -> None:
        Child.counter += 1
        folder = WORK / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.spec_path = folder / f"{Child.counter:03d}-{kind}.spec.json"
        self.result_path = folder / f"{Child.counter:03d}-{kind}.result.json"
        self.result_path.unlink(missing_ok=True)
        spec["spawned_perf"] = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        self.spec_path.write_text(json.dumps(spec, indent=2))
        self.busy = busy_cpu_seconds()
        self.started = time.perf_counter()
        self.stderr_to = stderr_to
        err: Any = subprocess.PIPE if extra_args else None
        if stderr_to is not None:
            err = stderr_to.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *(extra_args or []), str(CONTENDERS), kind, str(self.spec_path),
             str(self.result_path)],
            env=env or child_env(), stderr=err)
        if stderr_to is not None:
            err.close()

    def wait(self, check: bool = True) -> dict[str, Any]:
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else b""
        # wait4 for the child's own CPU time (its ru_maxrss is not used: Linux carries the
        # forking parent's high-water mark across exec; the child reports its VmHWM instead)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - self.started
        if self.proc.returncode != 0 or not self.result_path.exists():
            if check:
                raise RuntimeError(f"{self.kind} child failed with exit status {self.proc.returncode} "
                                   f"(spec {self.spec_path})")
            lines = self.stderr_to.read_text(errors="replace").splitlines() if self.stderr_to else []
            errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", ln)]
            return {"crashed": True, "exit_status": self.proc.returncode, "wall_end": time.time(),
                    "error": errors[-1] if errors else "", "stderr_file": str(self.stderr_to),
                    "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": 0.0,
                    "process_wall_seconds": round(wall, 3), "_busy": (self.busy, busy_cpu_seconds())}
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        result["process_wall_seconds"] = round(wall, 3)
        result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
        result["_busy"] = (self.busy, busy_cpu_seconds())
        if stderr:
            result["_stderr"] = stderr.decode("utf-8", "replace")
        return result


def background_share(results: list[dict[str, Any]], wall: float) -> float:
    """Share of the machine's CPU that other processes used while these children ran."""
    start = min(r["_busy"][0] for r in results)
    end = max(r["_busy"][1] for r in results)
    own = sum(r["cpu_seconds"] for r in results)
    return round(max(0.0, end - start - own) / max(wall * NPROC, 1e-9), 3)


def run_child(kind: str, spec: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = Child(kind, spec, **kw).wait()
    result["background_cpu_share"] = background_share([result], result["process_wall_seconds"])
    del result["_busy"]
    return result


def repeated(kind: str, make_spec: Callable[[int], dict[str, Any]], times: int,
             check: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
             label: str = "") -> dict[str, Any]:
    """Run a contender ``times`` times; the median run's fields plus a summary of all runs."""
    runs = []
    for i in range(times):
        if times > 1:
            log(f"{label} run {i + 1}/{times}")
        r = run_child(kind, make_spec(i))
        if check is not None:
            r["table"] = check(i, r)
        runs.append(r)
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])  # the median run (lower median for even n)
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["runs_seconds"] = [round(r["seconds"], 3) for r in runs]
    out["best_seconds"] = round(ordered[0]["seconds"], 3)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["background_cpu_share"] = max(r["background_cpu_share"] for r in runs)
    if check is not None:
        out["tables_ok"] = [r["table"] for r in runs]
    return out


# ---------------------------------------------------------------- set-up helpers


def reset(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def link_landing(landing: Path, folder: str, files: list[Path]) -> list[tuple[str, str]]:
    """Symlink data files to landing/<bucket>/<folder>/<name>; return (bucket, key) refs."""
    refs = []
    for f in files:
        key = f"{folder}/{f.name}"
        dest = landing / BUCKET / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(f)
        refs.append((BUCKET, key))
    return refs


def write_route(routes: Path, name: str, folder: str, table: str,
                partition_by: list[str] | None = None) -> Path:
    routes.mkdir(parents=True, exist_ok=True)
    lines = [f"name: {name}", "source:", f"  bucket: {BUCKET}", f"  prefix: {folder}/",
             "target:", f"  table: {table}"]
    if partition_by:
        lines.append(f"  partition_by: {json.dumps(partition_by)}")
    lines.append("sql: SELECT * FROM source")
    path = routes / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sql_catalog_props(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "warehouse").mkdir(exist_ok=True)
    return {"uri": f"sqlite:///{(home / 'catalog.db').resolve()}",
            "warehouse": (home / "warehouse").resolve().as_uri()}


def result_schema(sample: Path, fmt: str):  # type: ignore[no-untyped-def]
    """The Arrow schema DuckDB gives ``SELECT * FROM <reader>(sample)``."""
    import duckdb

    con = duckdb.connect()
    try:
        sql = REFERENCE_SQL[fmt].format(s3_input_path=str(sample)) + " LIMIT 0"
        return con.execute(sql).fetch_arrow_table().schema
    finally:
        con.close()


def reference_setup(home: Path, table: str, sample: Path, fmt: str,
                    partition_day: str | None = None) -> dict[str, Any]:
    """The reference provisions no tables: create its table up front, with the schema DuckDB
    gives its query and pyiceberg's default properties (a fresh home per run)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.transforms import DayTransform

    if home.exists():
        shutil.rmtree(home)
    props = sql_catalog_props(home)
    catalog = SqlCatalog("reference", **props)
    catalog.create_namespace_if_not_exists(table.split(".")[0])
    tbl = catalog.create_table(table, schema=result_schema(sample, fmt))
    if partition_day:
        with tbl.update_spec() as update:
            update.add_field(partition_day, DayTransform(), f"{partition_day}_day")
    return {"catalog_name": "reference", "catalog_properties": props}


def lakeroute_catalog(home: Path) -> dict[str, Any]:
    from lakeroute.local import CATALOG_NAME

    # the layout local_catalog() uses: <home>/catalog.db + <home>/warehouse
    return {"catalog_name": CATALOG_NAME, "catalog_properties": sql_catalog_props(home)}


def table_stats(catalog: dict[str, Any], table: str, distinct: bool = True) -> dict[str, Any]:
    """Rows in the table (snapshot summary) and, with ``distinct``, a scan of event ids."""
    import pyarrow.compute as pc
    from pyiceberg.catalog.sql import SqlCatalog

    tbl = SqlCatalog(catalog["catalog_name"], **catalog["catalog_properties"]).load_table(table)
    snap = tbl.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    out: dict[str, Any] = {
        "rows": int(summary.get("total-records", 0)),
        "data_files": int(summary.get("total-data-files", 0)),
        "snapshots": len(tbl.snapshots()),
    }
    if distinct and snap is not None:
        ids = tbl.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
        out["scanned_rows"] = len(ids)
        out["distinct_event_ids"] = pc.count_distinct(ids).as_py()
    return out


def exact(t: dict[str, Any], expected: int) -> bool:
    return bool(t.get("rows") == expected and t.get("distinct_event_ids", expected) == expected
                and t.get("scanned_rows", expected) == expected)


def profiles_dir() -> Path:
    folder = WORK / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- scenarios


def scenario_small(opt: Options, files: list[Path]) -> dict[str, Any]:
    work = reset(WORK / "small")
    n, rows = opt.sizes.small_files, opt.sizes.small_rows
    refs = link_landing(work / "landing", "small", files[:n])
    write_route(work / "routes", "bench-small", "small", "bench.small")
    expected = n * rows

    def lr_spec(i: int) -> dict[str, Any]:
        home = reset(work / f"lakeroute-home-{i}")
        return {"routes": str(work / "routes"), "landing": str(work / "landing"),
                "home": str(home), "refs": refs}

    def lr_check(i: int, _: dict[str, Any]) -> dict[str, Any]:
        return table_stats(lakeroute_catalog(work / f"lakeroute-home-{i}"), "bench.small")

    log(f"small: lakeroute, {n} files in one ingest call")
    lr = repeated("lakeroute", lr_spec, opt.repeat, lr_check, "small: lakeroute")

    log(f"small: reference, {n} invocations (one commit each); takes a while")
    cat = reference_setup(work / "reference-home", "ref.small", files[0], "parquet")
    ref_spec = {**cat, "landing": str(work / "landing"), "refs": refs, "log": str(work / "reference.log"),
                "routing_table": {"small": {"target_table": "ref.small",
                                            "query_sql": REFERENCE_SQL["parquet"]}}}
    ref = run_child("reference", ref_spec)
    ref["table"] = table_stats(cat, "ref.small")

    if opt.profile:
        log("small: profiling lakeroute (pyinstrument)")
        run_child("lakeroute", {**lr_spec(99), "profile": str(profiles_dir() / "small-lakeroute.txt")})
        k = min(50, n)
        log(f"small: profiling the reference on {k} files (pyinstrument)")
        cat2 = reference_setup(work / "reference-home-profiled", "ref.small", files[0], "parquet")
        run_child("reference", {**ref_spec, **cat2, "refs": refs[:k],
                                "profile": str(profiles_dir() / f"small-reference-{k}.txt")})

    speedup = ref["seconds"] / lr["seconds"]
    return {
        "description": f"{n} Parquet files of ~{files[0].stat().st_size / 1000:.0f} KB "
                       f"({rows} rows each) into one table",
        "expected_rows": expected,
        "contenders": {"lakeroute": lr, "reference": ref},
        "metrics": {"speedup_vs_reference": round(speedup, 2),
                    "lakeroute_ms_per_file": round(lr["seconds"] / n * 1000, 1),
                    "reference_ms_per_file": round(ref["seconds"] / n * 1000, 1)},
        "targets": {"speedup_vs_reference >= 10": speedup >= 10},
        "correct": all(exact(t, expected) for t in lr["tables_ok"]),
    }


def _floor_comparison(opt: Options, name: str, description: str, src: Path, fmt: str,
                      arrow_bytes: int | None, expected_rows: int | None,
                      variants: list[tuple[str, list[str] | None]]) -> dict[str, dict[str, Any]]:
    work = reset(WORK / name)
    refs = link_landing(work / "landing", "big", [src])
    log(f"{name}: floor (pyarrow: read once, write once as zstd Parquet)")

    def floor_spec(_: int) -> dict[str, Any]:
        return {"input": str(src), "output": str(work / "floor.parquet"), "format": fmt}

    floor = repeated("floor", floor_spec, opt.repeat, label=f"{name}: floor")
    (work / "floor.parquet").unlink(missing_ok=True)
    expected = expected_rows if expected_rows is not None else floor["rows"]
    out: dict[str, dict[str, Any]] = {}
    home = work / "lakeroute-home"
    for suffix, partition_by in variants:
        label = name + suffix
        table = f"bench.{label}"
        routes = work / f"routes{suffix}"
        write_route(routes, f"bench-{label.replace('_', '-')}", "big", table, partition_by)
        how = f"partitioned by {', '.join(partition_by)}" if partition_by else "unpartitioned"

        def lr_spec(_: int, routes: Path = routes) -> dict[str, Any]:
            return {"routes": str(routes), "landing": str(work / "landing"), "home": str(reset(home)),
                    "refs": refs}

        def lr_check(_: int, __: dict[str, Any], table: str = table) -> dict[str, Any]:
            stats = table_stats(lakeroute_catalog(home), table, distinct=False)
            shutil.rmtree(home)
            return stats

        log(f"{label}: lakeroute ({how})")
        lr = repeated("lakeroute", lr_spec, opt.repeat, lr_check, f"{label}: lakeroute")
        contenders = {"floor": floor}
        if partition_by:
            col = partition_by[0].removeprefix("day(").removesuffix(")")
            log(f"{label}: partitioned floor (pyarrow.dataset.write_dataset by day)")

            def part_floor_spec(_: int, col: str = col) -> dict[str, Any]:
                out = work / "floor-partitioned"
                if out.exists():
                    shutil.rmtree(out)
                return {"input": str(src), "output": str(out), "format": fmt, "partition_day": col}

            contenders["floor_partitioned"] = repeated("floor", part_floor_spec, opt.repeat,
                                                       label=f"{label}: partitioned floor")
            shutil.rmtree(work / "floor-partitioned", ignore_errors=True)
        contenders["lakeroute"] = lr
        if opt.reference_large:
            log(f"{label}: reference (the whole file as one Arrow table, one append)")
            ref_home = work / "reference-home"
            cat = reference_setup(ref_home, f"ref.{label}", src, fmt, "ts" if partition_by else None)
            ref = run_child("reference", {
                **cat, "landing": str(work / "landing"), "refs": refs, "log": str(work / "reference.log"),
                "routing_table": {"big": {"target_table": f"ref.{label}", "query_sql": REFERENCE_SQL[fmt]}}})
            ref["table"] = table_stats(cat, f"ref.{label}", distinct=False)
            shutil.rmtree(ref_home)
            contenders["reference"] = ref
        if opt.profile:
            log(f"{label}: profiling lakeroute (pyinstrument)")
            run_child("lakeroute", {**lr_spec(0), "profile": str(profiles_dir() / f"{label}-lakeroute.txt")})
            shutil.rmtree(home)
        ratio = lr["seconds"] / floor["seconds"]
        metrics: dict[str, Any] = {"time_vs_floor": round(ratio, 3),
                                   "best_time_vs_best_floor": round(lr["best_seconds"] / floor["best_seconds"], 3),
                                   "lakeroute_peak_rss_mb": lr["peak_rss_mb"],
                                   "lakeroute_data_files": lr["table"]["data_files"],
                                   "input_mb": round(src.stat().st_size / 1e6, 1)}
        if "floor_partitioned" in contenders:
            metrics["time_vs_partitioned_floor"] = round(
                lr["seconds"] / contenders["floor_partitioned"]["seconds"], 3)
        if arrow_bytes:
            metrics["input_arrow_gib"] = round(arrow_bytes / GIB, 3)
        if "reference" in contenders:
            metrics["reference_time_vs_floor"] = round(contenders["reference"]["seconds"] / floor["seconds"], 3)
            metrics["reference_peak_rss_mb"] = contenders["reference"]["peak_rss_mb"]
        targets = {"time_vs_floor <= 1.2": ratio <= 1.2}
        if name == "large":
            targets["lakeroute_peak_rss_mb <= 1536 (1.5 GiB)"] = lr["peak_rss_mb"] <= 1536
        out[label] = {
            "description": f"{description}, {how}", "expected_rows": expected,
            "contenders": contenders, "metrics": metrics, "targets": targets,
            "correct": all(t["rows"] == expected for t in lr["tables_ok"]),
        }
    return out


def scenario_large(opt: Options) -> dict[str, dict[str, Any]]:
    sizes = opt.sizes
    src = data.large_parquet(sizes.large_rows, sizes.large_min_arrow_bytes)
    arrow_bytes = data.large_arrow_bytes(src)
    desc = (f"one Parquet file, {sizes.large_rows:,} rows, {src.stat().st_size / 1e6:.0f} MB on disk, "
            f"{arrow_bytes / GIB:.2f} GiB as Arrow")
    return _floor_comparison(opt, "large", desc, src, "parquet", arrow_bytes, sizes.large_rows,
                             [("", None), ("_partitioned", ["day(ts)"])])


def scenario_csv(opt: Options) -> dict[str, dict[str, Any]]:
    src = data.large_csv(opt.sizes.csv_min_bytes)
    desc = f"one CSV file, {src.stat().st_size / 2**20:.0f} MiB"
    return _floor_comparison(opt, "csv", desc, src, "csv", None, None, [("", None)])


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
    from lakeroute.core.tables import ensure_table
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


def _importtime(env: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """-X importtime of a cold-start child: self time summed per top-level package."""
    res = run_child("coldstart", spec, env=env, extra_args=["-X", "importtime"])
    per_package: dict[str, int] = {}
    lakeroute_modules: dict[str, int] = {}
    for line in res.pop("_stderr", "").splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        module = name.strip()
        top = module.split(".")[0]
        per_package[top] = per_package.get(top, 0) + int(self_us)
        if top == "lakeroute":
            lakeroute_modules[module] = int(cumulative_us)
    total = sum(per_package.values())
    top = sorted(per_package.items(), key=lambda kv: -kv[1])[:15]
    return {"note": "-X importtime inflates import times; compare shares, not absolute values",
            "total_import_seconds": round(total / 1e6, 3),
            "by_package_self_seconds": {k: round(v / 1e6, 3) for k, v in top},
            "lakeroute_modules_cumulative_seconds": {
                k: round(v / 1e6, 3) for k, v in sorted(lakeroute_modules.items(), key=lambda kv: -kv[1])}}


def scenario_coldstart(opt: Options, files: list[Path]) -> dict[str, Any]:
    """Each run: a fresh process creates the table with file A (the 'new table' case), then
    another fresh process ingests file B into it (the headline: a cold Lambda, table exists)."""
    work = reset(WORK / "coldstart")
    refs = link_landing(work / "landing", "cold", files[:2])
    write_route(work / "routes", "bench-cold", "cold", "bench.cold")

    def spec(home: str, ref: tuple[str, str]) -> dict[str, Any]:
        return {"routes": str(work / "routes"), "landing": str(work / "landing"),
                "home": str(work / home), "refs": [ref]}

    log("coldstart: warm-up (fills the bytecode cache, as compileall does in the image)")
    run_child("coldstart", spec("home-warmup", refs[0]))
    new_table, existing = [], []
    for i in range(max(3, opt.repeat)):
        log(f"coldstart: run {i + 1}")
        new_table.append(run_child("coldstart", spec(f"home-{i}", refs[0])))
        existing.append(run_child("coldstart", spec(f"home-{i}", refs[1])))
    log("coldstart: without bytecode (this dev environment's PYTHONDONTWRITEBYTECODE=1)")
    run_child("coldstart", spec("home-nopyc", refs[0]), env=child_env(bytecode=False))
    nopyc = run_child("coldstart", spec("home-nopyc", refs[1]), env=child_env(bytecode=False))
    log("coldstart: -X importtime")
    run_child("coldstart", spec("home-importtime", refs[0]))
    imports = _importtime(child_env(), spec("home-importtime", refs[1]))

    def med(runs: list[dict[str, Any]]) -> dict[str, Any]:
        ordered = sorted(runs, key=lambda r: r["spawn_to_done_seconds"])
        out = dict(ordered[(len(ordered) - 1) // 2])
        out["runs_spawn_to_done_seconds"] = [round(r["spawn_to_done_seconds"], 3) for r in runs]
        out["runs_process_wall_seconds"] = [r["process_wall_seconds"] for r in runs]
        return out

    head, new = med(existing), med(new_table)
    secs = head["spawn_to_done_seconds"]
    return {
        "description": "fresh process: import lakeroute.handler (+ pipeline, local), local pipeline, "
                       "ingest one small Parquet file into an existing table; seconds = process spawn "
                       "to ingest done (interpreter exit not included: a Lambda does not exit)",
        "contenders": {"lakeroute": head, "lakeroute_new_table": new, "lakeroute_no_bytecode": nopyc},
        "imports": imports,
        "metrics": {"spawn_to_done_seconds": round(secs, 3),
                    "new_table_spawn_to_done_seconds": round(new["spawn_to_done_seconds"], 3),
                    "no_bytecode_spawn_to_done_seconds": round(nopyc["spawn_to_done_seconds"], 3),
                    "process_wall_seconds_incl_exit": head["process_wall_seconds"],
                    **{f"phase_{k}": round(v, 3) for k, v in head["phases"].items()}},
        "targets": {"spawn_to_done_seconds <= 1": secs <= 1.0},
        "correct": head["rows"] == opt.sizes.small_rows,
    }


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    ram = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    return {"nproc": NPROC, "ram_gib": round(ram, 1), "cpu_model": cpu,
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("lakeroute", "duckdb", "duckdb-ext", "duckdb-ext-httpfs", "pyarrow", "pyiceberg",
                "pyiceberg-core", "sqlalchemy", "pyinstrument"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    return out


def print_table(results: dict[str, Any]) -> None:
    head = (f"{'scenario':<19}{'contender':<22}{'seconds':>9}{'best':>8}{'RSS MB':>8}{'rows':>12}"
            f"{'bg CPU':>8}  notes")
    lines = [head, "-" * len(head)]
    for name, sc in results.items():
        shown = name
        for cname, c in sc["contenders"].items():
            rows = c.get("table", {}).get("rows", c.get("rows"))
            notes = []
            if "lost_rows" in c:
                notes.append(f"{c['files_per_second']} files/s, lost {c['lost_rows']:,}, "
                             f"duplicated {c['duplicated_rows']:,}")
            if c.get("crashed_processes"):
                notes.append(f"{c['crashed_processes']} processes crashed: {'; '.join(c['crash_errors'])[:150]}")
            if c.get("failed_invocations"):
                notes.append(f"{c['failed_invocations']} failed invocations")
            if c.get("retry_sleeps"):
                notes.append(f"{c['retry_sleeps']} retry sleeps ({c['retry_sleep_seconds']:.0f} s)")
            if c.get("statuses") and set(c["statuses"]) != {"committed"}:
                notes.append(f"outcomes {c['statuses']}")
            seconds = c.get("spawn_to_done_seconds", c.get("seconds"))
            best = c.get("best_seconds")
            lines.append(
                f"{shown:<19}{cname:<22}{seconds:>9.2f}{'' if best is None else f'{best:.2f}':>8}"
                f"{c.get('peak_rss_mb', 0):>8.0f}{'-' if rows is None else f'{rows:,}':>12}"
                f"{c.get('background_cpu_share', 0) * 100:>7.0f}%  {'; '.join(notes)}")
            shown = ""
    lines += ["", f"{'scenario':<19}{'metric':<40}{'value':>10}  target", "-" * len(head)]
    for name, sc in results.items():
        shown = name
        targets = dict(sc.get("targets", {}))
        for metric, value in sc["metrics"].items():
            verdict = ""
            for t in list(targets):
                if t.split()[0] == metric:
                    verdict = f"{t}: {'met' if targets.pop(t) else 'MISSED'}"
            lines.append(f"{shown:<19}{metric:<40}{value!s:>10}  {verdict}")
            shown = ""
        for t, ok in targets.items():
            lines.append(f"{shown:<19}{'':<40}{'':>10}  {t}: {'met' if ok else 'MISSED'}")
    lines.append("")
    lines.append("seconds: median of the runs (reference: one run); best: fastest run; RSS: peak "
                 "of any run; bg CPU: share of the machine other processes used meanwhile")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of lakeroute and the floor per scenario (default 3; --quick: 1)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile lakeroute with pyinstrument: benchmarks/.work/profiles/")
    ap.add_argument("--no-reference-large", action="store_true",
                    help="skip the reference in the large and csv scenarios (no target there)")
    ap.add_argument("--cold-table", action="store_true",
                    help="concurrency: let the racing processes create the table (no provisioning)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (default benchmarks/results.json; --quick: .work/results-quick.json)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    sizes = data.Sizes.quick() if args.quick else data.Sizes()
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    opt = Options(sizes=sizes, repeat=max(1, repeat), profile=args.profile,
                  reference_large=not args.no_reference_large, cold_table=args.cold_table)
    out_path = args.out or (WORK / "results-quick.json" if args.quick else HERE / "results.json")
    WORK.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    small_set: list[Path] = []
    if any(s in only for s in ("small", "concurrency", "coldstart")):
        small_set = data.small_files(max(sizes.small_files, sizes.concurrency_procs * sizes.concurrency_files),
                                     sizes.small_rows)
    results: dict[str, Any] = {}
    for name in SCENARIOS:
        if name not in only:
            continue
        t = time.monotonic()
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
        log(f"{name}: done in {time.monotonic() - t:.0f} s")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for sc in results.values():
        sc["date"] = now

    print_table(results)
    previous: dict[str, Any] = {}
    if out_path.exists() and set(only) != set(SCENARIOS):
        try:
            previous = json.loads(out_path.read_text()).get("scenarios", {})
        except (OSError, ValueError):
            previous = {}
    doc = {
        "date": now, "machine": machine(), "versions": versions(),
        "options": {"only": only, "quick": args.quick, "repeat": opt.repeat, "profile": args.profile,
                    "reference_large": opt.reference_large, "cold_table": opt.cold_table},
        "sizes": asdict(sizes), "total_seconds": round(time.monotonic() - started, 1),
        "scenarios": {**previous, **results},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"wrote {out_path} ({time.monotonic() - started:.0f} s in all)")
    bad = [n for n, sc in results.items() if not sc.get("correct", True)]
    if bad:
        log(f"lakeroute lost or duplicated rows in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
