"""Merge-on-read upserts (``write.merge.mode: merge-on-read``) on real files and the SQLite
catalog: position delete files instead of rewritten data files; PyIceberg and DuckDB's
``iceberg_scan`` read what a DuckDB truth over the input files says, after several upserts,
CDC deletes, redelivery, a concurrent commit and a compaction."""

from __future__ import annotations

import random
from typing import Any

import duckdb
import pyarrow as pa

from tests.integration.test_write_modes import parquet, summary, table_rows
from tests.support.workspace import Workspace

MOR = {"write.merge.mode": "merge-on-read"}
TARGET: dict[str, Any] = {"table": "crm.deals", "mode": "upsert", "key": ["id"], "order_by": "ts",
                          "operation": {"column": "op", "delete": ["D"]}, "properties": MOR}
SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.int64()), ("v", pa.string()), ("op", pa.string())])


def truth(ws: Workspace, keys: list[str]) -> list[dict[str, Any]]:
    """Per id the newest change (ts; ties: the later file, then the later row) over every
    input file; a delete removes the id."""
    paths = [str(ws.paths.landing / "land" / k) for k in keys]
    con = duckdb.connect()
    con.register("f", pa.table({"path": paths, "n": list(range(len(paths)))}))
    rows = con.execute("""
        WITH r AS (SELECT t.*, f.n FROM read_parquet($paths, filename = true, file_row_number = true) t
                   JOIN f ON t.filename = f.path)
        SELECT id, ts, v FROM r
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY ts DESC, n DESC, file_row_number DESC) = 1
            AND op IS DISTINCT FROM 'D'
        ORDER BY id""", {"paths": paths}).fetch_arrow_table().to_pylist()
    return rows


def live_files(ws: Workspace, table: str) -> tuple[set[str], int]:
    """(live data file paths, live position delete files) of the current snapshot."""
    t = ws.catalog().load_table(table)
    files = t.inspect.files().to_pylist()
    return ({f["file_path"] for f in files if f["content"] == 0},
            sum(1 for f in files if f["content"] == 1))


def changes(rng: random.Random, n: int, top: int, ts: range, deletes: float = 0.1) -> list[dict[str, Any]]:
    ids = rng.sample(range(top), n)
    return [{"id": i, "ts": rng.choice(ts), "v": f"v{rng.randrange(10**6)}",
             "op": "D" if rng.random() < deletes else "U"} for i in ids]


def test_merge_on_read_upserts_delete_by_position_and_equal_the_truth(ws: Workspace) -> None:
    rng = random.Random(21)
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, TARGET)
    keys = [parquet(ws, "deals/0.parquet", [{"id": i, "ts": 0, "v": "base", "op": "U"} for i in range(3000)],
                    SCHEMA)]
    assert ws.ingest(("land", keys[0])).count("committed") == 1
    base, deletes = live_files(ws, "crm.deals")
    assert deletes == 0
    for step in range(1, 5):  # several upserts, one of two objects in one batch
        batch = [parquet(ws, f"deals/{step}-{j}.parquet", changes(rng, 400, 3500, range(1, 50)), SCHEMA)
                 for j in range(1 if step % 2 else 2)]
        keys += batch
        report = ws.ingest(*[("land", k) for k in batch])
        assert report.count("committed") == len(batch), report.outcomes
        assert table_rows(ws, "crm.deals") == truth(ws, keys)
        s = summary(ws, "crm.deals")
        assert s["operation"] == "Operation.OVERWRITE"
        assert int(s["added-position-deletes"]) == int(s["lakeroute.upsert-replaced-rows"]) > 0
        assert int(s["added-delete-files"]) == int(s["lakeroute.upsert-delete-files"]) > 0
    data, deletes = live_files(ws, "crm.deals")
    assert base <= data, "merge-on-read never rewrote the base file"
    assert deletes > 0
    # redelivery: exactly once
    again = ws.ingest(("land", keys[1]), ("land", keys[2]))
    assert again.count("skipped") == 2
    assert table_rows(ws, "crm.deals") == truth(ws, keys)
