"""lane: the commit lane at scale on moto's server, against the same topology without it.

The deployed topology, emulated: S3 notifications into a standard ingest queue, N warm ingest
"Lambdas" (processes, ``lane_procs.py``) each looping receive a batch of 10 -> the real
``lakeroute.handler.handler`` -> delete the succeeded messages; with the lane, one commit
process emulating Lambda's FIFO event source over the lane queue (``lakeroute.lane_handler``).
All into ONE table, on moto's server with the project's VersionId-enforcing Glue
(``tests/support/moto_glue_locking.py``), Glue latency injected in every process that runs
lakeroute (100 ms per call, 200 ms per UpdateTable). The baseline is the same topology without
the lane: every ingest call commits its own batch (as before the lane).

Per run (mode, N, rows per object) a fresh moto state (reset), a fresh table, fresh processes;
measured from the first object put to the last object visible:
  objects/s; commits and retries per commit (every return of the pipeline's commit, in every
  process); CPU of the ingest workers, the committer and moto as a share of the machine (from
  /proc/<pid>/stat); pick-up (an ingest worker received the message) to visible (the commit
  that holds it returned) p50/p99; lost and duplicated objects, from the table read at the end.

Targets (reported, never asserted): objects/s grows with every doubling of N up to 16 and at
16 is >= 3x N = 1 (same run, same size); <= 0.1 retries per commit; p99 pick-up to visible
<= 15 s; 0 lost, 0 duplicated.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import data
from harness import HERE, NPROC, WORK, Options, busy_cpu_seconds, child_env, log, reset

REPO = HERE.parent
LANDING, WAREHOUSE, QUARANTINE = "lb-landing", "lb-warehouse", "lb-quarantine"
ROUTES_TABLE, LEDGER_TABLE = "lb-routes", "lb-ledger"
TABLE = "bench.lane"
PREFIX = "in/"
ROUTE = """name: lane-bench
source: {bucket: lb-landing, prefix: in/, pattern: "*.parquet"}
target:
  table: bench.lane
  columns: {event_id: long, ts: timestamptz, user_id: long, amount: double, category: string,
            country: string, payload: string}
