"""Load history read back from any catalog: tables, rows, snapshots, the sources of each commit
and what it did to the table's rows."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .summary import ROUTES_PROP, SOURCES_PROP

MAINTENANCE_PROP = "lakeroute.maintenance"  # compaction's snapshots say what they are
ADDED_PROP = "lakeroute.added-rows"
_COUNTS = ("added", "updated", "deleted", "stale", "rejected", "rescued")

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def all_tables(catalog: Catalog) -> list[str]:
    names = []
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            names.append(".".join(ident))
    return sorted(names)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def table_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """Per table: rows, snapshots, the last ingest and the last maintenance apart (a snapshot
    without ``lakeroute.sources``: compaction's REPLACE, or another writer's). Snapshot expiry
    is a metadata-only commit that leaves no snapshot, so it does not show here."""
    out = []
    for name in all_tables(catalog):
        table = catalog.load_table(name)
        snap = table.current_snapshot()
        summary = snap.summary.additional_properties if snap and snap.summary else {}
        snaps = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
        routes = sorted({r for s in snaps if s.summary
                         for r in s.summary.additional_properties.get(ROUTES_PROP, "").split(",") if r})
        ingests = [s for s in snaps if SOURCES_PROP in _props(s)]
        others = [(s.timestamp_ms, maintenance_kind(s)) for s in snaps if SOURCES_PROP not in _props(s)]
        last = max(others) if others else None
        out.append({
            "table": name,
            "rows": int(summary.get("total-records", 0)),
            "snapshots": len(snaps),
            "last_ingest": _when(ingests[-1].timestamp_ms) if ingests else "-",
            "last_maintenance": f"{_when(last[0])} ({last[1]})" if last else "-",
            "routes": ", ".join(routes),
        })
    return out


def _props(snap: Any) -> dict[str, str]:
    return dict(snap.summary.additional_properties) if snap.summary else {}


def maintenance_kind(snap: Any) -> str:
    """What a snapshot without sources is: ``compaction`` (lakeroute's), else its operation."""
    props = _props(snap)
    if props.get(MAINTENANCE_PROP):
        return str(props[MAINTENANCE_PROP])
    return str(snap.summary.operation.value) if snap.summary else "unknown"


def commit_counts(props: dict[str, str]) -> dict[str, int]:
    """What one lakeroute commit did to the table's rows (net; ``core.write.attribution``),
    from its summary. Commits written before those properties: upsert's own counts, else
    every row added (what append does)."""
    def n(key: str) -> int:
        try:
            return int(props.get(key, 0))
        except ValueError:
            return 0

    if ADDED_PROP in props:
        counts = {c: n(f"lakeroute.{c}-rows") for c in ("added", "updated", "deleted", "stale")}
    elif "lakeroute.upsert-written" in props:  # updates and deletes were one count then
        counts = {"added": n("lakeroute.upsert-written"), "updated": n("lakeroute.upsert-replaced-rows"),
                  "deleted": 0, "stale": n("lakeroute.upsert-stale-rows")}
    elif "lakeroute.replaced-rows" in props:
        counts = {"added": n("lakeroute.rows"), "updated": 0, "deleted": n("lakeroute.replaced-rows"), "stale": 0}
    else:
        counts = {"added": n("lakeroute.rows") if "lakeroute.rows" in props else n("added-records"),
                  "updated": 0, "deleted": 0, "stale": 0}
    return {**counts, "rejected": n("lakeroute.rejected_rows"), "rescued": n("lakeroute.rescued_rows")}


def table_history(catalog: Catalog, name: str) -> list[dict[str, Any]]:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(name)
    except (NoSuchTableError, ValueError):
        raise ConfigError(f"table {name!r} not found; `lakeroute tables` lists them") from None
    entries = []
    for snap in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        props = _props(snap)
        ingest = SOURCES_PROP in props
        entries.append({
            "snapshot_id": snap.snapshot_id,
            "committed_at": _when(snap.timestamp_ms),
            "operation": str(snap.summary.operation.value) if snap.summary else "",
            "kind": "ingest" if ingest else maintenance_kind(snap),
            # rows the sources brought (maintenance: none; another writer's: what it added)
            "rows": int(props.get("lakeroute.rows", 0 if ingest or MAINTENANCE_PROP in props
                                  else props.get("added-records", 0))),
            **(commit_counts(props) if ingest else dict.fromkeys(_COUNTS, 0)),
            "data_files": int(props.get("added-data-files", 0)),
            "removed_data_files": int(props.get("deleted-data-files", 0)),
            "routes": props.get(ROUTES_PROP, ""),
            "sources": json.loads(props.get(SOURCES_PROP, "[]")),
        })
    return entries
