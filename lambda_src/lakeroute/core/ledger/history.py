"""Load history read back from any catalog: tables, rows, snapshots, the sources of each commit."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .summary import ROUTES_PROP, SOURCES_PROP

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
    out = []
    for name in all_tables(catalog):
        table = catalog.load_table(name)
        snap = table.current_snapshot()
        summary = snap.summary.additional_properties if snap and snap.summary else {}
        routes = sorted({r for s in table.snapshots() if s.summary
                         for r in s.summary.additional_properties.get(ROUTES_PROP, "").split(",") if r})
        out.append({
            "table": name,
            "rows": int(summary.get("total-records", 0)),
            "snapshots": len(table.snapshots()),
            "last_load": _when(snap.timestamp_ms) if snap else "-",
            "routes": ", ".join(routes),
        })
    return out


def table_history(catalog: Catalog, name: str) -> list[dict[str, Any]]:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(name)
    except (NoSuchTableError, ValueError):
        raise ConfigError(f"table {name!r} not found; `lakeroute tables` lists them") from None
    entries = []
    for snap in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        props = snap.summary.additional_properties if snap.summary else {}
        entries.append({
            "snapshot_id": snap.snapshot_id,
            "committed_at": _when(snap.timestamp_ms),
            "operation": str(snap.summary.operation.value) if snap.summary else "",
            "rows": int(props.get("added-records", 0)),
            "data_files": int(props.get("added-data-files", 0)),
            "routes": props.get(ROUTES_PROP, ""),
            "sources": json.loads(props.get(SOURCES_PROP, "[]")),
        })
    return entries