sql: SELECT * FROM source
"""
GLUE_SECONDS, UPDATE_TABLE_SECONDS = 0.1, 0.2
LAMBDA_SECONDS = 300  # the dev stage's function timeout, for both functions
BATCH, WINDOW = 10, 1.0  # objects per ingest call; the poller's batching window (seconds)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 2)


def _fifo_check(sqs: Any) -> dict[str, Any]:
    """Does moto hold back a message group while one of its messages is in flight (as Lambda's
    FIFO event source relies on)? Two messages of one group: receive one, then try again."""
    url = sqs.create_queue(QueueName="lb-probe.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=str(i), MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60).get("Messages", [])
    while_in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          VisibilityTimeout=60).get("Messages", [])
    for m in first:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    after = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
    sqs.delete_queue(QueueUrl=url)
    return {"first": len(first), "while_in_flight": len(while_in_flight), "after_delete": len(after),
            "group_held_while_in_flight": len(first) == 1 and not while_in_flight and len(after) == 1}


class World:
    """The moto server and one run's resources on it."""

    def __init__(self, work: Path) -> None:
        sys.path.insert(0, str(REPO))
        from tests.support.moto_server import aws_env, start_moto_server

        self.moto = start_moto_server()
        self.env = {**aws_env(self.moto.endpoint)}
        self.work = work

    def close(self) -> None:
        self.moto.stop()

    def setup(self, run: Path) -> dict[str, str]:
        """Fresh moto state: buckets, tables, queues, the notification, the route and its table."""
        import boto3
        from lakeroute.core.routes import load_routes
        from lakeroute.sync import sync_aws

        from tests.support.moto_server import reset as moto_reset

        moto_reset(self.moto.endpoint)
        s3, sqs, ddb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
        for b in (LANDING, WAREHOUSE, QUARANTINE):
            s3.create_bucket(Bucket=b)
        for name, keys in ((ROUTES_TABLE, ("bucket", "name")), (LEDGER_TABLE, ("pk", "sk"))):
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": k, "KeyType": t}
                                        for k, t in zip(keys, ("HASH", "RANGE"), strict=False)],
                             AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys])
        urls = {}
        for role, name, attrs in (("ingest", "lb-ingest", {}), ("lane", "lb-commit.fifo", {"FifoQueue": "true"})):
            url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
            urls[f"{role}_url"] = url
            urls[f"{role}_arn"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=LANDING, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": urls["ingest_arn"], "Events": ["s3:ObjectCreated:*"]}]})
        while msgs := sqs.receive_message(QueueUrl=urls["ingest_url"], MaxNumberOfMessages=10).get("Messages"):
            for m in msgs:  # moto's s3:TestEvent
                sqs.delete_message(QueueUrl=urls["ingest_url"], ReceiptHandle=m["ReceiptHandle"])
        routes = run / "routes"
        routes.mkdir()
        (routes / "lane-bench.yaml").write_text(ROUTE)
        sync_aws(load_routes(routes), ROUTES_TABLE, f"s3://{WAREHOUSE}/wh")
        return urls

    def handler_env(self) -> dict[str, str]:
        return {**self.env, "LAKEROUTE_ROUTES_TABLE": ROUTES_TABLE, "LAKEROUTE_LEDGER_TABLE": LEDGER_TABLE,
                "LAKEROUTE_WAREHOUSE": f"s3://{WAREHOUSE}/wh", "LAKEROUTE_QUARANTINE": f"s3://{QUARANTINE}/q",
                "POWERTOOLS_METRICS_NAMESPACE": "lakeroute-bench", "POWERTOOLS_LOG_LEVEL": "INFO"}


def _read_logs(run: Path, offsets: dict[Path, int], events: list[dict[str, Any]]) -> None:
    """New complete lines of every ``<role>.jsonl``, tagged with their file's role."""
    for path in run.glob("*.jsonl"):
        with open(path, "rb") as f:
            f.seek(offsets.get(path, 0))
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        offsets[path] = offsets.get(path, 0) + end
        for line in chunk[:end].splitlines():
            events.append({**json.loads(line), "who": path.stem})


def _visible(events: list[dict[str, Any]]) -> dict[str, float]:
    seen: dict[str, float] = {}
    for e in events:
        if e["kind"] == "commit" and "objects" in e:
            for name in e["objects"]:
                key = name.split("/", 1)[1]
                seen[key] = min(seen.get(key, e["end"]), e["end"])
    return seen


def one_run(world: World, mode: str, workers: int, rows: int, files: list[Path], run: Path,
            commit_defaults: dict[str, float] | None, profile: bool = False, batch: int = BATCH) -> dict[str, Any]:
    n = len(files)
    with _environ(world.env):
        urls = world.setup(run)
    env = world.handler_env()
    lane_env = {"LAKEROUTE_LANE": f"s3://{WAREHOUSE}/lane"}
    commit_env = {**env, **lane_env}
    if commit_defaults:
        commit_env["LAKEROUTE_COMMIT_DEFAULTS"] = json.dumps(commit_defaults)
    ingest_env = {**env, **lane_env, "LAKEROUTE_LANE_QUEUE": urls["lane_url"]} if mode == "lane" else env
    spec = {"run": str(run), "workers": workers, "committer": mode == "lane", **urls,
            "batch": batch, "window": WINDOW, "visibility": LAMBDA_SECONDS + 60, "retry_after": 5,
            "lambda_seconds": LAMBDA_SECONDS, "profile": profile,
            "glue_seconds": GLUE_SECONDS, "update_table_seconds": UPDATE_TABLE_SECONDS,
            "env": {"ingest": ingest_env, "commit": commit_env}}
    (run / "spec.json").write_text(json.dumps(spec, indent=2))
    bodies = [f.read_bytes() for f in files]
    with open(run / "stdout.log", "wb") as out, open(run / "stderr.log", "wb") as err:
        pool = subprocess.Popen([sys.executable, str(HERE / "lane_procs.py"), str(run / "spec.json")],
                                env={**child_env(), **world.env}, stdout=out, stderr=err, start_new_session=True)
    events: list[dict[str, Any]] = []
    offsets: dict[Path, int] = {}
    roles = workers + (1 if mode == "lane" else 0)
    started = time.monotonic()
    while sum(1 for e in events if e["kind"] == "ready") < roles:
        if pool.poll() is not None or time.monotonic() - started > 180:
            raise RuntimeError(f"lane {mode} N={workers}: processes not ready ({run / 'stderr.log'})")
        time.sleep(0.1)
        _read_logs(run, offsets, events)
    pids = {e["who"]: e["pid"] for e in events if e["kind"] == "ready"}
    pids["moto"] = world.moto.process.pid
    ticks = os.sysconf("SC_CLK_TCK")
    cpu0 = {who: _cpu_ticks(pid) for who, pid in pids.items()}
    busy0 = busy_cpu_seconds()
    driver0 = time.process_time()

    import boto3

    with _environ(world.env):
        s3 = boto3.client("s3")
        t0 = time.time()
        for i, body in enumerate(bodies):
            s3.put_object(Bucket=LANDING, Key=f"{PREFIX}{i:04d}.parquet", Body=body)
        put_seconds = time.time() - t0
    last_progress, done = time.time(), 0
    while True:
        time.sleep(0.25)
        _read_logs(run, offsets, events)
        seen = len(_visible(events))
        if seen > done:
            done, last_progress = seen, time.time()
        if done >= n or time.time() - last_progress > 90 or time.time() - t0 > 600 or pool.poll() is not None:
            break
    detected = time.time()
    cpu1 = {who: _cpu_ticks(pid) for who, pid in pids.items()}
    busy1 = busy_cpu_seconds()
    driver1 = time.process_time()
    (run / "stop").touch()
    try:
        pool.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(pool.pid, signal.SIGKILL)
        pool.wait()
    _read_logs(run, offsets, events)
    with _environ(world.env):
        table = _table_check(rows, n)

    visible = _visible(events)
    pickup: dict[str, float] = {}
    for e in events:
        if e["kind"] == "receive" and e.get("key"):
            pickup[e["key"]] = min(pickup.get(e["key"], e["t"]), e["t"])
    latency = [visible[k] - pickup[k] for k in visible if k in pickup]
    # Where the latency goes: pick-up to the end of the ingest call that staged (or, without
    # the lane, committed) the object, and from there to visible (the lane's own share).
    called: dict[str, float] = {}
    for e in events:
        if e["kind"] == "call" and e["who"].startswith("ingest"):
            for k in e.get("keys", []):
                called[k] = min(called.get(k, e["end"]), e["end"])
    in_call = [called[k] - pickup[k] for k in visible if k in pickup and k in called]
    after_call = [max(0.0, visible[k] - called[k]) for k in visible if k in called]
    end = max(visible.values()) if visible else detected
    seconds = end - t0
    window = detected - t0
    commits = [e for e in events if e["kind"] == "commit" and e.get("snapshot") is not None]
    errors = [e for e in events if e["kind"] == "commit" and "error" in e]
    retries = sum(e["attempts"] - 1 for e in commits)
    calls = {role: [e for e in events if e["kind"] == "call" and e["who"].startswith(role)]
             for role in ("ingest", "commit")}
    lane_reports = [e for e in events if e["kind"] == "lane"]
    glue: dict[str, int] = {}
    for e in events:
        if e["kind"] == "glue":
            for op, c in e["calls"].items():
                glue[op] = glue.get(op, 0) + c

    def share(prefix: str) -> float:
        used = sum(cpu1[w] - cpu0[w] for w in pids if w.startswith(prefix)) / ticks
        return round(used / (window * NPROC), 3)

    ours = sum(cpu1[w] - cpu0[w] for w in pids) / ticks + (driver1 - driver0)

    def per_object(prefix: str) -> float:
        used = sum(cpu1[w] - cpu0[w] for w in pids if w.startswith(prefix)) / ticks
        return round(used / max(1, len(visible)) * 1000, 1)

    out: dict[str, Any] = {
        "mode": mode, "workers": workers, "rows_per_object": rows, "objects": n, "batch": batch,
        "seconds": round(seconds, 2), "objects_per_second": round(len(visible) / seconds, 2) if seconds > 0 else 0.0,
        "put_seconds": round(put_seconds, 2),
        "commits": len(commits), "retries": retries,
        "retries_per_commit": round(retries / len(commits), 2) if commits else None,
        "failed_commits": len(errors), "objects_per_commit": round(len(visible) / len(commits), 1) if commits else None,
        "latency_p50": _pct(latency, 0.5), "latency_p99": _pct(latency, 0.99), "latency_max": _pct(latency, 1.0),
        "pickup_to_call_end_p50": _pct(in_call, 0.5), "pickup_to_call_end_p99": _pct(in_call, 0.99),
        "call_end_to_visible_p50": _pct(after_call, 0.5), "call_end_to_visible_p99": _pct(after_call, 0.99),
        "cpu_share": {"ingest_workers": share("ingest"), "committer": share("commit"), "moto": share("moto"),
                      "driver": round((driver1 - driver0) / (window * NPROC), 3),
                      "others": round(max(0.0, busy1 - busy0 - ours) / (window * NPROC), 3)},
        "cpu_ms_per_object": {"ingest_workers": per_object("ingest"), "committer": per_object("commit"),
                              "moto": per_object("moto")},
        "ingest_calls": len(calls["ingest"]),
        "ingest_call_p50": _pct([c["end"] - c["start"] for c in calls["ingest"]], 0.5),
        "ingest_call_p99": _pct([c["end"] - c["start"] for c in calls["ingest"]], 0.99),
        "messages_per_call": round(statistics.mean(c["messages"] for c in calls["ingest"]), 1)
        if calls["ingest"] else None,
        "failed_messages": sum(c["failed"] for c in calls["ingest"] + calls["commit"]),
        "commit_calls": len(calls["commit"]),
        "glue_calls": glue, "visible": len(visible), "table": table,
        "lost_objects": table["lost_objects"], "duplicated_objects": table["duplicated_objects"],
        "committed_twice": sum(1 for e in commits for _ in e["objects"]) - len(visible),
    }
    if lane_reports:
        fresh = [f for r in lane_reports for f in r["freshness"]]
        out["lane_freshness_p50"] = _pct(fresh, 0.5)
        out["lane_freshness_p99"] = _pct(fresh, 0.99)
        out["lane_retries"] = sum(r["retries"] for r in lane_reports)
    if commit_defaults:
        out["commit_defaults"] = commit_defaults
    problems = [e["trace"].strip().splitlines()[-1] for e in events if e["kind"] == "error"]
    if problems:
        out["process_errors"] = problems[:5]
    return out


def _table_check(rows: int, n: int) -> dict[str, Any]:
    """Objects whose rows are all in the table once (each object holds event ids
    [i * rows, (i + 1) * rows)): lost = none of its rows, duplicated = any row twice."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from lakeroute.aws.catalog import glue_catalog

    tbl = glue_catalog(f"s3://{WAREHOUSE}/wh").load_table(TABLE)
    ids = tbl.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    per_object = pc.value_counts(pc.divide(ids, pa.scalar(rows, pa.int64()))).to_pylist()
    counts = {int(v["values"]): int(v["counts"]) for v in per_object}
    return {"rows": len(ids), "distinct_event_ids": pc.count_distinct(ids).as_py(),
            "snapshots": len(tbl.snapshots()),
            "lost_objects": sum(1 for i in range(n) if counts.get(i, 0) == 0),
            "partial_objects": sum(1 for i in range(n) if 0 < counts.get(i, 0) < rows),
            "duplicated_objects": sum(1 for c in counts.values() if c > rows)}


def _line(r: dict[str, Any]) -> str:
    c = r["cpu_share"]
    return (f"{r['mode']:<8} N={r['workers']:<2} {r['rows_per_object']:>5} rows: {r['objects_per_second']:6.2f} obj/s "
            f"in {r['seconds']:6.1f} s, {r['commits']:3d} commits, {r['retries_per_commit']} retries/commit, "
            f"p50/p99 {r['latency_p50']}/{r['latency_p99']} s (in the ingest call p99 {r['pickup_to_call_end_p99']}, "
            f"after it {r['call_end_to_visible_p99']}), lost {r['lost_objects']}, "
            f"dup {r['duplicated_objects']}; CPU ingest {c['ingest_workers']:.0%} committer {c['committer']:.0%} "
            f"moto {c['moto']:.0%} others {c['others']:.0%}")


def scenario_lane(opt: Options) -> dict[str, Any]:
    sizes = opt.sizes
    work = reset(WORK / "lane")
    n = sizes.lane_objects
    plan: list[tuple[str, int, int]] = []
    for rows in sizes.lane_rows:
        for w in sizes.lane_workers:
            plan.append(("lane", w, rows))
            if w in sizes.lane_baseline_workers:
                plan.append(("baseline", w, rows))
    commit_defaults = {"max_seconds": opt.lane_max_seconds} if opt.lane_max_seconds is not None else None
    log(f"lane: {len(plan)} runs of {n} objects on moto (Glue +{GLUE_SECONDS * 1000:.0f} ms per call, "
        f"UpdateTable +{UPDATE_TABLE_SECONDS * 1000:.0f} ms); commit triggers {commit_defaults or 'defaults'}")
    load_before = os.getloadavg()
    world = World(work)
    runs: list[dict[str, Any]] = []
    try:
        with _environ(world.env):
            import boto3

            fifo = _fifo_check(boto3.client("sqs"))
        log(f"lane: moto FIFO holds a group while a message is in flight: {fifo['group_held_while_in_flight']}")
        for i, (mode, w, rows) in enumerate(plan):
            files = data.small_files(n, rows, name="lane")
            run = reset(work / f"{i:02d}-{mode}-{w}-{rows}")
            with contextlib.redirect_stdout(io.StringIO()):
                r = one_run(world, mode, w, rows, files, run, commit_defaults, opt.profile, opt.lane_batch or BATCH)
            r["load_before"] = round(os.getloadavg()[0], 1)
            log("lane: " + _line(r))
            runs.append(r)
    finally:
        world.close()
    load_after = os.getloadavg()
    return summarize(runs, n, fifo, load_before, load_after, commit_defaults)


def summarize(runs: list[dict[str, Any]], n: int, fifo: dict[str, Any], load_before: tuple[float, ...],
              load_after: tuple[float, ...], commit_defaults: dict[str, float] | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    targets: dict[str, bool] = {}
    for rows in sorted({r["rows_per_object"] for r in runs}):
        lane = sorted((r for r in runs if r["mode"] == "lane" and r["rows_per_object"] == rows),
                      key=lambda r: r["workers"])
        base = {r["workers"]: r for r in runs if r["mode"] == "baseline" and r["rows_per_object"] == rows}
        if not lane:
            continue
        tag = f"{rows}rows"
        rates = [r["objects_per_second"] for r in lane]
        lo, hi = lane[0], lane[-1]
        scale = round(hi["objects_per_second"] / lo["objects_per_second"], 2) if lo["objects_per_second"] else 0.0
        metrics[f"lane_{tag}_objects_per_second"] = {r["workers"]: r["objects_per_second"] for r in lane}
        metrics[f"lane_{tag}_N{hi['workers']}_vs_N{lo['workers']}"] = scale
        for w, b in sorted(base.items()):
            metrics[f"baseline_{tag}_N{w}_objects_per_second"] = b["objects_per_second"]
            match = next((r for r in lane if r["workers"] == w), None)
            if match and b["objects_per_second"]:
                ratio = match["objects_per_second"] / b["objects_per_second"]
                metrics[f"lane_vs_baseline_{tag}_N{w}"] = round(ratio, 2)
        retries = max((r["retries_per_commit"] or 0) for r in lane)
        p99 = max((r["latency_p99"] or 0) for r in lane)
        metrics[f"lane_{tag}_max_retries_per_commit"] = retries
        metrics[f"lane_{tag}_max_p99_latency_s"] = p99
        targets[f"lane_{tag}_grows_with_every_doubling"] = all(b > a for a, b in zip(rates, rates[1:], strict=False))
        targets[f"lane_{tag}_N{hi['workers']}_vs_N{lo['workers']} >= 3"] = scale >= 3
        targets[f"lane_{tag}_max_retries_per_commit <= 0.1"] = retries <= 0.1
        targets[f"lane_{tag}_max_p99_latency_s <= 15"] = p99 <= 15
    lost = sum(r["lost_objects"] + r["table"]["partial_objects"] for r in runs if r["mode"] == "lane")
    dup = sum(r["duplicated_objects"] for r in runs if r["mode"] == "lane")
    metrics["lane_lost_objects"], metrics["lane_duplicated_objects"] = lost, dup
    targets["lane_lost_objects == 0"] = lost == 0
    targets["lane_duplicated_objects == 0"] = dup == 0
    contenders = {f"{r['mode']}-N{r['workers']}-{r['rows_per_object']}rows":
                  {**r, "peak_rss_mb": 0, "background_cpu_share": r["cpu_share"]["others"]} for r in runs}
    return {
        "description": f"{n} objects per run into one table on moto's server (VersionId-enforcing Glue, "
                       f"+{GLUE_SECONDS * 1000:.0f} ms per Glue call, +{UPDATE_TABLE_SECONDS * 1000:.0f} ms per "
                       f"UpdateTable), N warm ingest processes pulling batches of up to "
                       f"{runs[0]['batch'] if runs else BATCH}; lane: one commit process "
                       "on the FIFO lane queue; baseline: each ingest call commits",
        "ingest_batch": runs[0]["batch"] if runs else BATCH, "fifo_check": fifo,
        "commit_defaults": commit_defaults or "code defaults (core.lane.triggers)",
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in load_after],
        "contenders": contenders, "metrics": metrics, "targets": targets,
        "correct": lost == 0 and dup == 0,
    }
