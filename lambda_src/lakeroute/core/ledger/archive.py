"""The sources of expired snapshots, kept beside the table so a rebuilt ledger still knows them.

The snapshot summaries are the truth about which object versions a table holds; the ledger
is an index (``core.ledger``). Expiry removes summaries, so before lakeroute expires
ancestors it writes their sources to an archive file under the table's metadata folder,
named by the ancestor that will be the oldest one retained, X:
``lakeroute-sources-<X's snapshot id>.json`` ("what came before X"), holding the entries
and ``next``: the oldest expired ancestor of the batch, whose own file (written when it was
the oldest retained ancestor) holds what came before it. The files form a chain along the
table's real ancestry, from the oldest retained ancestor down (PyIceberg clears the parent
id of a snapshot whose parent expires, so the chain carries the links itself). A ledger that
reconciles the whole retained history (a fresh ledger, a restored one) reads the chain too.

The chain needs no table property and no lock: names are deterministic, ancestry never
changes, and expiry always removes the oldest ancestors, so concurrent expiries write files
that agree (two writes of one name hold the same run of ancestry, or one a longer one that
links to a file the other's link also reaches). A file written for an expiry that then
failed is reached by no walk; orphan removal deletes it after the grace period.
``maintain`` merges the newest files of a long chain (``consolidate``), so a walk reads
O(log n) files. Snapshots expired by other tools (Athena, Spark, Glue) have no file: the
walk stops there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .summary import Entry, entries_of

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

log = logging.getLogger("lakeroute.maintenance")
PREFIX = "lakeroute-sources-"


def ancestry(metadata: TableMetadata) -> list[int]:
    """The current snapshot's ancestors in the metadata, newest first."""
    out: list[int] = []
    sid = metadata.current_snapshot_id
    while sid is not None and sid not in out:
        snap = metadata.snapshot_by_id(sid)
        if snap is None:
            break
        out.append(sid)
        sid = snap.parent_snapshot_id
    return out


def path_for(table: Table, snapshot_id: int) -> str:
    # Plain JSON: PyArrow's file IO would (de)compress a `.gz` name by itself.
    return table.location_provider().new_metadata_location(f"{PREFIX}{snapshot_id}.json")


def write_for_expiry(table: Table, expire: list[int]) -> str | None:
    """Archive the expired *ancestors'* sources (rolled-back snapshots are not archived: their
    objects must come in again). Written before the expiry commit. Returns the path, or None
    when no ancestor expires."""
    meta = table.metadata
    version = int(meta.format_version)
    going = set(expire)
    line = ancestry(meta)  # newest first; the current snapshot never expires
    first = next((i for i, sid in enumerate(line) if sid in going), None)
    if first is None or first == 0:
        return None
    expired = line[first:]  # expiry removes the oldest ancestors: all of them from here
    entries: list[Entry] = []
    for sid in reversed(expired):  # oldest first, as reconcile records them
        snap = meta.snapshot_by_id(sid)
        assert snap is not None
        entries += entries_of(snap, version)
    path = path_for(table, line[first - 1])
    # The oldest expired ancestor links on only when something before it was archived.
    link = expired[-1] if _read(table, path_for(table, expired[-1])) is not None else None
    _write(table, path, entries, link)
    return path


def _write(table: Table, path: str, entries: list[Entry], link: int | None) -> None:
    body = json.dumps({"format": 1, "next": link, "entries": entries}, ensure_ascii=False).encode("utf-8")
    with table.io.new_output(path).create(overwrite=True) as out:
        out.write(body)


def _read(table: Table, path: str) -> dict[str, Any] | None:
    try:
        with table.io.new_input(path).open() as stream:
            doc = json.loads(stream.read())
    except FileNotFoundError:
        return None
    except OSError as e:
        if not _denied(e):
            raise
        # S3 answers 403, not 404, for a missing key to a caller that may not list the bucket,
        # and table buckets (S3 Tables, and the REST catalogs that mimic them) allow no listing:
        # there a missing archive file reads as "access denied". The same credentials just read
        # the table's metadata in this folder, so a denial here means the file is not there.
        return None
    return doc if isinstance(doc, dict) else None


def _denied(e: OSError) -> bool:
    text = str(e)
    return "ACCESS_DENIED" in text or "AccessDenied" in text or "Forbidden" in text


def chain(table: Table) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, document) of each archive file along the ancestry, newest first."""
    meta = table.metadata
    line = ancestry(meta)
    if not line:
        return
    link: int | None = line[-1]
    seen: set[int] = set()
    while link is not None and link not in seen:
        seen.add(link)
        path = path_for(table, link)
        doc = _read(table, path)
        if doc is None:
            if link != line[-1]:
                log.info("no archive before snapshot %d of %s (expired by another tool?): the "
                         "ledger cannot learn those sources from the table", link, table.name())
            return
        yield path, doc
        raw = doc.get("next")
        link = int(raw) if raw is not None else None


def archived_entries(table: Table) -> list[Entry]:
    """Every archived entry, oldest first."""
    return _entries([doc for _, doc in chain(table)])


def _entries(docs: list[dict[str, Any]]) -> list[Entry]:
    """The entries of archive documents given newest first, oldest first."""
    out: list[Entry] = []
    for doc in reversed(docs):
        out += [(str(e[0]), int(e[1]), int(e[2]), str(e[3])) for e in doc.get("entries", [])]
    return out


def consolidate(table: Table, apply: bool) -> tuple[set[str], int]:
    """The chain's paths (all referenced) and how many files a merge made unreachable.

    Merges the newest files for as long as the next one holds less than twice what is merged
    so far (levels that at least double: a walk reads O(log n) files, an entry is rewritten
    O(log n) times). The merged
    file replaces the newest one under its name; the merged-away files become unreachable and
    are removed as orphans after the grace period (a walk that started meanwhile still finds
    them)."""
    files = list(chain(table))
    paths = {p for p, _ in files}
    run = 1
    while run < len(files):
        merged = sum(len(d.get("entries", [])) for _, d in files[:run])
        if 2 * max(merged, 1) <= len(files[run][1].get("entries", [])):
            break
        run += 1
    if run < 2:
        return paths, 0
    if apply:
        entries = _entries([d for _, d in files[:run]])
        _write(table, files[0][0], entries, files[run - 1][1].get("next"))
    return paths, run - 1
