"""Staging data files and committing them exactly once.

Each object's rows are written as Parquet data files into the table's location (staged,
not yet visible); the staged files of one batch that target the same table are then added
in one snapshot. The snapshot summary names the route and the source object versions: that
record is the source of truth. Before every commit attempt the writer loads the table fresh,
reads the summaries of the snapshots it has not seen yet into a small ledger, and drops the
sources already there, so redelivery, a lost commit response or a concurrent duplicate never
adds rows twice. The commit itself is optimistic (the catalog rejects a stale base), so the
check and the commit are atomic together.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import TransientError
from .ledger import ROUTES_PROP, SOURCES_PROP, Ledger, reconcile
from .staging import Staged, discard
from .tables import OWN_RETRY_PROPERTIES

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger("lakeroute.commit")


@dataclass
class CommitResult:
    table: str
    committed: list[Staged]
    duplicates: list[Staged]
    snapshot_id: int | None
    attempts: int
    seconds: float


def commit(catalog: Catalog, table_name: str, staged: list[Staged], ledger: Ledger, *,
           deadline: float | None = None, max_attempts: int | None = None,
           base_delay: float = 0.05, max_delay: float = 5.0) -> CommitResult:
    """Add the staged files in one snapshot, skipping sources the table already holds.

    Conflicts retry with exponential backoff and full jitter on a freshly loaded table. The
    backoff starts from the measured length of an attempt (a slow catalog under contention
    needs longer gaps than a fast one), and is bounded by ``deadline`` (a time.monotonic()
    value, e.g. the Lambda's remaining time) and ``max_attempts`` (default 40 with a
    deadline, 12 without).
    """
    limit = max_attempts or (40 if deadline is not None else 12)
    from pyiceberg.exceptions import CommitFailedException

    start = time.monotonic()
    attempt = 0
    # After an error of unknown outcome our own snapshot may be the one that holds these
    # sources, with these very data files: then they must not be deleted as duplicates.
    outcome_unknown = False
    while True:
        attempt += 1
        attempt_start = time.monotonic()
        table = catalog.load_table(table_name)
        reconcile(table, table_name, ledger)
        done = ledger.committed(table_name, [s.source_id for s in staged])
        duplicates = [s for s in staged if s.source_id in done]
        todo = [s for s in staged if s.source_id not in done]
        if not todo:
            if not outcome_unknown:
                discard(table, duplicates)
            return CommitResult(table_name, [], duplicates, None, attempt, time.monotonic() - start)
        routes = sorted({s.route for s in todo})
        props = {
            ROUTES_PROP: ",".join(routes),
            SOURCES_PROP: json.dumps([s.source_id for s in todo], ensure_ascii=False),
            "lakeroute.rows": str(sum(s.rows for s in todo)),
        }
        _own_retries(table)
        try:
            txn = table.transaction()
            # merge_append honours commit.manifest-merge.*: manifests stay bounded over many commits.
            with txn.update_snapshot(snapshot_properties=props).merge_append() as append:
                for s in todo:
                    for df in s.data_files:
                        append.append_data_file(df)
            new = txn.commit_transaction()
        except CommitFailedException as e:
            error: Exception = e
        except Exception as e:  # unknown outcome (e.g. lost response): re-check, then retry
            if type(e).__name__ in ("ValidationException",):
                raise
            error = e
            outcome_unknown = True
        else:
            snap = new.metadata.current_snapshot_id
            assert snap is not None
            ledger.record(table_name, [(s.source_id, snap, s.route) for s in todo], None)
            if not outcome_unknown:
                discard(table, duplicates)
            return CommitResult(table_name, todo, duplicates, snap, attempt, time.monotonic() - start)
        base = max(base_delay, time.monotonic() - attempt_start)
        delay = random.uniform(0, min(max_delay, base * 2 ** (attempt - 1)))
        out_of_time = deadline is not None and time.monotonic() + delay > deadline
        if attempt >= limit or out_of_time:
            raise TransientError(
                f"commit to {table_name} failed after {attempt} attempts: {error}") from error
        log.info("commit to %s conflicted (attempt %d): %s; retrying in %.3fs",
                 table_name, attempt, type(error).__name__, delay)
        time.sleep(delay)


def _own_retries(table: Table) -> None:
    """Turn off PyIceberg's internal commit retry for this in-memory table object.

    Its retry re-applies the append on a refreshed base without our duplicate check; we
    retry ourselves (above) instead. The stored table properties are left as they are.
    """
    props = table.metadata.properties
    if props.get("commit.retry.num-retries") != "0":
        table.metadata = table.metadata.model_copy(
            update={"properties": {**props, **OWN_RETRY_PROPERTIES}})
