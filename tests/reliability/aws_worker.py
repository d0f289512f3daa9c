"""Lambda-like worker processes for the AWS reliability tests (real handler, moto server).

usage: python -m tests.reliability.aws_worker RUN_DIR N

RUN_DIR holds ``event-<i>.json`` for i in 0..N-1 (each an SQS event). This process imports
the handler's heavy modules once (DuckDB, PyArrow, PyIceberg, boto3: ~1.3 s per process,
which 32 separate interpreters would pay one after the other on 2 cores), then forks N
worker processes. Each worker is its own container: it builds the handler's runtime from the
environment (``aws_env(endpoint)`` and the ``LAKEROUTE_*`` variables: its own clients,
catalog and ledger), touches ``ready-<i>``, waits for ``RUN_DIR/go``, calls
``handler(event, context)`` once, and writes ``result-<i>.json``: the handler's response,
every object's outcome and the commit figures of the pipeline's report (attempts, seconds).
Nothing is shared between workers but the moto server. This process exits 0 when every
worker did.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lakeroute import handler as lambda_handler


class Context:
    """The parts of the Lambda context the handler reads."""

    aws_request_id = "reliability"
    function_name = "lakeroute-ingest"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lakeroute-ingest"

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - time.monotonic()) * 1000)


def preload() -> None:
    """The modules a warm container has imported (no threads started: safe to fork after)."""
    import boto3  # noqa: F401
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pyiceberg.catalog.glue  # noqa: F401
    import pyiceberg.io.pyarrow  # noqa: F401
    import pyiceberg.table  # noqa: F401
    from lakeroute.aws import runtime  # noqa: F401
    from lakeroute.core import pipeline  # noqa: F401


def worker(run: Path, i: int) -> dict[str, Any]:
    event = json.loads((run / f"event-{i}.json").read_text(encoding="utf-8"))
    reports: list[Any] = []
    publish = lambda_handler.publish

    def capture(report: Any) -> None:  # the handler's own publishing, plus a copy for us
        reports.append(report)
        publish(report)

    lambda_handler.publish = capture  # type: ignore[assignment]
    lambda_handler.get_runtime()  # this container's clients, catalog and ledger
    (run / f"ready-{i}").touch()
    while not (run / "go").exists():
        time.sleep(0.005)
    start = time.monotonic()
    response = lambda_handler.handler(event, Context(float(os.environ.get("WORKER_LAMBDA_SECONDS", "300"))))
    seconds = time.monotonic() - start
    outcomes = [o for r in reports for o in r.outcomes]
    return {
        "response": response,
        "statuses": [o.status for o in outcomes],
        "messages": [o.message for o in outcomes if o.status != "committed"],
        "commits": [c for r in reports for c in r.commits],
        "seconds": round(seconds, 4),
    }


def main(argv: list[str]) -> int:
    run, n = Path(argv[0]), int(argv[1])
    preload()
    pids = {}
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 0
            try:
                result = worker(run, i)
            except BaseException:
                result, code = {"error": traceback.format_exc()}, 1
            tmp = run / f"result-{i}.json.tmp"
            tmp.write_text(json.dumps(result), encoding="utf-8")
            tmp.rename(run / f"result-{i}.json")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        pids[pid] = i
    failed = 0
    while pids:
        pid, status = os.wait()
        if pids.pop(pid, None) is not None and os.waitstatus_to_exitcode(status) != 0:
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
