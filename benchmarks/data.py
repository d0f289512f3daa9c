"""Deterministic benchmark inputs under ``benchmarks/data/`` (gitignored), reused when present.

Every file comes from a seeded generator built on pyarrow.compute (no numpy needed), so the
same parameters give the same bytes on the same pyarrow version. A ``manifest.json`` beside
the files records the parameters; a dataset whose recorded parameters differ is rebuilt.

Row shape (one "event"), ~100 Arrow bytes per row:
    event_id int64, ts timestamp[us, UTC] (increasing), user_id int64, amount double,
    category string (10 values), country string (40 values), payload string (~48 chars,
    65,536 distinct values)
"""

from __future__ import annotations

import functools
import json
import os
import random
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

GENERATOR_VERSION = 2
DATA = Path(__file__).resolve().parent / "data"
START_US = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z in microseconds
DAY_US = 86_400_000_000

SCHEMA = pa.schema([
    ("event_id", pa.int64()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("user_id", pa.int64()),
    ("amount", pa.float64()),
    ("category", pa.string()),
    ("country", pa.string()),
    ("payload", pa.string()),
])


def _log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


@functools.cache
def _pools() -> tuple[pa.Array, pa.Array, pa.Array]:
    """Value pools shared by every dataset (one fixed seed); rows pick from them at random."""
    rng = random.Random(20261101)
    alphabet = string.ascii_letters + string.digits + " "
    categories = pa.array([f"category-{i}" for i in range(10)])
    countries = pa.array(["".join(rng.choice(string.ascii_uppercase) for _ in range(2))
                          for _ in range(40)])
    payloads = pa.array(["".join(rng.choice(alphabet) for _ in range(rng.randint(32, 64)))
                         for _ in range(65_536)])
    return categories, countries, payloads


def _index(rand: pa.Array, n: int) -> pa.Array:
    return pc.cast(pc.floor(pc.multiply(rand, float(n))), pa.int32())


def batches(rows: int, *, seed: int, span_days: float, batch_rows: int = 1_048_576,
            first_id: int = 0) -> Iterator[pa.RecordBatch]:
    """``rows`` event rows in batches; ``ts`` increases evenly over ``span_days``."""
    categories, countries, payloads = _pools()
    step = span_days * DAY_US / max(rows, 1)
    done = 0
    part = 0
    while done < rows:
        n = min(batch_rows, rows - done)
        # pc.random is seeded per call: derive one seed per (dataset, batch, column)
        r = [pc.random(n, initializer=seed * 1_000_003 + part * 17 + c) for c in range(5)]
        ids = pa.array(range(first_id + done, first_id + done + n), pa.int64())
        offsets = pc.multiply(pc.cast(ids, pa.float64()), step)
        ts = pc.cast(pc.cast(pc.floor(pc.add(offsets, float(START_US))), pa.int64()),
                     pa.timestamp("us", tz="UTC"))
        yield pa.RecordBatch.from_arrays([
            ids,
            ts,
            pc.add(pc.cast(pc.floor(pc.multiply(r[0], 1_000_000.0)), pa.int64()), 1),
            pc.round(pc.multiply(r[1], 1000.0), 2),
            categories.take(_index(r[2], len(categories))),
            countries.take(_index(r[3], len(countries))),
            payloads.take(_index(r[4], len(payloads))),
        ], schema=SCHEMA)
        done += n
        part += 1


@dataclass(frozen=True)
class Sizes:
    small_files: int = 300
    small_rows: int = 850  # ~50 KB of zstd Parquet per file
    concurrency_procs: int = 8
    concurrency_files: int = 25  # per process
    large_rows: int = 10_800_000  # ~1.07 GB as Arrow (checked after writing)
    large_min_arrow_bytes: int = 1 << 30
    csv_min_bytes: int = 500 * 1024 * 1024
    maintenance_commits: int = 1000
    # write_modes
    upsert_table_rows: tuple[int, ...] = (1_000_000, 4_000_000)
    upsert_objects: int = 200  # the base table is built from this many objects
    upsert_batch_rows: int = 50_000
    upsert_build_batch: int = 10  # unpartitioned base tables: objects per ingest call (SQS batch)
    pyiceberg_timeout_seconds: float = 150.0  # PyIceberg's upsert is stopped after this
    lakeroute_timeout_seconds: float = 240.0  # and lakeroute's
    bucket_full_range_max_rows: int = 4_000_000  # larger bucket(64) tables: only the 5% batch
    # How the bucket(64, id) base tables are built from their objects, in one ingest call:
    # "upsert" (the upsert route itself: one file per bucket) or "append" (one file per
    # object and bucket: 12,800 small files from 200 objects).
    bucket_build_mode: str = "upsert"
    overwrite_days: int = 365
    overwrite_day_rows: int = 5_000
    replace_objects: tuple[int, ...] = (100, 1_000)
    replace_rows: int = 1_000
    # lane (scenarios/lane.py): objects per run; ingest processes with the lane; the baseline's
    lane_objects: int = 200
    lane_workers: tuple[int, ...] = (1, 2, 4, 8, 16)
    lane_baseline_workers: tuple[int, ...] = (1, 16)
    lane_rows: tuple[int, ...] = (10, 1_000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(small_files=30, concurrency_procs=4, concurrency_files=5,
                   large_rows=600_000, large_min_arrow_bytes=0, csv_min_bytes=24 * 1024 * 1024,
                   maintenance_commits=120,
                   upsert_table_rows=(50_000, 200_000), upsert_objects=10, upsert_batch_rows=2_500,
                   pyiceberg_timeout_seconds=30.0, lakeroute_timeout_seconds=60.0,
                   overwrite_days=30, overwrite_day_rows=500,
                   replace_objects=(10, 100), replace_rows=100,
                   lane_objects=30, lane_workers=(1, 4), lane_baseline_workers=(1, 4), lane_rows=(10,))


def _manifest_ok(folder: Path, params: dict) -> bool:
    try:
        return json.loads((folder / "manifest.json").read_text()) == params
    except (OSError, ValueError):
        return False


def _finish(folder: Path, params: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(params, indent=2) + "\n")


def _reset(folder: Path) -> None:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def small_files(count: int, rows: int, name: str = "small") -> list[Path]:
    """``count`` Parquet files of ``rows`` rows each (zstd), one 'hour' of events per file."""
    import pyarrow.parquet as pq

    folder = DATA / f"{name}-{count}x{rows}"
    params = {"generator": GENERATOR_VERSION, "count": count, "rows": rows, "pyarrow": pa.__version__}
    files = [folder / f"part-{i:04d}.parquet" for i in range(count)]
    if _manifest_ok(folder, params):
        return files
    _log(f"writing {count} small Parquet files to {folder}")
    _reset(folder)
    for i, path in enumerate(files):
        batch = next(batches(rows, seed=1000 + i, span_days=1 / 24, first_id=i * rows))
        pq.write_table(pa.Table.from_batches([batch]), path, compression="zstd")
    _finish(folder, params)
    return files


def large_parquet(rows: int, min_arrow_bytes: int) -> Path:
    """One Parquet file (zstd, 1 Mi-row row groups) of ``rows`` rows spanning 30 days."""
    import pyarrow.parquet as pq

    folder = DATA / f"large-{rows}"
    path = folder / "events.parquet"
    params = {"generator": GENERATOR_VERSION, "rows": rows, "pyarrow": pa.__version__}
    if _manifest_ok(folder, params):
        return path
    _log(f"writing {rows:,} rows to {path}")
    _reset(folder)
    arrow_bytes = 0
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as w:
        for b in batches(rows, seed=42, span_days=30):
            arrow_bytes += b.nbytes
            w.write_batch(b)
    if arrow_bytes < min_arrow_bytes:
        raise SystemExit(f"large file is only {arrow_bytes:,} Arrow bytes; raise Sizes.large_rows")
    _finish(folder, {**params, "arrow_bytes": arrow_bytes})
    params["arrow_bytes"] = arrow_bytes
    return path


def large_arrow_bytes(path: Path) -> int:
    return int(json.loads((path.parent / "manifest.json").read_text())["arrow_bytes"])


def large_csv(min_bytes: int) -> Path:
    """A CSV file (header, comma) of at least ``min_bytes`` bytes, 10 days of events."""
    import pyarrow.csv as pacsv

    folder = DATA / f"csv-{min_bytes}"
    path = folder / "events.csv"
    params = {"generator": GENERATOR_VERSION, "min_bytes": min_bytes, "pyarrow": pa.__version__}
    if _manifest_ok(folder, params):
        return path
    _log(f"writing >= {min_bytes / 2**20:.0f} MiB of CSV to {path}")
    _reset(folder)
    rows_guess = min_bytes // 100 + 1  # ~115 bytes a row: stops early, by size
    with open(path, "wb") as f, pacsv.CSVWriter(f, SCHEMA) as w:
        for b in batches(rows_guess * 2, seed=7, span_days=10, batch_rows=262_144):
            w.write_batch(b)
            if f.tell() >= min_bytes:
                break
    if os.path.getsize(path) < min_bytes:
        raise SystemExit("CSV generator stopped short")
    _finish(folder, params)
    return path


# ---------------------------------------------------------------- write modes (scenarios/write_modes.py)

KEYED_SCHEMA = pa.schema([pa.field("id", pa.int64()), *list(SCHEMA)[1:]])


def _keyed(batch: pa.RecordBatch, ids: pa.Array | None = None) -> pa.Table:
    """An event batch with ``event_id`` named ``id`` (optionally replaced by ``ids``)."""
    cols = batch.columns
    return pa.Table.from_arrays([ids if ids is not None else cols[0], *cols[1:]], schema=KEYED_SCHEMA)


def keyed_objects(rows: int, count: int) -> list[Path]:
    """``count`` Parquet objects holding ids 0..rows-1, each a contiguous range (as daily
    exports of a growing table are): the base of an upsert table."""
    import pyarrow.parquet as pq

    folder = DATA / f"keyed-{rows}x{count}"
    params = {"generator": GENERATOR_VERSION, "rows": rows, "count": count, "pyarrow": pa.__version__}
    per = rows // count
    files = [folder / f"part-{i:04d}.parquet" for i in range(count)]
    if _manifest_ok(folder, params):
        return files
    _log(f"writing {count} keyed objects ({rows:,} rows) to {folder}")
    _reset(folder)
    for i, path in enumerate(files):
        n = per if i < count - 1 else rows - per * (count - 1)
        b = next(batches(n, seed=5000 + i, span_days=1, first_id=i * per, batch_rows=n))
        pq.write_table(_keyed(b), path, compression="zstd")
    _finish(folder, params)
    return files


def bucket_of(ids: pa.Array, n: int) -> pa.Array:
    """Iceberg's bucket(n) of long ids (PyIceberg's own transform)."""
    from pyiceberg.transforms import BucketTransform
    from pyiceberg.types import LongType

    return BucketTransform(n).pyarrow_transform(LongType())(ids)


def upsert_batch(table_rows: int, batch_rows: int, new_share: float = 0.1,
                 buckets: tuple[int, ...] = (), of: int = 64) -> Path:
    """One Parquet object of ``batch_rows`` distinct keys: ``new_share`` of them new (ids past
    the table), the rest drawn at random over the table's whole key range; with ``buckets``,
    only keys whose bucket(``of``, id) is one of them. Other columns: fresh values."""
    import pyarrow.parquet as pq

    tag = "full" if not buckets else "b" + "-".join(map(str, buckets))
    folder = DATA / f"upsert-{table_rows}-{batch_rows}-{tag}"
    path = folder / "batch.parquet"
    params = {"generator": GENERATOR_VERSION, "table_rows": table_rows, "batch_rows": batch_rows,
              "new_share": new_share, "buckets": list(buckets), "of": of, "pyarrow": pa.__version__}
    if _manifest_ok(folder, params):
        return path
    _reset(folder)
    rng = random.Random(table_rows * 31 + batch_rows)
    new = int(batch_rows * new_share)
    if buckets:
        def in_buckets(lo: int, hi: int) -> list[int]:
            ids = pa.array(range(lo, hi), pa.int64())
            keep = pc.is_in(bucket_of(ids, of), value_set=pa.array(buckets, pa.int32()))
            return ids.filter(keep).to_pylist()

        pool = in_buckets(0, table_rows)
        if len(pool) < batch_rows - new:
            raise SystemExit(f"only {len(pool):,} keys fall in buckets {buckets}: a smaller batch")
        old = rng.sample(pool, batch_rows - new)
        fresh = in_buckets(table_rows, table_rows + new * of * 2)[:new]
    else:
        old = rng.sample(range(table_rows), batch_rows - new)
        fresh = list(range(table_rows, table_rows + new))
    ids = pa.array(sorted(old) + fresh, pa.int64())
    b = next(batches(batch_rows, seed=9001 + len(buckets), span_days=1, batch_rows=batch_rows))
    pq.write_table(_keyed(b, ids), path, compression="zstd")
    _finish(folder, params)
    return path


DAILY_SCHEMA = pa.schema([pa.field("day", pa.date32()), *list(KEYED_SCHEMA)])


def daily_objects(days: int, rows: int) -> tuple[list[Path], Path]:
    """One Parquet object per day (a ``day`` date column, ``rows`` rows each) and a corrected
    re-export of day ``days // 2`` (90% of the rows, fresh values)."""
    import datetime as dt

    import pyarrow.parquet as pq

    folder = DATA / f"daily-{days}x{rows}"
    params = {"generator": GENERATOR_VERSION, "days": days, "rows": rows, "pyarrow": pa.__version__}
    files = [folder / f"day-{i:03d}.parquet" for i in range(days)]
    fix = folder / "fix" / f"day-{days // 2:03d}.parquet"
    if _manifest_ok(folder, params):
        return files, fix
    _log(f"writing {days} daily objects of {rows:,} rows to {folder}")
    _reset(folder)
    fix.parent.mkdir()
    first = dt.date(2026, 1, 1)

    def day_table(i: int, n: int, seed: int) -> pa.Table:
        t = _keyed(next(batches(n, seed=seed, span_days=1, first_id=i * rows, batch_rows=n)))
        return t.add_column(0, DAILY_SCHEMA.field("day"), pa.array([first + dt.timedelta(days=i)] * n, pa.date32()))

    for i, path in enumerate(files):
        pq.write_table(day_table(i, rows, 7000 + i), path, compression="zstd")
    pq.write_table(day_table(days // 2, rows * 9 // 10, 99), fix, compression="zstd")
    _finish(folder, params)
    return files, fix


def replace_version(index: int, rows: int) -> Path:
    """A corrected second version of ``small_files``' object ``index`` (90% of the rows)."""
    import pyarrow.parquet as pq

    folder = DATA / f"replace-v2-{index}x{rows}"
    path = folder / f"part-{index:04d}.parquet"
    params = {"generator": GENERATOR_VERSION, "index": index, "rows": rows, "pyarrow": pa.__version__}
    if _manifest_ok(folder, params):
        return path
    _reset(folder)
    n = rows * 9 // 10
    batch = next(batches(n, seed=424242, span_days=1 / 24, first_id=index * rows, batch_rows=n))
    pq.write_table(pa.Table.from_batches([batch]), path, compression="zstd")
    _finish(folder, params)
    return path
