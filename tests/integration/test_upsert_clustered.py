"""Upsert tables are clustered by key: files sorted and cut by key range as upserts write them
and as compaction rewrites them, so a batch of keys in a narrow range reads only the files
whose ranges hold its keys (real files, the SQLite catalog, PyIceberg and DuckDB)."""

from __future__ import annotations

import random
from typing import Any

import pyarrow.parquet as pq
from lakeroute.core.maintain.compaction import compact
from pyiceberg.table.sorting import SortDirection

from tests.integration.test_write_modes import parquet, summary, table_rows
from tests.support.workspace import Workspace

# ~1,000 rows of (id long, v long) per file: 16 Arrow bytes a row.
UPSERT = {"table": "crm.deals", "mode": "upsert", "key": ["id"],
          "properties": {"write.target-file-size-bytes": "16000"}}


def ranges(ws: Workspace) -> list[tuple[int, int, int]]:
    """(lower, upper, rows) of the id column of each live data file, from the manifests."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import LongType

    tbl = ws.catalog().load_table("crm.deals")
    fid = tbl.schema().find_field("id").field_id
    out = []
    for task in tbl.scan().plan_files():
        f = task.file
        out.append((from_bytes(LongType(), f.lower_bounds[fid]), from_bytes(LongType(), f.upper_bounds[fid]),
                    f.record_count))
    return sorted(out)


def overlapping(files: list[tuple[int, int, int]], keys: list[int]) -> int:
    """The files whose key range holds one of ``keys``."""
    return sum(1 for lo, hi, _ in files if any(lo <= k <= hi for k in keys))


def shuffled(ids: list[int], v: int, seed: int) -> list[dict[str, Any]]:
    rows = [{"id": i, "v": v} for i in ids]
    random.Random(seed).shuffle(rows)
    return rows


def sorted_within(ws: Workspace) -> bool:
    tbl = ws.catalog().load_table("crm.deals")
    for task in tbl.scan().plan_files():
        ids = pq.read_table(task.file.file_path.removeprefix("file://"), columns=["id"]).column("id").to_pylist()
        if ids != sorted(ids):
            return False
    return True


def disjoint(files: list[tuple[int, int, int]]) -> bool:
    return all(a[1] < b[0] for a, b in zip(files, files[1:], strict=False))


def test_a_narrow_upsert_reads_only_the_files_of_its_range_after_commits_and_compaction(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    # Commit 1: 8,000 even keys in random order; commit 2: updates all over the range.
    ws.ingest(("land", parquet(ws, "deals/1.parquet", shuffled(list(range(0, 16000, 2)), 0, 1))))
    first = ranges(ws)
    assert len(first) >= 6, first  # cut by key range, not one file of the whole range
    assert disjoint(first) and sorted_within(ws)
    tbl = ws.catalog().load_table("crm.deals")
    order = tbl.sort_order()
    assert [(tbl.schema().find_column_name(f.source_id), f.direction) for f in order.fields] == \
        [("id", SortDirection.ASC)]

    ws.ingest(("land", parquet(ws, "deals/2.parquet", shuffled(list(range(0, 16000, 40)), 2, 2))))
    after_updates = ranges(ws)
    assert disjoint(after_updates) and sorted_within(ws)  # rewritten files are cut by range too

    # Commit 3: new odd keys between the existing ones, in one narrow stretch and far past the end.
    ws.ingest(("land", parquet(ws, "deals/3.parquet", shuffled([*range(5001, 5201, 2), *range(20000, 20500)], 3, 3))))
    files = ranges(ws)
    assert sum(n for _, _, n in files) == 8000 + 100 + 500

    # A narrow batch: updates of 20 keys in 6,000..6,040 and one new key there.
    narrow = [*range(6000, 6040, 2), 6001]
    ws.ingest(("land", parquet(ws, "deals/4.parquet", shuffled(narrow, 4, 4))))
    s = summary(ws, "crm.deals")
    read = int(s["lakeroute.upsert-files-read"])
    assert read == overlapping(files, narrow), (read, files)
    assert read <= 2 < len(files), (read, files)  # clustered: the range is in one or two files

    # Compaction of the upsert table leaves files of disjoint ranges, each sorted.
    before = ranges(ws)
    result = compact(ws.catalog(), "crm.deals", target_bytes=8 * 1024, apply=True)
    assert result.snapshot_id is not None, result
    compacted = ranges(ws)
    assert disjoint(compacted) and sorted_within(ws)
    assert sum(n for _, _, n in compacted) == sum(n for _, _, n in before)
    narrow = [9000, 9002, 9004]
    ws.ingest(("land", parquet(ws, "deals/5.parquet", shuffled(narrow, 5, 5))))
    read = int(summary(ws, "crm.deals")["lakeroute.upsert-files-read"])
    assert read == overlapping(compacted, narrow) == 1, (read, compacted)

    # Every row as the truth says (PyIceberg and DuckDB agree inside table_rows).
    rows = {r["id"]: r["v"] for r in table_rows(ws, "crm.deals")}
    want: dict[int, int] = dict.fromkeys(range(0, 16000, 2), 0)
    want |= dict.fromkeys(range(0, 16000, 40), 2)
    want |= dict.fromkeys([*range(5001, 5201, 2), *range(20000, 20500)], 3)
    want |= dict.fromkeys([*range(6000, 6040, 2), 6001], 4)
    want |= dict.fromkeys([9000, 9002, 9004], 5)
    assert rows == want


def test_rows_of_the_batch_land_sorted_with_their_range_not_in_a_file_of_their_own(ws: Workspace) -> None:
    """New keys in the middle of the range are written with the rewritten files of their range."""
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    ws.ingest(("land", parquet(ws, "deals/1.parquet", shuffled(list(range(0, 8000, 2)), 0, 1))))
    # Updates everywhere (every file rewritten) and new odd keys everywhere.
    batch = [*range(0, 8000, 20), *range(1, 8000, 50)]
    ws.ingest(("land", parquet(ws, "deals/2.parquet", shuffled(batch, 1, 2))))
    files = ranges(ws)
    assert disjoint(files) and sorted_within(ws), files
    assert sum(n for _, _, n in files) == 4000 + len(range(1, 8000, 50))


def test_new_keys_inside_an_untouched_file_rewrite_it_and_ranges_stay_disjoint(ws: Workspace) -> None:
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, UPSERT)
    ws.ingest(("land", parquet(ws, "deals/1.parquet", shuffled(list(range(0, 8000, 2)), 0, 1))))
    before = ranges(ws)
    inserts = [*range(3001, 3101, 2), *range(9000, 9100)]  # only new keys: no row of any file changes
    ws.ingest(("land", parquet(ws, "deals/2.parquet", shuffled(inserts, 1, 2))))
    files = ranges(ws)
    assert disjoint(files) and sorted_within(ws), files
    s = summary(ws, "crm.deals")
    assert int(s["deleted-data-files"]) == overlapping(before, inserts) == 1, (s, before)
    assert sum(n for _, _, n in files) == 4000 + len(inserts)
