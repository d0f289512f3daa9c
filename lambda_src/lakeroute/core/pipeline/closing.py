"""After a batch: the quarantine entries its objects close.

A version that landed closes its own entry (resolved: a replay, or the same version ingested
again after a fix) and the open entries of the key's other versions (superseded: a newer
version by arrival landed, so replaying the old one could only regress the table). A replay
that finds its version already in the table resolves it too. A fan-out object resolves only
when none of its targets failed again; it still supersedes older versions as soon as one
target committed (its own entry now stands for what is left to fix).

Closing is a hint for people, never a reason to fail a batch whose data committed: a
quarantine that cannot be read or written is logged and the entries stay open. Superseded
entries are journaled, so ``lakeroute history`` says why they left the quarantine.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from ..ledger.journal import Attempt, Journal
from ..ledger.quarantine import SUPERSEDED, Landed
from ..objects import Quarantine
from .outcomes import Outcome

log = logging.getLogger("lakeroute.pipeline")
_QUIET = ("committed", "skipped", "ignored")  # statuses that leave nothing to fix


def _version(o: Outcome) -> str | None:
    if o.source_id and "@" in o.source_id:
        return o.source_id.rsplit("@", 1)[-1]
    return o.ref.version


def landed(outcomes: list[Outcome]) -> list[Landed]:
    """The object versions of a batch whose quarantine entries may close."""
    by_version: dict[tuple[str, str, str], list[Outcome]] = {}
    for o in outcomes:
        version = _version(o)
        if version:
            by_version.setdefault((o.ref.bucket, o.ref.key, version), []).append(o)
    out = []
    for (bucket, key, version), outs in by_version.items():
        statuses = [o.status for o in outs]
        replay = any(o.ref.replay for o in outs)
        committed = "committed" in statuses
        if not (committed or replay):
            continue  # a skip of a version long in the table: nothing to look up
        status = "committed" if committed else statuses[0]
        resolution = (f"{'replayed' if replay else 'ingested'}: {status}"
                      if all(s in _QUIET for s in statuses) else None)
        out.append(Landed(bucket, key, version, resolution, supersede=committed))
    return out


def close_entries(quarantine: Quarantine, outcomes: list[Outcome], journal: Journal | None) -> None:
    """Close what the batch's landed versions close; journal the superseded entries."""
    settle = getattr(quarantine, "settle", None)  # optional port step (the local and S3 quarantines)
    todo = landed(outcomes)
    if settle is None or not todo:
        return
    try:
        records: list[dict[str, Any]] = settle(todo)
    except Exception as e:  # the data landed; an entry left open is only a stale hint
        log.warning("could not close quarantine entries of %d object(s): %s", len(todo), e)
        return
    gone = [r for r in records if r.get("state") == SUPERSEDED]
    if journal is None or not gone:
        return
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    try:
        journal.record([Attempt(now, str(r.get("table") or ""), str(r.get("route") or ""), str(r["bucket"]),
                                str(r["key"]), str(r.get("version") or ""), SUPERSEDED, 0, "quarantine",
                                str(r.get("resolution", ""))) for r in gone])
    except Exception as e:  # the journal is a trail, never a reason to fail a batch
        log.error("could not write the journal: %s", e)
