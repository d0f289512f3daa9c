"""large: one Parquet file of >= 1 GiB as Arrow into an unpartitioned and a day(ts) partitioned
table, lakeroute vs the physical floor (pyarrow: read once, write once as zstd Parquet; by day
with pyarrow.dataset for the partitioned table) and the reference. ``floor_comparison`` also
serves the csv scenario. Targets: <= 1.2x floor, peak RSS <= 1.5 GiB."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import data
from fixtures import REFERENCE_SQL, lakeroute_catalog, link_landing, reference_setup, table_stats, write_route
from harness import WORK, Options, log, profiles_dir, repeated, reset, run_child

GIB = 1 << 30


def floor_comparison(opt: Options, name: str, description: str, src: Path, fmt: str,
                      arrow_bytes: int | None, expected_rows: int | None,
                      variants: list[tuple[str, list[str] | None]]) -> dict[str, dict[str, Any]]:
    work = reset(WORK / name)
    refs = link_landing(work / "landing", "big", [src])
    log(f"{name}: floor (pyarrow: read once, write once as zstd Parquet)")

    def floor_spec(_: int) -> dict[str, Any]:
        return {"input": str(src), "output": str(work / "floor.parquet"), "format": fmt}

    floor = repeated("floor", floor_spec, opt.repeat, label=f"{name}: floor")
    (work / "floor.parquet").unlink(missing_ok=True)
    expected = expected_rows if expected_rows is not None else floor["rows"]
    out: dict[str, dict[str, Any]] = {}
    home = work / "lakeroute-home"
    for suffix, partition_by in variants:
        label = name + suffix
        table = f"bench.{label}"
        routes = work / f"routes{suffix}"
        write_route(routes, f"bench-{label.replace('_', '-')}", "big", table, partition_by)
        how = f"partitioned by {', '.join(partition_by)}" if partition_by else "unpartitioned"

        def lr_spec(_: int, routes: Path = routes) -> dict[str, Any]:
            return {"routes": str(routes), "landing": str(work / "landing"), "home": str(reset(home)),
                    "refs": refs}

        def lr_check(_: int, __: dict[str, Any], table: str = table) -> dict[str, Any]:
            stats = table_stats(lakeroute_catalog(home), table, distinct=False)
            shutil.rmtree(home)
            return stats

        log(f"{label}: lakeroute ({how})")
        lr = repeated("lakeroute", lr_spec, opt.repeat, lr_check, f"{label}: lakeroute")
        contenders = {"floor": floor}
        if partition_by:
            col = partition_by[0].removeprefix("day(").removesuffix(")")
            log(f"{label}: partitioned floor (pyarrow.dataset.write_dataset by day)")

            def part_floor_spec(_: int, col: str = col) -> dict[str, Any]:
                out = work / "floor-partitioned"
                if out.exists():
                    shutil.rmtree(out)
                return {"input": str(src), "output": str(out), "format": fmt, "partition_day": col}

            contenders["floor_partitioned"] = repeated("floor", part_floor_spec, opt.repeat,
                                                       label=f"{label}: partitioned floor")
            shutil.rmtree(work / "floor-partitioned", ignore_errors=True)
        contenders["lakeroute"] = lr
        if opt.reference_large:
            log(f"{label}: reference (the whole file as one Arrow table, one append)")
            ref_home = work / "reference-home"
            cat = reference_setup(ref_home, f"ref.{label}", src, fmt, "ts" if partition_by else None)
            ref = run_child("reference", {
                **cat, "landing": str(work / "landing"), "refs": refs, "log": str(work / "reference.log"),
                "routing_table": {"big": {"target_table": f"ref.{label}", "query_sql": REFERENCE_SQL[fmt]}}})
            ref["table"] = table_stats(cat, f"ref.{label}", distinct=False)
            shutil.rmtree(ref_home)
            contenders["reference"] = ref
        if opt.profile:
            log(f"{label}: profiling lakeroute (pyinstrument)")
            run_child("lakeroute", {**lr_spec(0), "profile": str(profiles_dir() / f"{label}-lakeroute.txt")})
            shutil.rmtree(home)
        ratio = lr["seconds"] / floor["seconds"]
        metrics: dict[str, Any] = {"time_vs_floor": round(ratio, 3),
                                   "best_time_vs_best_floor": round(lr["best_seconds"] / floor["best_seconds"], 3),
                                   "lakeroute_peak_rss_mb": lr["peak_rss_mb"],
                                   "lakeroute_data_files": lr["table"]["data_files"],
                                   "input_mb": round(src.stat().st_size / 1e6, 1)}
        if "floor_partitioned" in contenders:
            metrics["time_vs_partitioned_floor"] = round(
                lr["seconds"] / contenders["floor_partitioned"]["seconds"], 3)
        if arrow_bytes:
            metrics["input_arrow_gib"] = round(arrow_bytes / GIB, 3)
        if "reference" in contenders:
            metrics["reference_time_vs_floor"] = round(contenders["reference"]["seconds"] / floor["seconds"], 3)
            metrics["reference_peak_rss_mb"] = contenders["reference"]["peak_rss_mb"]
        targets = {"time_vs_floor <= 1.2": ratio <= 1.2}
        if name == "large":
            targets["lakeroute_peak_rss_mb <= 1536 (1.5 GiB)"] = lr["peak_rss_mb"] <= 1536
        out[label] = {
            "description": f"{description}, {how}", "expected_rows": expected,
            "contenders": contenders, "metrics": metrics, "targets": targets,
            "correct": all(t["rows"] == expected for t in lr["tables_ok"]),
        }
    return out


def scenario_large(opt: Options) -> dict[str, dict[str, Any]]:
    sizes = opt.sizes
    src = data.large_parquet(sizes.large_rows, sizes.large_min_arrow_bytes)
    arrow_bytes = data.large_arrow_bytes(src)
    desc = (f"one Parquet file, {sizes.large_rows:,} rows, {src.stat().st_size / 1e6:.0f} MB on disk, "
            f"{arrow_bytes / GIB:.2f} GiB as Arrow")
    return floor_comparison(opt, "large", desc, src, "parquet", arrow_bytes, sizes.large_rows,
                             [("", None), ("_partitioned", ["day(ts)"])])
