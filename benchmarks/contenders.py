"""One contender run in its own process: ``python contenders.py KIND SPEC.json RESULT.json``.

run.py starts each contender as a child so that its peak RSS is its own (VmHWM, reported by
the child itself) and imports stay out of the timed work (except in the cold-start kind,
where they are the point). Only the standard library is imported at module level.

Kinds:
  lakeroute   one ``Pipeline.ingest`` call via ``local_pipeline`` over ``refs``
  cli_ingest  ``lakeroute ingest PATH --workers N`` (the CLI in-process, after the imports)
  reference   the reference handler (reference.py) once per ref, in sequence
  floor       pyarrow only: read the input, write the same rows once as zstd Parquet
  coldstart   a fresh process: import, set up, ingest one small file; phases timed
  maintenance the whole maintenance scenario (scenarios/maintenance.py: commits, maintain)
  pyiceberg_upsert     PyIceberg's ``Table.upsert`` of one Parquet object (read, then upsert)
  pyiceberg_overwrite  PyIceberg's ``Table.dynamic_partition_overwrite`` of one Parquet object

With ``barrier`` in the spec, the child signals ``<barrier>/ready-<id>`` after its imports
and waits for ``<barrier>/go`` before timing (concurrency runs start together).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import contextlib  # noqa: E402  (T0 first: the cold-start kind times every import)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _wait_barrier(spec: dict[str, Any]) -> None:
    barrier = spec.get("barrier")
    if not barrier:
        return
    folder = Path(barrier)
    (folder / f"ready-{spec['id']}").touch()
    go = folder / "go"
    deadline = time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier: no go signal after 600 s")
        time.sleep(0.005)


@contextlib.contextmanager
def _profiled(path: str | None):  # type: ignore[no-untyped-def]
    if not path:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        Path(path).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        Path(path).with_suffix(".html").write_text(profiler.output_html())


def _mark_start(spec: dict[str, Any]) -> float:
    """The start of the timed work, also written beside the result: a parent that stops this
    child (a time limit) still knows how long the timed work ran."""
    start = time.perf_counter()
    if spec.get("start_marker"):
        Path(spec["start_marker"]).write_text(repr(start))
    return start


def _preimport() -> None:
    """The heavy modules both contenders use, imported before timing (as a warm Lambda has)."""
    import duckdb  # noqa: F401
    import duckdb_ext  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pyiceberg.catalog.sql  # noqa: F401
    import pyiceberg.io.pyarrow  # noqa: F401
    import pyiceberg.table  # noqa: F401


def run_lakeroute(spec: dict[str, Any]) -> dict[str, Any]:
    _preimport()
    from lakeroute.core.pipeline import ObjectRef
    from lakeroute.local import LocalPaths, local_pipeline

    refs = [ObjectRef(b, k) for b, k in spec["refs"]]
    imported = time.perf_counter()
    _wait_barrier(spec)
    wall_start = time.time()
    start = _mark_start(spec)
    with _profiled(spec.get("profile")):
        pipe = local_pipeline(LocalPaths(Path(spec["routes"]), Path(spec["home"]),
                                         Path(spec["landing"])))
        # "batch": objects per ingest call (a Lambda's SQS batch), default all in one call
        step = int(spec.get("batch") or len(refs) or 1)
        report = pipe.ingest(refs[:step])
        for i in range(step, len(refs), step):
            more = pipe.ingest(refs[i:i + step])
            report.outcomes += more.outcomes
            report.commits += more.commits
    end = time.perf_counter()
    statuses: dict[str, int] = {}
    for o in report.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return {
        "seconds": end - start, "import_seconds": imported - T0, "wall_start": wall_start,
        "wall_end": time.time(), "files": len(refs), "rows": report.rows, "statuses": statuses,
        "commits": report.commits,
        "failures": [f"{o.ref.bucket}/{o.ref.key}: {o.message}" for o in report.failed][:10],
    }


def _timed_stage(*args: Any) -> Any:
    """``lakeroute.local.parallel._stage`` in a worker process, its wall and CPU time logged."""
    wall, cpu = time.perf_counter(), time.process_time()
    report = _REAL_STAGE[0](*args)
    with open(os.environ["BENCH_STAGERS_LOG"], "a") as f:
        f.write(json.dumps({"objects": len(args[1]), "wall": round(time.perf_counter() - wall, 3),
                            "cpu": round(time.process_time() - cpu, 3), "pid": os.getpid()}) + "\n")
    return report


_REAL_STAGE: list[Any] = []


def run_cli_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """``lakeroute ingest PATH --workers N`` in this process, as the console script runs it: the
    command imports DuckDB, PyArrow and PyIceberg when it needs them, inside the timed work
    (here only ``lakeroute.cli`` is imported first). Phases: the commit (``commit_all``, the
    committer's reading of the hand-offs and its commit) and the rest (process pool start and
    staging); each stager's wall and CPU time."""
    import io

    import lakeroute.local.parallel as parallel
    from lakeroute.cli import app

    _REAL_STAGE.append(parallel._stage)
    phases: dict[str, float] = {}
    real_commit_all = parallel.commit_all

    def commit_all(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_commit_all(*args, **kwargs)
        finally:
            phases["commit_all"] = phases.get("commit_all", 0.0) + time.perf_counter() - t

    parallel.commit_all = commit_all  # type: ignore[assignment]
    stagers = Path(spec["home"]).parent / f"{Path(spec['home']).name}.stagers.jsonl"
    stagers.unlink(missing_ok=True)
    os.environ["BENCH_STAGERS_LOG"] = str(stagers)
    parallel._stage = _timed_stage  # type: ignore[assignment]  (forked workers find it in __main__)
    argv = ["--routes", spec["routes"], "--home", spec["home"], "--landing", spec["landing"],
            "ingest", spec["path"], "--workers", str(spec["workers"])]
    out = io.StringIO()
    imported = time.perf_counter()
    start = _mark_start(spec)
    cpu_start = time.process_time()
    code = 0
    os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")  # as the console script
    with _profiled(spec.get("profile")), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rv = app(argv, standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except SystemExit as e:
            code = int(e.code or 0)
    end = time.perf_counter()
    lines = out.getvalue().splitlines()
    workers = [json.loads(ln) for ln in stagers.read_text().splitlines()] if stagers.exists() else []
    cpu = time.process_time() - cpu_start  # this process: setup, waiting, the committer
    return {"seconds": end - start, "import_seconds": imported - T0, "exit_code": code,
            "stagers": workers, "parent_cpu_seconds": round(cpu, 3),
            "summary": next((ln for ln in reversed(lines) if " ingested (" in ln), ""),
            "phases": {"commit_all": round(phases.get("commit_all", 0.0), 3),
                       "staging_and_setup": round(end - start - phases.get("commit_all", 0.0), 3)}}


def run_reference(spec: dict[str, Any]) -> dict[str, Any]:
    _preimport()  # a warm Lambda imported these at init
    import reference

    landing = Path(spec["landing"])
    env = reference.Environment(
        routing_table=spec["routing_table"],
        catalog_name=spec["catalog_name"],
        catalog_properties=spec["catalog_properties"],
        input_path=lambda bucket, key: str(landing / bucket / key),
    )
    imported = time.perf_counter()
    _wait_barrier(spec)
    wall_start = time.time()
    start = time.perf_counter()
    rows = 0
    failures: list[str] = []
    with _profiled(spec.get("profile")), open(spec["log"], "w") as log, \
            contextlib.redirect_stdout(log):
        for bucket, key in spec["refs"]:
            try:
                result = reference.lambda_handler(reference.s3_event(bucket, key), None, env)
                rows += result["rows"]
            except Exception as e:  # the invocation fails; in AWS, S3 would retry it async
                failures.append(f"{bucket}/{key}: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    end = time.perf_counter()
    return {
        "seconds": end - start, "import_seconds": imported - T0, "wall_start": wall_start,
        "wall_end": time.time(), "files": len(spec["refs"]), "rows": rows,
        "failed_invocations": len(failures), "failures": failures[:10],
        "retry_sleeps": len(env.sleeps), "retry_sleep_seconds": sum(env.sleeps),
    }


def run_floor_many(spec: dict[str, Any]) -> dict[str, Any]:
    """The small-files floor: a fresh process reads every input file with pyarrow and writes
    one zstd Parquet file (no catalog, no per-object work)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    imported = time.perf_counter()
    start = time.perf_counter()
    tables = [pq.read_table(p) for p in spec["inputs"]]
    tbl = pa.concat_tables(tables)
    pq.write_table(tbl, spec["output"], compression="zstd")
    end = time.perf_counter()
    return {"seconds": end - start, "import_seconds": imported - T0, "rows": tbl.num_rows,
            "files": len(spec["inputs"])}


def run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The physical floor: stream the input once into one zstd Parquet file, no catalog.

    Parquet input is read row group by row group (the fastest streaming read measured here);
    CSV input streams through pyarrow.csv.open_csv. Output: pyarrow's defaults plus zstd.
    With ``partition_day``: the same rows written by day of that column with
    pyarrow.dataset.write_dataset (hive folders), the physical work of a day(ts) table.
    """
    import pyarrow.parquet as pq

    src, out = spec["input"], spec["output"]
    imported = time.perf_counter()
    start = time.perf_counter()
    rows = 0
    if spec.get("partition_day"):  # the same rows, written by day like the partitioned table
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        col = spec["partition_day"]
        f = pq.ParquetFile(src)
        day = f"{col}_day"
        schema = f.schema_arrow.append(pa.field(day, pa.date32()))

        def batches():  # type: ignore[no-untyped-def]
            nonlocal rows
            for i in range(f.num_row_groups):
                t = f.read_row_group(i)
                rows += t.num_rows
                yield from t.append_column(day, pc.cast(t.column(col), pa.date32())).to_batches()

        ds.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), out, format="parquet",
                         partitioning=ds.partitioning(pa.schema([(day, pa.date32())]), flavor="hive"),
                         file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
                         existing_data_behavior="overwrite_or_ignore", max_rows_per_group=1 << 20)
    elif spec["format"] == "parquet":
        f = pq.ParquetFile(src)
        with pq.ParquetWriter(out, f.schema_arrow, compression="zstd") as w:
            for i in range(f.num_row_groups):
                t = f.read_row_group(i)
                rows += t.num_rows
                w.write_table(t)
    else:
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=16 << 20))
        with pq.ParquetWriter(out, reader.schema, compression="zstd") as w:
            for batch in reader:
                rows += batch.num_rows
                w.write_batch(batch)
    end = time.perf_counter()
    outputs = [Path(out)] if Path(out).is_file() else list(Path(out).rglob("*.parquet"))
    return {"seconds": end - start, "import_seconds": imported - T0, "rows": rows,
            "output_files": len(outputs), "output_bytes": sum(p.stat().st_size for p in outputs)}


