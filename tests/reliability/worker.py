"""A separate ingesting process for the reliability tests (real processes, real catalog).

usage: python -m tests.reliability.worker ROOT GO_FILE MODE BUCKET KEY [KEY ...]
MODE: normal | crash-after-commit (exit hard after the catalog commit, before the ledger
update: what a Lambda killed at that instant leaves behind) | one-by-one (one ingest call,
so one commit, per key: a steady stream of commits).
Prints one JSON line: outcomes and the commit figures.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lakeroute.core.ledger import Entry, Mark
from lakeroute.core.pipeline import ObjectRef
from lakeroute.local.ledger import SqliteLedger

from tests.support.workspace import Workspace


class CrashAfterCommitLedger(SqliteLedger):
    """Dies the moment the commit succeeded, before recording it."""

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        if watermark is None:  # the post-commit record (reconcile passes a watermark)
            os._exit(137)
        super().record(table, uuid, entries, watermark)


def main(argv: list[str]) -> None:
    root, go, mode, bucket, *keys = argv
    ws = Workspace(Path(root))
    pipe = ws.pipeline()
    if mode == "crash-after-commit":
        pipe.ledger = CrashAfterCommitLedger(str(ws.paths.home / "ledger.db"))
    while not os.path.exists(go):
        time.sleep(0.005)
    if mode == "one-by-one":
        reports = [pipe.ingest([ObjectRef(bucket, k)]) for k in keys]
        report = reports[0]
        for r in reports[1:]:
            report.outcomes += r.outcomes
            report.commits += r.commits
    else:
        report = pipe.ingest([ObjectRef(bucket, k) for k in keys])
    # Objects failed back (commit attempts ran out under contention) are delivered again, as
    # SQS would: a busy machine makes more rounds, never a different table.
    redeliveries = 0
    while mode == "normal" and redeliveries < 100 and (again := [o for o in report.outcomes if o.status == "failed"]):
        redeliveries += 1
        retry = pipe.ingest([o.ref for o in again])
        report.outcomes = [o for o in report.outcomes if o not in again] + retry.outcomes
        report.commits += retry.commits
    print(json.dumps({
        "statuses": [o.status for o in report.outcomes],
        "messages": [o.message for o in report.outcomes if o.status != "committed"],
        "commits": report.commits,
        "redeliveries": redeliveries,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
