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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
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
    return {
        "bucket": bucket, "key": key, "version": obj.version if obj else None,
        "route": error.route, "table": table, "stage": error.stage, "message": error.message,
        "quarantined_at": now,
        "first_quarantined_at": prior.get("first_quarantined_at") or prior.get("quarantined_at") or now,
        "attempts": (attempts if isinstance(attempts, int) else 0) + 1,
        "size": obj.size if obj else None,
        "object_copied": copied,
    }
