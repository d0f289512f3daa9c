"""The physical floor of a copy-on-write upsert whose keys span the whole key range: every data
file of the table is read and written back. Measured with pyarrow alone (no Iceberg, no join):
the 20 files of the unpartitioned upsert tables of ``write_modes_upsert`` (200 keyed objects
appended 10 at a time: one zstd file per 10 objects) read whole and written back with zstd,
files read 4 at a time as lakeroute does. Medians of REPEAT runs, load average before and after.

    .venv/bin/python benchmarks/upsert_floor.py [OUT.json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
from harness import WORK, reset  # noqa: E402

FILES = 20
THREADS = 4  # core.write.modes.READ_THREADS


def table_files(rows: int, folder: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    objects = data.keyed_objects(rows, data.Sizes().upsert_objects)
    per = len(objects) // FILES
    out = []
    for i in range(FILES):
        path = folder / f"file-{i:02d}.parquet"
        pq.write_table(pa.concat_tables(pq.read_table(p) for p in objects[i * per:(i + 1) * per]), path,
                       compression="zstd")
        out.append(path)
    return out


def rewrite(files: list[Path], out: Path) -> float:
    import pyarrow.parquet as pq

    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        tables = pool.map(pq.read_table, files)
        for path, table in zip(files, tables, strict=True):
            pq.write_table(table, out / path.name, compression="zstd")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    out = Path(next((a for a in argv if a.endswith(".json")), str(WORK / "upsert-floor.json")))
    repeat = int(os.environ.get("REPEAT", "5"))
    results = {}
    for rows in data.Sizes().upsert_table_rows:
        work = reset(WORK / f"upsert_floor_{rows}")
        (work / "in").mkdir()
        (work / "out").mkdir()
        files = table_files(rows, work / "in")
        before = os.getloadavg()
        runs = [rewrite(files, work / "out") for _ in range(repeat)]
        results[f"upsert_floor_{data_label(rows)}"] = {
            "rows": rows, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "seconds_median": round(statistics.median(runs), 3), "runs": [round(r, 3) for r in runs],
            "load_before": before, "load_after": os.getloadavg()}
        print(rows, json.dumps(results[f"upsert_floor_{data_label(rows)}"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


def data_label(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else str(rows)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
