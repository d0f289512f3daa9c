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

    @classmethod
    def quick(cls) -> Sizes:
        return cls(small_files=30, concurrency_procs=4, concurrency_files=5,
                   large_rows=600_000, large_min_arrow_bytes=0, csv_min_bytes=24 * 1024 * 1024,
                   maintenance_commits=120)


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
