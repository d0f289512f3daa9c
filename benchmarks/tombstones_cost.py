"""What CDC tombstones cost an upsert commit (standalone; not part of run.py's scenarios).

    uv run python benchmarks/tombstones_cost.py

Per configuration, in a child process of its own (peak RSS is the child's): a CDC table of
100,000 rows (`key: [id]` long, `order_by: lsn`), then N deletes of other keys (N tombstones),
then 5 batches, each one file of 1,000 updates of live rows, 10 late updates of deleted keys
(stopped by their tombstones) and 10 new deletes (so the set is rewritten every time). Printed:
the median commit seconds of those batches (``IngestReport.commits[].seconds``: load, plan,
write, catalog commit), the tombstones file size and the peak RSS. The baseline is the same
run with ``tombstone_days: 0`` (no tombstones). The load average is printed: the machine may
be shared.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [(0, 0.0), (0, 14.0), (100_000, 14.0), (1_000_000, 14.0)]


def child(n: int, days: float) -> dict[str, float]:
    import pyarrow as pa

    sys.path.insert(0, str(ROOT))
    from tests.support.workspace import Workspace

    ws = Workspace(Path(tempfile.mkdtemp(prefix="lakeroute-tombstones-")))
    ws.route("c", {"bucket": "land", "prefix": "c/"},
             {"table": "crm.c", "mode": "upsert", "key": ["id"], "order_by": "lsn",
              "operation": {"column": "op", "delete": ["D"], "tombstone_days": days}})
    rows = 100_000
    schema = pa.schema([("id", pa.int64()), ("lsn", pa.int64()), ("op", pa.string()), ("v", pa.string())])
    ws.put("land", "c/base.parquet", pa.table({
        "id": pa.array(range(10_000_000, 10_000_000 + rows), pa.int64()), "lsn": pa.array([1] * rows, pa.int64()),
        "op": ["I"] * rows, "v": ["x"] * rows}, schema=schema))
    ws.ingest(("land", "c/base.parquet"))
    if n:
        ws.put("land", "c/deletes.parquet", pa.table({
            "id": pa.array(range(n), pa.int64()), "lsn": pa.array([5] * n, pa.int64()), "op": ["D"] * n,
            "v": pa.nulls(n, pa.string())}, schema=schema))
        ws.ingest(("land", "c/deletes.parquet"))
    seconds = []
    for b in range(5):
        batch = [{"id": 10_000_000 + b * 1000 + j, "lsn": 10 + b, "op": "U", "v": "y"} for j in range(1000)]
        batch += [{"id": b * 10 + j, "lsn": 2, "op": "U", "v": "late"} for j in range(10)]
        batch += [{"id": 20_000_000 + b * 10 + j, "lsn": 10, "op": "D", "v": None} for j in range(10)]
        ws.put("land", f"c/{b}.parquet", pa.Table.from_pylist(batch, schema=schema))
        report = ws.ingest(("land", f"c/{b}.parquet"))
        assert report.count("committed") == 1, report.outcomes
        seconds.append(report.commits[0]["seconds"])
    live = {r["id"] for r in ws.rows("crm.c")}
    assert not (n and days) or not any(i < n for i in live), "a late update re-inserted a deleted key"
    path = ws.catalog().load_table("crm.c").properties.get("lakeroute.tombstones", "")
    return {"median_s": statistics.median(seconds), "min_s": min(seconds),
            "file_mb": os.path.getsize(path.removeprefix("file://")) / 1e6 if path else 0.0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), float(sys.argv[3]))))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for n, days in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), str(days)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"tombstones {n:>9,} (tombstone_days {days:g}): commit median {r['median_s']:.3f} s "
              f"(min {r['min_s']:.3f}), file {r['file_mb']:.2f} MB, peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
