"""Where an upsert's copy-on-write stops paying: declared copy-on-write against declared
merge-on-read, interleaved (A/B per run, each on a fresh copy of the same table), over batches
whose keys span 1..20 of the 20 files (50,000 rows, ~2.9 MB each) of the 1M-row benchmark
table, in batches of 5,000 and 50,000 rows. The ratio that matters is the rows copy-on-write
rewrites per batch row (``core.write.merge_on_read.choose_mode``). In one process (the commit
only, no interpreter start), medians, load average before and after.

    .venv/bin/python benchmarks/upsert_threshold.py [OUT.json]   (REPEAT=3 by default)
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
from harness import WORK, reset  # noqa: E402
from scenarios.write_modes_support import BUCKET, TABLE, keep_pristine, land, restore, route  # noqa: E402

ROWS, OBJECTS, PER_CALL = 1_000_000, 200, 10  # 20 files of 50,000 contiguous ids (as write_modes_upsert)
MODES = {"cow": "copy-on-write", "mor": "merge-on-read"}
CASES = [(50_000, 1), (50_000, 2), (50_000, 5), (50_000, 20), (5_000, 1), (5_000, 2), (5_000, 20)]


def batch_file(folder: Path, objects: list[Path], rows: int, files: int) -> Path:
    """``rows`` rows of distinct ids drawn from the first ``files`` files' ids (values kept: the
    cost does not depend on them)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    span = ROWS // 20 * files
    ids = sorted(random.Random(rows * 100 + files).sample(range(span), rows))
    per = len(objects) // 20 * files
    base = pa.concat_tables(pq.read_table(p) for p in objects[:per])
    path = folder / f"batch-{rows}-{files}.parquet"
    pq.write_table(base.filter(pc.is_in(base.column("id"), value_set=pa.array(ids, pa.int64()))), path,
                   compression="zstd")
    return path


def ingest(routes: Path, home: Path, landing: Path, refs: list[tuple[str, str]]) -> float:
    from lakeroute.core.pipeline import ObjectRef
    from lakeroute.local import LocalPaths, local_pipeline

    start = time.perf_counter()
    report = local_pipeline(LocalPaths(routes, home, landing)).ingest([ObjectRef(b, k) for b, k in refs])
    assert report.count("committed") == len(refs), [(o.status, o.message) for o in report.outcomes]
    return time.perf_counter() - start


def summary(home: Path) -> dict[str, str]:
    from lakeroute.local import local_catalog

    snap = local_catalog(home).load_table(TABLE).current_snapshot()
    assert snap is not None
    return dict(snap.summary.additional_properties)


def main(argv: list[str]) -> int:
    out = Path(next((a for a in argv if a.endswith(".json")), str(WORK / "upsert-threshold.json")))
    repeat = int(os.environ.get("REPEAT", "3"))
    work = reset(WORK / "upsert_threshold")
    landing, live = work / "landing", work / "home"
    objects = data.keyed_objects(ROWS, OBJECTS)
    refs = [land(landing, f"base/{p.name}", p) for p in objects]
    route(work / "routes-build", "build", "base/", {})
    for tag, mode in MODES.items():  # routes feeding one table agree on its settings: a folder each
        route(work / f"routes-{tag}", f"up-{tag}", f"{tag}/", {"mode": "upsert", "key": ["id"],
                                                        "properties": {"write.merge.mode": mode}})
    for i in range(0, len(refs), PER_CALL):
        ingest(work / "routes-build", live, landing, refs[i:i + PER_CALL])
    pristine = keep_pristine(live)
    (work / "batches").mkdir()
    results: list[dict[str, Any]] = []
    for rows, files in CASES:
        batch = batch_file(work / "batches", objects, rows, files)
        runs: dict[str, list[float]] = {t: [] for t in MODES}
        stats: dict[str, dict[str, str]] = {}
        before = os.getloadavg()
        for _ in range(repeat):
            for tag in MODES:  # A/B interleaved
                restore(pristine, live)
                ref = land(landing, f"{tag}/{batch.name}", batch)
                runs[tag].append(ingest(work / f"routes-{tag}", live, landing, [ref]))
                stats[tag] = summary(live)
        cow, mor = (statistics.median(runs[t]) for t in MODES)
        rewrite = int(stats["cow"].get("lakeroute.upsert-files-read", "0")) * (ROWS // 20)
        results.append({"batch_rows": rows, "files_spanned": files, "rewrite_rows_per_batch_row": rewrite / rows,
                        "cow_seconds": round(cow, 3), "mor_seconds": round(mor, 3), "cow_over_mor": round(cow / mor, 2),
                        "runs": runs, "files_read": stats["cow"].get("lakeroute.upsert-files-read"),
                        "load_before": before, "load_after": os.getloadavg()})
        print(json.dumps(results[-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bucket": BUCKET, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
