"""small: 300 Parquet files of ~50 KB into one table, lakeroute (one ``Pipeline.ingest``,
fresh home) vs the reference design (one invocation, one commit per file). Target: >= 10x."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from fixtures import REFERENCE_SQL, exact, lakeroute_catalog, link_landing, reference_setup, table_stats, write_route
from harness import WORK, Options, log, paired, profiles_dir, reset, run_child


def scenario_small(opt: Options, files: list[Path]) -> dict[str, Any]:
    work = reset(WORK / "small")
    n, rows = opt.sizes.small_files, opt.sizes.small_rows
    refs = link_landing(work / "landing", "small", files[:n])
    write_route(work / "routes", "bench-small", "small", "bench.small")
    expected = n * rows

    def lr_spec(i: int) -> dict[str, Any]:
        home = reset(work / f"lakeroute-home-{i}")
        return {"routes": str(work / "routes"), "landing": str(work / "landing"),
                "home": str(home), "refs": refs}

    def lr_check(i: int, _: dict[str, Any]) -> dict[str, Any]:
        return table_stats(lakeroute_catalog(work / f"lakeroute-home-{i}"), "bench.small")

    log(f"small: lakeroute ({n} files in one ingest call) and the physical floor ({n} files read "
        "with pyarrow into one zstd file, fresh process), in turn")
    lr, floor, pairs = paired(("lakeroute", lr_spec),
                              ("floor_many", lambda i: {"inputs": [str(f) for f in files[:n]],
                                                        "output": str(work / f"floor-{i}.parquet")}),
                              opt.repeat, lr_check, "small:")

    log(f"small: reference, {n} invocations (one commit each); takes a while")
    cat = reference_setup(work / "reference-home", "ref.small", files[0], "parquet")
    ref_spec = {**cat, "landing": str(work / "landing"), "refs": refs, "log": str(work / "reference.log"),
                "routing_table": {"small": {"target_table": "ref.small",
                                            "query_sql": REFERENCE_SQL["parquet"]}}}
    ref = run_child("reference", ref_spec)
    ref["table"] = table_stats(cat, "ref.small")

    if opt.profile:
        log("small: profiling lakeroute (pyinstrument)")
        run_child("lakeroute", {**lr_spec(99), "profile": str(profiles_dir() / "small-lakeroute.txt")})
        k = min(50, n)
        log(f"small: profiling the reference on {k} files (pyinstrument)")
        cat2 = reference_setup(work / "reference-home-profiled", "ref.small", files[0], "parquet")
        run_child("reference", {**ref_spec, **cat2, "refs": refs[:k],
                                "profile": str(profiles_dir() / f"small-reference-{k}.txt")})

    speedup = ref["seconds"] / lr["seconds"]
    vs_floor = statistics.median(pairs)  # each ratio from one pair of runs, back to back
    return {
        "description": f"{n} Parquet files of ~{files[0].stat().st_size / 1000:.0f} KB "
                       f"({rows} rows each) into one table",
        "expected_rows": expected,
        "contenders": {"lakeroute": lr, "reference": ref, "floor": floor},
        "metrics": {"speedup_vs_reference": round(speedup, 2),
                    "lakeroute_vs_floor": round(vs_floor, 2),
                    "lakeroute_vs_floor_pairs": pairs,
                    "lakeroute_data_files": lr["tables_ok"][0].get("data_files") if lr.get("tables_ok") else None,
                    "lakeroute_ms_per_file": round(lr["seconds"] / n * 1000, 1),
                    "reference_ms_per_file": round(ref["seconds"] / n * 1000, 1)},
        "targets": {"speedup_vs_reference >= 10": speedup >= 10,
                    "lakeroute_vs_floor <= 3 (quiet machine)": vs_floor <= 3,
                    "lakeroute_vs_floor <= 4 (busy machine)": vs_floor <= 4},
        "correct": all(exact(t, expected) for t in lr["tables_ok"]),
    }