def run_coldstart(spec: dict[str, Any]) -> dict[str, Any]:
    import importlib.util

    phases: dict[str, float] = {"interpreter_to_main": T0 - spec.get("spawned_perf", T0)}
    t = time.perf_counter()
    handler = "absent"
    if importlib.util.find_spec("lakeroute.handler") is not None:
        try:
            import lakeroute.handler  # noqa: F401

            handler = "imported"
        except Exception as e:  # report, do not hide: the handler may need AWS settings
            handler = f"import failed: {type(e).__name__}: {e}"
    phases["import_handler"] = time.perf_counter() - t
    t = time.perf_counter()
    from lakeroute.core.pipeline import ObjectRef
    from lakeroute.local import LocalPaths, local_pipeline

    phases["import_pipeline_local"] = time.perf_counter() - t
    t = time.perf_counter()
    pipe = local_pipeline(LocalPaths(Path(spec["routes"]), Path(spec["home"]), Path(spec["landing"])))
    phases["setup_local_pipeline"] = time.perf_counter() - t
    t = time.perf_counter()
    report = pipe.ingest([ObjectRef(b, k) for b, k in spec["refs"]])
    phases["ingest_one_file"] = time.perf_counter() - t
    done = time.perf_counter()
    return {"seconds": done - T0, "spawn_to_done_seconds": done - spec.get("spawned_perf", T0),
            "phases": phases, "handler": handler, "rows": report.rows,
            "statuses": [o.status for o in report.outcomes]}


