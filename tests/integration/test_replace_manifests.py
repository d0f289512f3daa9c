"""Replacing one object costs the same whatever the table's size: a replace table's manifests
list at most REPLACE_MANIFEST_ENTRIES files, so the snapshot that swaps an object rewrites
one small manifest (real files, the SQLite catalog)."""

from __future__ import annotations

from typing import Any

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


def _reads(monkeypatch: Any) -> list[str]:
    """Paths of the manifests whose entries are decoded (each still decoded by PyIceberg)."""
    from pyiceberg.manifest import ManifestFile

    seen: list[str] = []
    real = ManifestFile.fetch_manifest_entry

    def spy(self: ManifestFile, *args: Any, **kwargs: Any) -> Any:
        seen.append(self.manifest_path)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", spy)
    return seen


def test_replacing_one_object_decodes_only_the_manifests_that_may_list_it(ws: Workspace, monkeypatch: Any) -> None:
    """Each manifest lakeroute writes says, in its Avro header, the range of objects its files
    hold (core.write.object_ranges): the others' entries are not decoded, and the table is
    the same as when every manifest is read."""
    from lakeroute.core.write.object_ranges import header_range

    ws.route("items", {"bucket": "land", "prefix": "items/"}, REPLACE)
    n = 4 * REPLACE_MANIFEST_ENTRIES
    keys = [parquet(ws, f"items/{i:04d}.parquet", [{"id": i * 10 + j, "v": 0} for j in range(2)])
            for i in range(n)]
    assert ws.ingest(*[("land", k) for k in keys]).count("committed") == n
    tbl = ws.catalog().load_table("erp.items")
    manifests = tbl.current_snapshot().manifests(tbl.io)  # type: ignore[union-attr]
    ranges = [header_range(tbl.io, m) for m in manifests]
    print(ranges)
    assert len(manifests) >= 4 and all(r is not None for r in ranges)
    assert any(r[0] <= "land/items/0100.parquet" <= r[1] for r in ranges if r)

    seen = _reads(monkeypatch)
    parquet(ws, "items/0100.parquet", [{"id": 1000, "v": 1}])
    assert ws.ingest(("land", "items/0100.parquet")).count("committed") == 1
    print(len(seen), "of", len(manifests), "manifests decoded")
    assert 1 <= len(seen) < len(manifests) and len(set(seen)) == len(seen), "each candidate decoded once"
    rows = table_rows(ws, "erp.items")
    assert len(rows) == 2 * n - 1 and [r["v"] for r in rows if r["id"] // 10 == 100] == [1]
    after = ws.catalog().load_table("erp.items")
    listed = after.current_snapshot().manifests(after.io)  # type: ignore[union-attr]
    for m in listed:  # every manifest says its range, or lists no live file
        assert header_range(after.io, m) is not None or m.added_files_count == m.existing_files_count == 0
    seen.clear()  # the next replace, over the manifests that one wrote
    parquet(ws, "items/0200.parquet", [{"id": 2000, "v": 2}])
    assert ws.ingest(("land", "items/0200.parquet")).count("committed") == 1
    latest = ws.catalog().load_table("erp.items")
    still = {m.manifest_path for m in latest.current_snapshot().manifests(latest.io)}  # type: ignore[union-attr]
    untouched = [m for m in listed if m.manifest_path in still and m.existing_files_count + m.added_files_count]
    print([(m.manifest_path[-12:], header_range(after.io, m)) for m in untouched], [p[-12:] for p in seen])
    assert untouched and not [m.manifest_path for m in untouched if m.manifest_path in seen], \
        "a manifest kept as it was is not decoded (its range rules the object out)"
    rows = table_rows(ws, "erp.items")
    assert len(rows) == 2 * n - 2 and [r["v"] for r in rows if r["id"] // 10 == 200] == [2]


def test_a_manifest_without_a_range_is_read_and_the_replace_stays_right(ws: Workspace, monkeypatch: Any) -> None:
    """Another writer's manifest carries no range: it is decoded, and the object's rows it
    lists are replaced too."""
    import pyarrow as pa
    from lakeroute.core.routes import OBJECT_COLUMN

    ws.route("items", {"bucket": "land", "prefix": "items/"}, REPLACE)
    keys = [parquet(ws, f"items/{i:04d}.parquet", [{"id": i, "v": 0}]) for i in range(3)]
    assert ws.ingest(*[("land", k) for k in keys]).count("committed") == 3
    tbl = ws.catalog().load_table("erp.items")
    other = pa.Table.from_pylist([{"id": 99, "v": 5, OBJECT_COLUMN: "land/items/0001.parquet"}],
                                 schema=tbl.schema().as_arrow())
    tbl.append(other)  # PyIceberg's own append: its manifest has no range in its header
    seen = _reads(monkeypatch)
    parquet(ws, "items/0001.parquet", [{"id": 1, "v": 7}])
    assert ws.ingest(("land", "items/0001.parquet")).count("committed") == 1
    assert seen, "the manifest without a range was decoded"
    rows = table_rows(ws, "erp.items")
    assert sorted((r["id"], r["v"]) for r in rows) == [(0, 0), (1, 7), (2, 0)], rows
