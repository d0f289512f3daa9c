"""write_modes, upsert: lakeroute ``mode: upsert`` vs PyIceberg ``Table.upsert`` (see write_modes.py).

Per table size (1M, 4M rows from 200 objects) and layout (unpartitioned, ``bucket(64, id)``):
the base table built by lakeroute in one ingest call of the 200 objects: unpartitioned by an
append route (one data file per object: 200), ``bucket(64, id)`` by the upsert route itself
(one file per bucket: 64; ``bucket_build_mode="append"`` gives one file per object and
bucket instead: 12,800). Then a 50k-row batch, 10% new keys, the rest over the whole key
range (no mode declared: lakeroute chooses per commit; into the unpartitioned tables also the
same batch with ``merge-on-read`` and with ``copy-on-write`` declared by the route); into the
bucket tables also a batch whose keys fall in 3 of the 64 buckets. Both
contenders are stopped after their time limit (a lower bound is reported then). The
full-range batch into a bucket table larger than ``bucket_full_range_max_rows`` is not run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import data
from fixtures import lakeroute_catalog
from harness import Options, profiles_dir, run_child

from scenarios.write_modes_support import (
    EVENT_COLUMNS,
    TABLE,
    build,
    contender,
    label_rows,
    land,
    restore,
    route,
    seconds_text,
    truth,
)

COLUMNS = ["id", *EVENT_COLUMNS]
MOR = {"write.merge.mode": "merge-on-read"}  # the route opts the table in (core.write.merge_on_read)
COW = {"write.merge.mode": "copy-on-write"}  # the route opts the table out
DECLARED = {"mor": MOR, "cow": COW}  # unpartitioned: the default batch ("full": no mode declared,
# lakeroute chooses per commit) and the same batch under each declared mode, for comparison
LAYOUTS: tuple[list[str] | None, ...] = (None, ["bucket(64, id)"])  # partition_by of the tables
FEW_BUCKETS = (5, 23, 42)  # 3 of 64: ~5% of the partitions


def _speedup(slow: dict[str, Any], fast: dict[str, Any]) -> tuple[float | str, bool | None]:
    """PyIceberg's time over lakeroute's, as a lower bound when PyIceberg was stopped; None
    (unknown) when lakeroute was stopped."""
    if fast.get("stopped"):
        return "unknown (lakeroute stopped)", None
    ratio = slow["seconds"] / fast["seconds"]
    if slow.get("stopped"):
        return f"> {ratio:.1f}", True if ratio >= 10 else None
    return round(ratio, 2), ratio >= 10


def scenario_upsert(opt: Options, work: Path, only: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """``only``: "unpartitioned" and/or "bucket64" (default: every layout of ``LAYOUTS``)."""
    sz = opt.sizes
    layouts = [p for p in LAYOUTS if only is None or ("bucket64" if p else "unpartitioned") in only]
    landing = work / "landing"
    out: dict[str, dict[str, Any]] = {}
    for rows in sz.upsert_table_rows:
        objects = data.keyed_objects(rows, sz.upsert_objects)
        size = label_rows(rows)
        base_refs = [land(landing, f"base-{size}/{f.name}", f) for f in objects]
        for partition_by in layouts:
            label = f"upsert_{size}" + ("_bucket64" if partition_by else "")
            slug = label.replace("_", "-")
            part = {"partition_by": partition_by} if partition_by else {}
            build_mode = ({"mode": "upsert", "key": ["id"]} if partition_by and sz.bucket_build_mode == "upsert"
                          else {})
            route(work / f"routes-build-{slug}", f"build-{slug}", f"base-{size}/", {**build_mode, **part})
            route(work / f"routes-{slug}", f"up-{slug}", f"up-{slug}/", {"mode": "upsert", "key": ["id"], **part})
            live = work / label / "home"
            # Unpartitioned: appended in SQS-sized batches of 10 objects, as the function would
            # (one shared data file per batch: 20 files); bucket(64): one upsert call.
            batch = None if partition_by else sz.upsert_build_batch
            pristine, base = build(label, live, work / f"routes-build-{slug}", landing, base_refs, COLUMNS, batch)
            base["build_mode"] = (f"built by a {build_mode.get('mode', 'append')} route in "
                                  + (f"ingest calls of {batch} objects" if batch else "one ingest call"))
            batches = []
            if not partition_by or rows <= sz.bucket_full_range_max_rows:
                batches.append(("full", data.upsert_batch(rows, sz.upsert_batch_rows)))
            if partition_by:
                batches.append(("5pct", data.upsert_batch(rows, sz.upsert_batch_rows, buckets=FEW_BUCKETS)))
            if not partition_by:  # the same batch, each mode declared
                for tag, props in DECLARED.items():
                    declared = f"{slug}-{tag}"
                    route(work / f"routes-{declared}", f"up-{declared}", f"up-{declared}/",
                          {"mode": "upsert", "key": ["id"], "properties": props})
                    batches.append((tag, batches[0][1]))
            for tag, batch in batches:
                name = label if tag == "full" else f"{label}_{tag}"
                prefix = f"up-{slug}-{tag}" if tag in DECLARED else f"up-{slug}"
                out[name] = _one_batch(opt, work, name, tag, rows, bool(partition_by), batch,
                                       land(landing, f"{prefix}/batch-{tag}.parquet", batch),
                                       objects, base, pristine, live, out.get(label))
            shutil.rmtree(live.parent)  # this table's live home and pristine copy
    # peak RSS must not grow with the table: the largest table's vs the smallest's
    for suffix in ("", "_bucket64", "_bucket64_5pct"):
        small, large = (f"upsert_{label_rows(r)}{suffix}" for r in (sz.upsert_table_rows[0], sz.upsert_table_rows[-1]))
        if small != large and small in out and large in out:
            a = out[small]["contenders"]["lakeroute"]["peak_rss_mb"]
            b = out[large]["contenders"]["lakeroute"]["peak_rss_mb"]
            out[large]["metrics"]["rss_vs_smaller_table"] = round(b / max(a, 1), 2)
    return out


def _one_batch(opt: Options, work: Path, name: str, tag: str, rows: int, bucketed: bool, batch: Path,
               ref: tuple[str, str], objects: list[Path], base: dict[str, Any], pristine: Path, live: Path,
               full: dict[str, Any] | None) -> dict[str, Any]:
    sz = opt.sizes
    slug = name.removesuffix("_5pct").replace("_", "-")  # (_mor, _cow: their own route, same table)
    want = truth(COLUMNS, objects, [batch], f"id IN (SELECT id FROM read_parquet('{batch}'))")  # noqa: S608
    lr_spec = {"routes": str(work / f"routes-{slug}"), "home": str(live), "landing": str(work / "landing"),
               "refs": [ref]}
    lr = contender("lakeroute", lr_spec, pristine, live, COLUMNS, want, base["snapshot_id"], opt.repeat,
                   f"{name}: lakeroute upsert", timeout=sz.lakeroute_timeout_seconds)
    if opt.profile:
        restore(pristine, live)
        run_child("lakeroute", {**lr_spec, "profile": str(profiles_dir() / f"{name}-lakeroute.txt")},
                  timeout=sz.lakeroute_timeout_seconds)
    contenders: dict[str, Any] = {"lakeroute": lr}
    metrics: dict[str, Any] = {
        "table_rows": base["rows"], "table_data_files": base["data_files"], "batch_rows": sz.upsert_batch_rows,
        "lakeroute_seconds": seconds_text(lr), "lakeroute_peak_rss_mb": lr["peak_rss_mb"],
        "lakeroute_files_read": lr["table"].get("lakeroute.upsert-files-read"),
        "lakeroute_files_deleted": lr["table"].get("deleted-data-files"),
        "lakeroute_files_added": lr["table"].get("added-data-files"),
        "lakeroute_delete_files_added": lr["table"].get("added-delete-files"),
        "lakeroute_position_deletes": lr["table"].get("added-position-deletes"),
        "lakeroute_upsert_mode": lr["table"].get("lakeroute.upsert-mode"),
    }
    targets: dict[str, bool] = {"lakeroute_peak_rss_mb <= 1000": lr["peak_rss_mb"] <= 1000}
    if tag in ("full", *DECLARED):
        pi = contender("pyiceberg_upsert", {**lakeroute_catalog(live), "table": TABLE, "input": str(batch),
                                            "join_cols": ["id"]},
                       pristine, live, COLUMNS, want, base["snapshot_id"], 1,
                       f"{name}: PyIceberg Table.upsert (stopped after {sz.pyiceberg_timeout_seconds:.0f} s)",
                       timeout=sz.pyiceberg_timeout_seconds)
        contenders["pyiceberg_upsert"] = pi
        speedup, met = _speedup(pi, lr)
        metrics["pyiceberg_seconds"] = seconds_text(pi)
        metrics["pyiceberg_peak_rss_mb"] = pi["peak_rss_mb"]
        metrics["pyiceberg_files_deleted"] = pi["table"].get("deleted-data-files")
        metrics["speedup_vs_pyiceberg"] = speedup
        if met is not None:
            targets["speedup_vs_pyiceberg >= 10"] = met
    elif full is not None and not full["contenders"]["lakeroute"].get("stopped") and not lr.get("stopped"):
        f = full["metrics"]
        metrics["full_range_seconds"] = f["lakeroute_seconds"]
        metrics["full_range_files_read"] = f["lakeroute_files_read"]
        metrics["time_vs_full_range"] = round(lr["seconds"] / f["lakeroute_seconds"], 3)
        metrics["files_read_vs_full_range"] = round((metrics["lakeroute_files_read"] or 0)
                                                    / max(f["lakeroute_files_read"] or 1, 1), 3)
    if tag in ("full", *DECLARED) and not lr.get("stopped") and metrics["lakeroute_files_read"]:
        metrics["lakeroute_ms_per_file_read"] = round(lr["seconds"] / metrics["lakeroute_files_read"] * 1000, 1)
    how = ("bucket(64, id), keys in 3 of the 64 buckets" if tag == "5pct"
           else "bucket(64, id)" if bucketed else "unpartitioned")
    if tag == "mor":
        how += ", merge-on-read (position delete files; write.merge.mode set by the upsert route)"
    elif tag == "cow":
        how += ", copy-on-write (write.merge.mode set by the upsert route)"
    elif tag == "full":
        how += (", no mode declared (lakeroute chose "
                f"{lr['table'].get('lakeroute.upsert-mode', 'unknown (stopped)')})")
    checked = [c["correct"] for c in contenders.values() if not c.get("stopped")]
    metrics["results_match_truth"] = all(checked) if checked else "not checked (stopped)"
    return {
        "description": f"upsert of {sz.upsert_batch_rows:,} rows (10% new keys"
                       + (", the rest over the whole key range" if tag in ("full", *DECLARED) else "")
                       + f") into {base['rows']:,} rows built from {sz.upsert_objects} objects "
                       f"({base['data_files']:,} data files, {base['build_mode']}), {how}",
        "expected_rows": want["rows"], "base": base, "contenders": contenders,
        "metrics": metrics, "targets": targets, "correct": all(checked),
    }
