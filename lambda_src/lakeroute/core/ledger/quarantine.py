"""The quarantine's layout and error record, shared by the local and the S3 quarantine.

Every quarantined object *version* gets its own entry, a folder that holds a copy of the
object and its error record::

    <bucket>/<escaped key>/~v=<version tag>/object<.ext>
    <bucket>/<escaped key>/~v=<version tag>/error.json

No entry can collide with another key's or another version's:

- each key segment is percent-escaped except ``A-Z a-z 0-9 . _ = -`` (``~`` and ``%``
  included), and the segments ``.``, ``..`` and the empty one are spelled ``%2E``,
  ``%2E%2E`` and ``%``, so an escaped segment never starts with ``~`` and never walks up;
  the entry folder (``~v=…``) therefore cannot be a key segment, and the keys ``d`` and
  ``d/x.parquet`` live in ``d/~v=…`` and ``d/x.parquet/~v=…``;
- the version tag is a hash of the version (ETag, version id or content hash): every
  quarantined version stays; the same version quarantined again updates its record
  (``attempts`` counts the times) and is not copied twice;
- a key whose escaped form is too long for the store (S3 keys: 1,024 bytes; local file
  names: 255 bytes a segment) goes under ``<bucket>/~long/<sha256 of the key>/``; the full
  key is always inside the record.

An entry is *open* until it is closed, and stays as history once closed (``state``,
``closed_at``, ``resolution``): *resolved* (its version landed: replayed or ingested again),
*superseded* (a newer version of the same key landed: by arrival, as mode ``replace`` orders
versions) or *dismissed* (by hand, with a reason). A superseded or dismissed version that
fails again counts the attempt and stays closed; a resolved one that fails again is open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..errors import ObjectError
from ..objects import SourceObject

RECORD_NAME = "error.json"
REJECTS_SUMMARY = "rejects.json"  # beside the rejects files: which route/table, how many, when
_SAFE = re.compile(r"[A-Za-z0-9._=-]")
_ENTRY_RESERVE = 64  # "/~v=<20 hex>/object.<ext>" and "/error.json"


def escape_segment(segment: str) -> str:
    if segment == "":
        return "%"
    if segment in (".", ".."):
        return "%2E" * len(segment)
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
                   for c in segment)


def version_tag(version: str | None) -> str:
    if not version:
        return "~unresolved"
    return "~v=" + hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def entry_dir(bucket: str, key: str, version: str | None, *, max_bytes: int = 1024,
              max_segment: int = 255) -> str:
    """The entry folder of one object version, relative to the quarantine root."""
    bucket = escape_segment(bucket)  # buckets are validated names in S3; locally, `--bucket` is typed
    segments = [escape_segment(s) for s in key.split("/")]
    path = "/".join([bucket, *segments, version_tag(version)])
    if len(path.encode()) + _ENTRY_RESERVE > max_bytes or any(len(s) > max_segment for s in segments):
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        path = f"{bucket}/~long/{digest}/{version_tag(version)}"
    return path


# A version for finding a key's folder: every version tag has the same length, so a key near
# the store's limit goes under ``~long`` for all its versions alike.
ANY_VERSION = "-"


def is_entry_name(name: str) -> bool:
    """Whether a folder name under a key's folder is a version entry (escaped key segments
    never start with ``~``; ``~long`` sits at the bucket level only)."""
    return name.startswith("~v=") or name == "~unresolved"


def object_name(key: str) -> str:
    """``object`` plus the key's extensions (``.csv.gz``), so tools can open the copy."""
    suffixes = PurePosixPath(key.rsplit("/", 1)[-1]).suffixes[-2:]
    clean = ["." + re.sub(r"[^A-Za-z0-9]", "", s)[:12] for s in suffixes]
    return "object" + "".join(s for s in clean if len(s) > 1)


def rejects_name(table: str) -> str:
    """The rejects file of one target table (``source.on_error: rows``) in an object's entry."""
    return f"rejects.{re.sub(r'[^A-Za-z0-9_.]', '_', table)}.jsonl"


def rejects_record(bucket: str, key: str, obj: SourceObject, route: str, table: str, count: int,
                   where: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary beside an entry's rejects files (one item per table)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    tables = dict(previous.get("tables", {})) if isinstance(previous, dict) else {}
    tables[table] = {"route": route, "rejected_rows": count, "file": where, "at": now}
    return {"bucket": bucket, "key": key, "version": obj.version, "size": obj.size, "tables": tables}


def error_record(bucket: str, key: str, obj: SourceObject | None, error: ObjectError,
                 previous: dict[str, Any] | None = None, *, table: str | None = None,
                 copied: bool | None = None) -> dict[str, Any]:
    """The record beside the copy; ``previous`` is the record of an earlier attempt, if any."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    prior = previous if isinstance(previous, dict) else {}
    attempts = prior.get("attempts")
    # Closed by a newer version or by hand: failing again is counted, the entry stays closed.
    kept = {k: prior[k] for k in _CLOSURE if k in prior} if entry_state(prior) in (SUPERSEDED, DISMISSED) else {}
    return {
        "bucket": bucket, "key": key, "version": obj.version if obj else None,
        "route": error.route, "table": table, "stage": error.stage, "message": error.message,
        "quarantined_at": now,
        "first_quarantined_at": prior.get("first_quarantined_at") or prior.get("quarantined_at") or now,
        "attempts": (attempts if isinstance(attempts, int) else 0) + 1,
        "size": obj.size if obj else None,
        "object_copied": copied,
        **kept,
    }


# ---------------------------------------------------------------- closing entries

OPEN, RESOLVED, SUPERSEDED, DISMISSED = "open", "resolved", "superseded", "dismissed"
STATES = (OPEN, RESOLVED, SUPERSEDED, DISMISSED)
_CLOSURE = ("state", "closed_at", "resolution", "resolved_at", "superseded_by", "dismissed_by")


def entry_state(record: dict[str, Any]) -> str:
    """open | resolved | superseded | dismissed (records written before states: resolved_at)."""
    state = record.get("state")
    if state in STATES:
        return str(state)
    return RESOLVED if record.get("resolved_at") else OPEN


def closed(record: dict[str, Any], state: str, reason: str, **extra: str) -> dict[str, Any]:
    """The record closed as ``state`` (resolved, superseded, dismissed) with its reason."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    out = {**record, "state": state, "closed_at": now, "resolution": reason, **extra}
    if state == RESOLVED:
        out["resolved_at"] = now  # what `quarantine ls` and `replay` read before states existed
    return out


@dataclass(frozen=True)
class Landed:
    """One object version the pipeline landed (or found landed), for its key's entries:
    ``resolution`` closes the entry of this very version (None: leave it, e.g. another target
    of a fan-out failed again); ``supersede`` closes the open entries of its other versions."""

    bucket: str
    key: str
    version: str
    resolution: str | None
    supersede: bool


def closings(landed: Landed, entries: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    """(entry, new record) for each entry of one key that ``landed`` closes."""
    out = []
    for where, record in entries:
        if entry_state(record) != OPEN:
            continue
        if record.get("version") == landed.version:
            if landed.resolution is not None:
                out.append((where, closed(record, RESOLVED, landed.resolution)))
        elif landed.supersede:
            out.append((where, closed(record, SUPERSEDED, f"superseded: version {landed.version[:19]} of "
                                      "the same key landed", superseded_by=landed.version)))
    return out
