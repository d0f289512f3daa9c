"""The "Lambda" processes of the lane scenario (scenarios/lane.py): warm ingest workers and one
commit process, all on the moto server, with Glue latency injected.

    python lane_procs.py SPEC.json

The process imports what a warm container has imported (DuckDB, PyArrow, PyIceberg, boto3,
the handlers), injects the Glue latency, then forks one process per role in the spec
(``workers`` ingest processes, and with ``committer`` one commit process). Forked after the
imports, each pays no import of its own (as a warm Lambda), yet builds its own runtime
(clients, catalog, ledger) from its own environment. Each one:

- ingest worker: loops ``receive`` (up to ``batch`` messages from the standard ingest queue,
  gathering for at most ``window`` seconds, as Lambda's SQS poller with a batching window),
  calls ``lakeroute.handler.handler`` with the SQS event, deletes the messages it did not
  report as failures;
- committer: emulates Lambda's FIFO event source: receives up to 10 messages from the FIFO
  queue (moto delivers nothing of a message group while a message of that group is in flight,
  so a table's batches are one at a time), calls ``lakeroute.lane_handler.handler``, deletes
  the succeeded ones.

Both stop when ``<run>/stop`` appears. What they observe goes to ``<run>/<role>.jsonl`` (one
JSON object a line): ``receive`` (each message's object key, at pick-up), ``call`` (a handler
call: start, end, messages, failures), ``commit`` (each return of ``core.write.commit.commit``:
the time the snapshot became visible, its attempts and objects), ``lane`` (the commit
handler's per-table report: freshness, commits, retries) and ``glue`` (Glue calls made and
seconds slept, at exit). Observing wraps functions; it changes nothing they do.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

GLUE: dict[str, Any] = {"calls": {}, "slept": 0.0}


def preload() -> None:
    """The modules a warm container has imported (no threads started: safe to fork after)."""
    import boto3  # noqa: F401
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pyiceberg.catalog.glue  # noqa: F401
    import pyiceberg.io.pyarrow  # noqa: F401
    import pyiceberg.table  # noqa: F401
    from lakeroute import handler, lane_handler  # noqa: F401
    from lakeroute.aws import runtime  # noqa: F401
    from lakeroute.core.lane import committer  # noqa: F401
    from lakeroute.core.pipeline import ingest  # noqa: F401


def inject_glue_latency(per_call: float, update_table: float) -> None:
    """Every Glue call sleeps ``per_call`` seconds (UpdateTable ``update_table``) before it is
    made: real Glue's latency, which moto on this machine does not have."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if self._service_model.service_name == "glue":
            pause = update_table if operation_name == "UpdateTable" else per_call
            GLUE["calls"][operation_name] = GLUE["calls"].get(operation_name, 0) + 1
            GLUE["slept"] += pause
            time.sleep(pause)
        return real(self, operation_name, api_params)

    BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


class Context:
    """The parts of the Lambda context the handlers read."""

    memory_limit_in_mb = 2048

    def __init__(self, name: str, seconds: float) -> None:
        self.function_name = name
        self.aws_request_id = f"{name}-{time.monotonic_ns()}"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - time.monotonic()) * 1000)


class Log:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed at exit

    def __call__(self, kind: str, **fields: Any) -> None:
        self.f.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")


def observe_commits(log: Log) -> None:
    """Log every return of the pipeline's commit (the snapshot is visible from then on)."""
    from lakeroute.core.pipeline import ingest

    real = ingest.commit

    def commit(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            result = real(*args, **kwargs)
        except Exception as e:
            log("commit", start=start, end=time.time(), error=f"{type(e).__name__}: {e}"[:300])
            raise
        log("commit", start=start, end=time.time(), snapshot=result.snapshot_id, attempts=result.attempts,
            seconds=result.seconds, objects=[s.object_name for s in result.committed],
            duplicates=len(result.duplicates))
        return result

    ingest.commit = commit  # type: ignore[assignment]


class Profiled:
    """With the spec's ``profile``: each handler call of worker 0 and of the committer profiled
    (pyinstrument), one text file per call under ``<run>/profiles/``."""

    def __init__(self, spec: dict[str, Any], name: str) -> None:
        wanted = spec.get("profile") and name in ("ingest-0", "commit-0")
        self.folder = Path(spec["run"]) / "profiles" if wanted else None
        self.name, self.count = name, 0

    def __call__(self, fn: Any, *args: Any) -> Any:
        if self.folder is None:
            return fn(*args)
        from pyinstrument import Profiler

        self.folder.mkdir(exist_ok=True)
        self.count += 1
        profiler = Profiler(interval=0.002)
        profiler.start()
        try:
            return fn(*args)
        finally:
            profiler.stop()
            (self.folder / f"{self.name}-{self.count:03d}.txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False))


def records(messages: list[dict[str, Any]], queue_arn: str) -> list[dict[str, Any]]:
    """SQS messages as Lambda's event source hands them to the function."""
    return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
             "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1"}
            for m in messages]