def run_maintenance(spec: dict[str, Any]) -> dict[str, Any]:
    from scenarios.maintenance import child

    return child(spec)


def run_pyiceberg_write(spec: dict[str, Any], how: str) -> dict[str, Any]:
    """PyIceberg's own write API on the table: the object read with pyarrow, then one call."""
    _preimport()
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    imported = time.perf_counter()
    start = _mark_start(spec)
    with _profiled(spec.get("profile")):
        table = SqlCatalog(spec["catalog_name"], **spec["catalog_properties"]).load_table(spec["table"])
        df = pq.read_table(spec["input"])
        extra: dict[str, Any] = {}
        if how == "upsert":
            r = table.upsert(df, join_cols=spec["join_cols"])
            extra = {"rows_updated": r.rows_updated, "rows_inserted": r.rows_inserted}
        else:
            table.dynamic_partition_overwrite(df)
    end = time.perf_counter()
    return {"seconds": end - start, "import_seconds": imported - T0, "rows": df.num_rows, **extra}


KINDS = {"lakeroute": run_lakeroute, "cli_ingest": run_cli_ingest, "reference": run_reference, "floor": run_floor,
         "floor_many": run_floor_many,
         "coldstart": run_coldstart, "maintenance": run_maintenance,
         "pyiceberg_upsert": lambda spec: run_pyiceberg_write(spec, "upsert"),
         "pyiceberg_overwrite": lambda spec: run_pyiceberg_write(spec, "overwrite")}


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), in MB.

    Not ``ru_maxrss`` from the parent's wait4: Linux carries the pre-exec (forked parent's)
    high-water mark into the child's maxrss, so a child would never report less than its parent.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    kind, spec_path, result_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    result = KINDS[kind](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
