"""Replacing one object costs the same whatever the table's size: a replace table's manifests
list at most REPLACE_MANIFEST_ENTRIES files, so the snapshot that swaps an object rewrites
one small manifest (real files, the SQLite catalog)."""

from __future__ import annotations

from lakeroute.core.write.snapshot_files import REPLACE_MANIFEST_ENTRIES

from tests.integration.test_write_modes import parquet, summary, table_rows
from tests.support.workspace import Workspace

REPLACE = {"table": "erp.items", "mode": "replace"}


def entries_written(ws: Workspace) -> tuple[int, int]:
    """(manifests, entries) the current snapshot wrote, and the largest manifest it lists."""
    tbl = ws.catalog().load_table("erp.items")
    snap = tbl.current_snapshot()
    assert snap is not None
    written = [m for m in snap.manifests(tbl.io) if m.added_snapshot_id == snap.snapshot_id]
    rows = sum(len(m.fetch_manifest_entry(tbl.io, discard_deleted=False)) for m in written)
    return len(written), rows


def largest_manifest(ws: Workspace) -> int:
    tbl = ws.catalog().load_table("erp.items")
    snap = tbl.current_snapshot()
    assert snap is not None
    return max(len(m.fetch_manifest_entry(tbl.io, discard_deleted=True)) for m in snap.manifests(tbl.io))


def test_replacing_one_object_rewrites_one_small_manifest_not_the_table(ws: Workspace) -> None:
    ws.route("items", {"bucket": "land", "prefix": "items/"}, REPLACE)
    n = 3 * REPLACE_MANIFEST_ENTRIES + 10  # one ingest call: one snapshot adding every file
    keys = [parquet(ws, f"items/{i:04d}.parquet", [{"id": i * 10 + j, "v": 0} for j in range(2)])
            for i in range(n)]
    assert ws.ingest(*[("land", k) for k in keys]).count("committed") == n
    # Added in manifests of REPLACE_MANIFEST_ENTRIES, merged up to the table's small target size.
    largest = largest_manifest(ws)
    assert largest <= 2 * REPLACE_MANIFEST_ENTRIES < n, largest

    parquet(ws, "items/0100.parquet", [{"id": 1000, "v": 1}])  # a new version of one object
    assert ws.ingest(("land", "items/0100.parquet")).count("committed") == 1
    s = summary(ws, "erp.items")
    assert s["deleted-data-files"] == "1" and s["added-data-files"] == "1", s
    _, written = entries_written(ws)
    # The survivors of the one manifest that listed the object's file, its deleted entry, the new file.
    assert written <= largest + 1, (written, largest)
    assert largest_manifest(ws) <= 2 * REPLACE_MANIFEST_ENTRIES
    rows = table_rows(ws, "erp.items")
    assert len(rows) == 2 * n - 1 and [r["v"] for r in rows if r["id"] // 10 == 100] == [1]
