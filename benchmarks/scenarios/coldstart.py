"""coldstart: a fresh process imports lakeroute.handler (else pipeline + local) and ingests one
small file into an existing table; also without bytecode, and a -X importtime breakdown.
Target: <= 1 s from spawn to ingest done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fixtures import link_landing, write_route
from harness import WORK, Options, child_env, log, reset, run_child


def _importtime(env: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """-X importtime of a cold-start child: self time summed per top-level package."""
    res = run_child("coldstart", spec, env=env, extra_args=["-X", "importtime"])
    per_package: dict[str, int] = {}
    lakeroute_modules: dict[str, int] = {}
    for line in res.pop("_stderr", "").splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        module = name.strip()
        top = module.split(".")[0]
        per_package[top] = per_package.get(top, 0) + int(self_us)
        if top == "lakeroute":
            lakeroute_modules[module] = int(cumulative_us)
    total = sum(per_package.values())
    top = sorted(per_package.items(), key=lambda kv: -kv[1])[:15]
    return {"note": "-X importtime inflates import times; compare shares, not absolute values",
            "total_import_seconds": round(total / 1e6, 3),
            "by_package_self_seconds": {k: round(v / 1e6, 3) for k, v in top},
            "lakeroute_modules_cumulative_seconds": {
                k: round(v / 1e6, 3) for k, v in sorted(lakeroute_modules.items(), key=lambda kv: -kv[1])}}


def scenario_coldstart(opt: Options, files: list[Path]) -> dict[str, Any]:
    """Each run: a fresh process creates the table with file A (the 'new table' case), then
    another fresh process ingests file B into it (the headline: a cold Lambda, table exists)."""
    work = reset(WORK / "coldstart")
    refs = link_landing(work / "landing", "cold", files[:2])
    write_route(work / "routes", "bench-cold", "cold", "bench.cold")

    def spec(home: str, ref: tuple[str, str]) -> dict[str, Any]:
        return {"routes": str(work / "routes"), "landing": str(work / "landing"),
                "home": str(work / home), "refs": [ref]}

    log("coldstart: warm-up (fills the bytecode cache, as compileall does in the image)")
    run_child("coldstart", spec("home-warmup", refs[0]))
    new_table, existing = [], []
    for i in range(max(3, opt.repeat)):
        log(f"coldstart: run {i + 1}")
        new_table.append(run_child("coldstart", spec(f"home-{i}", refs[0])))
        existing.append(run_child("coldstart", spec(f"home-{i}", refs[1])))
    log("coldstart: without bytecode (this dev environment's PYTHONDONTWRITEBYTECODE=1)")
    run_child("coldstart", spec("home-nopyc", refs[0]), env=child_env(bytecode=False))
    nopyc = run_child("coldstart", spec("home-nopyc", refs[1]), env=child_env(bytecode=False))
    log("coldstart: -X importtime")
    run_child("coldstart", spec("home-importtime", refs[0]))
    imports = _importtime(child_env(), spec("home-importtime", refs[1]))

    def med(runs: list[dict[str, Any]]) -> dict[str, Any]:
        ordered = sorted(runs, key=lambda r: r["spawn_to_done_seconds"])
        out = dict(ordered[(len(ordered) - 1) // 2])
        out["runs_spawn_to_done_seconds"] = [round(r["spawn_to_done_seconds"], 3) for r in runs]
        out["runs_process_wall_seconds"] = [r["process_wall_seconds"] for r in runs]
        return out

    head, new = med(existing), med(new_table)
    secs = head["spawn_to_done_seconds"]
    return {
        "description": "fresh process: import lakeroute.handler (+ pipeline, local), local pipeline, "
                       "ingest one small Parquet file into an existing table; seconds = process spawn "
                       "to ingest done (interpreter exit not included: a Lambda does not exit)",
        "contenders": {"lakeroute": head, "lakeroute_new_table": new, "lakeroute_no_bytecode": nopyc},
        "imports": imports,
        "metrics": {"spawn_to_done_seconds": round(secs, 3),
                    "new_table_spawn_to_done_seconds": round(new["spawn_to_done_seconds"], 3),
                    "no_bytecode_spawn_to_done_seconds": round(nopyc["spawn_to_done_seconds"], 3),
                    "process_wall_seconds_incl_exit": head["process_wall_seconds"],
                    **{f"phase_{k}": round(v, 3) for k, v in head["phases"].items()}},
        "targets": {"spawn_to_done_seconds <= 1": secs <= 1.0},
        "correct": head["rows"] == opt.sizes.small_rows,
    }