def object_key(body: str) -> str | None:
    try:
        return unquote_plus(json.loads(body)["Records"][0]["s3"]["object"]["key"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def settle(sqs: Any, url: str, messages: list[dict[str, Any]], failed: set[str], retry_after: int) -> None:
    """Delete the succeeded messages; failed ones come back after ``retry_after`` seconds."""
    done = [m for m in messages if m["MessageId"] not in failed]
    for i in range(0, len(done), 10):
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i:i + 10])])
    for m in messages:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                          VisibilityTimeout=retry_after)


def ingest_worker(spec: dict[str, Any], run: Path, log: Log, stop: Path) -> None:
    import boto3
    from lakeroute import handler

    handler.get_runtime()  # this container's clients, catalog and ledger (cold start, untimed)
    sqs = boto3.client("sqs")
    url, arn = spec["ingest_url"], spec["ingest_arn"]
    profiled = Profiled(spec, "ingest-0" if run / "ingest-0.jsonl" == log.path else "")
    log("ready", pid=os.getpid(), t=time.time())
    while not stop.exists():
        got: list[dict[str, Any]] = []
        deadline = 0.0  # the batching window closes (set by the first message)
        while len(got) < spec["batch"] and not stop.exists():
            left = deadline - time.time()
            if got and left <= 0:
                break
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=spec["batch"] - len(got),
                                       WaitTimeSeconds=0 if got else 1, VisibilityTimeout=spec["visibility"],
                                       AttributeNames=["All"]).get("Messages", [])
            now = time.time()
            for m in msgs:
                log("receive", key=object_key(m["Body"]), t=now, id=m["MessageId"])
            if msgs and not got:
                deadline = now + spec["window"]
            got += msgs
            if not got:
                break  # nothing for a second: look at the stop file
            if not msgs:
                time.sleep(min(0.05, max(0.0, left)))
        if not got:
            continue
        start = time.time()
        response = profiled(handler.handler, {"Records": records(got, arn)},
                            Context("lakeroute-ingest", spec["lambda_seconds"]))
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        end = time.time()
        settle(sqs, url, got, failed, spec["retry_after"])
        log("call", start=start, end=end, messages=len(got), failed=len(failed),
            keys=[object_key(m["Body"]) for m in got if m["MessageId"] not in failed])


def committer(spec: dict[str, Any], run: Path, log: Log, stop: Path) -> None:
    import boto3
    from lakeroute import handler, lane_handler

    handler.get_runtime()
    publish = lane_handler.publish

    def capture(report: Any) -> None:  # the handler's own publishing, plus a copy for us
        commits = report.report.commits
        log("lane", t=time.time(), table=report.table, commits=report.commits, handoffs=report.handoffs,
            freshness=report.freshness, waiting=report.waiting,
            retries=sum(max(0, int(c.get("attempts", 1)) - 1) for c in commits),
            objects=report.report.count("committed"))
        publish(report)

    lane_handler.publish = capture  # type: ignore[assignment]
    sqs = boto3.client("sqs")
    url, arn = spec["lane_url"], spec["lane_arn"]
    profiled = Profiled(spec, "commit-0")
    log("ready", pid=os.getpid(), t=time.time())
    while not stop.exists():
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   VisibilityTimeout=spec["visibility"], AttributeNames=["All"]).get("Messages", [])
        if not msgs:
            continue
        groups = sorted({m.get("Attributes", {}).get("MessageGroupId", "") for m in msgs})
        start = time.time()
        response = profiled(lane_handler.handler, {"Records": records(msgs, arn)},
                            Context("lakeroute-commit", spec["lambda_seconds"]))
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        end = time.time()
        settle(sqs, url, msgs, failed, spec["retry_after"])
        log("call", start=start, end=end, messages=len(msgs), failed=len(failed), groups=groups)


def child(spec: dict[str, Any], role: str, index: int) -> int:
    run = Path(spec["run"])
    name = f"{role}-{index}"
    os.environ.update(spec["env"][role])
    tmp = run / "tmp" / name  # each "container" has its own /tmp
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["LAKEROUTE_TMP"] = str(tmp)
    log = Log(run / f"{name}.jsonl")
    observe_commits(log)
    code = 0
    try:
        (ingest_worker if role == "ingest" else committer)(spec, run, log, run / "stop")
    except BaseException:
        log("error", trace=traceback.format_exc())
        code = 1
    log("glue", calls=GLUE["calls"], slept=GLUE["slept"])
    return code


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    # Handler logs and EMF metrics go to this process's stdout (a file): as in Lambda, they cost.
    preload()
    inject_glue_latency(spec["glue_seconds"], spec["update_table_seconds"])
    roles = [("ingest", i) for i in range(spec["workers"])] + ([("commit", 0)] if spec["committer"] else [])
    pids = {}
    for role, i in roles:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(spec, role, i)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids[pid] = (role, i)
    failed = 0
    while pids:
        pid, status = os.wait()
        if pids.pop(pid, None) is not None and os.waitstatus_to_exitcode(status) != 0:
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
