"""What the write_modes scenarios share: pristine copies of a base table and their restore,
route files, the truth computed in DuckDB, the table's digest, checked repeated runs."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import data
from fixtures import BUCKET, lakeroute_catalog
from harness import log, reset, run_child

TABLE = "bench.t"
EVENT_COLUMNS = [f.name for f in data.SCHEMA][1:]  # all but the id column

# ---------------------------------------------------------------- homes, routes, digests


def _link_or_copy(src: str, dst: str) -> None:
    """Data, manifest and metadata files are never changed in place: hard links; the SQLite
    catalog, ledger and journal are: copies."""
    if src.endswith((".parquet", ".avro", ".metadata.json")):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def keep_pristine(live: Path) -> Path:
    pristine = live.with_name(live.name + "-pristine")
    if pristine.exists():
        shutil.rmtree(pristine)
    shutil.copytree(live, pristine, copy_function=_link_or_copy)
    return pristine


def restore(pristine: Path, live: Path) -> None:
    if live.exists():
        shutil.rmtree(live)
    shutil.copytree(pristine, live, copy_function=_link_or_copy)


def route(routes: Path, name: str, prefix: str, target: dict[str, Any]) -> None:
    routes.mkdir(parents=True, exist_ok=True)
    doc = {"name": name, "source": {"bucket": BUCKET, "prefix": prefix},
           "target": {"table": TABLE, **target}, "sql": "SELECT * FROM source"}
    (routes / f"{name}.yaml").write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML


# The SQL here is built from the benchmark's own column names and generated file paths only.


def _hash_sql(columns: list[str], relation: str) -> str:
    return f"SELECT count(*) AS n, sum(hash({', '.join(columns)}))::VARCHAR AS h FROM {relation}"  # noqa: S608


def _sql_list(paths: list[Path] | list[str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def truth(columns: list[str], base: list[Path], new: list[Path], drop_where: str) -> dict[str, Any]:
    """Rows and hash of ``base`` minus the rows ``drop_where`` selects, plus ``new`` (DuckDB)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW base AS SELECT * FROM read_parquet({_sql_list(base)})")  # noqa: S608
        con.execute(f"CREATE VIEW new AS SELECT * FROM read_parquet({_sql_list(new)})")  # noqa: S608
        cols = ", ".join(columns)
        rel = f"(SELECT {cols} FROM base WHERE NOT ({drop_where}) UNION ALL SELECT {cols} FROM new)"  # noqa: S608
        n, h = con.execute(_hash_sql(columns, rel)).fetchone()
        return {"rows": n, "hash": h}
    finally:
        con.close()


def table_digest(home: Path, columns: list[str], since: int | None) -> dict[str, Any]:
    """Rows and hash of the table's live rows (data files minus their position deletes), and
    what the snapshots after ``since`` did (files deleted, added, read by lakeroute's upsert)."""
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog

    cat = lakeroute_catalog(home)
    tbl = SqlCatalog(cat["catalog_name"], **cat["catalog_properties"]).load_table(TABLE)
    tasks = list(tbl.scan().plan_files())
    paths = [t.file.file_path.removeprefix("file://") for t in tasks]
    # merge-on-read tables: the position delete files' rows are not live (an anti-join on
    # file and row number, as Iceberg readers apply them)
    deletes = sorted({d.file_path.removeprefix("file://") for t in tasks for d in t.delete_files})
    rel = f"read_parquet({_sql_list(paths)})"
    if deletes:
        rel = (f"(SELECT d.* FROM read_parquet({_sql_list(paths)}, filename = true, file_row_number = true) d "  # noqa: S608
               f"ANTI JOIN read_parquet({_sql_list(deletes)}) x "
               "ON replace(x.file_path, 'file://', '') = d.filename AND x.pos = d.file_row_number)")
    con = duckdb.connect()
    try:
        n, h = con.execute(_hash_sql(columns, rel)).fetchone()
    finally:
        con.close()
    out: dict[str, Any] = {"rows": n, "hash": h, "data_files": len(paths),
                           "snapshot_id": tbl.metadata.current_snapshot_id}
    if since is not None:
        later, seen = [], False
        for s in tbl.snapshots():
            if seen:
                later.append(s.summary.additional_properties if s.summary else {})
            seen = seen or s.snapshot_id == since
        out["snapshots"] = len(later)
        for prop in ("deleted-data-files", "added-data-files", "deleted-records", "added-records",
                     "lakeroute.upsert-files-read", "lakeroute.replaced-rows", "lakeroute.overwritten-files",
                     "added-delete-files", "added-position-deletes"):
            vals = [int(p[prop]) for p in later if prop in p]
            if vals:
                out[prop] = sum(vals)
        modes = [p["lakeroute.upsert-mode"] for p in later if "lakeroute.upsert-mode" in p]
        if modes:  # what the upsert chose (auto) or was told
            out["lakeroute.upsert-mode"] = ",".join(modes)
    return out


def _same(d: dict[str, Any], want: dict[str, Any]) -> bool:
    return d.get("rows") == want["rows"] and d.get("hash") == want["hash"]


def build(name: str, live: Path, routes: Path, landing: Path, refs: list[tuple[str, str]],
          columns: list[str], batch: int | None = None) -> tuple[Path, dict[str, Any]]:
    """The base table, built by lakeroute in ingest calls of ``batch`` objects (default: one
    call); kept as a pristine copy."""
    reset(live)
    r = run_child("lakeroute", {"routes": str(routes), "home": str(live), "landing": str(landing), "refs": refs,
                                "batch": batch})
    if r.get("statuses") != {"committed": len(refs)} or r.get("failures"):
        raise RuntimeError(f"{name}: building the base table failed: {r.get('statuses')} {r.get('failures')}")
    digest = table_digest(live, columns, None)
    log(f"{name}: base table built by lakeroute in {r['seconds']:.1f} s: {digest['rows']:,} rows, "
        f"{digest['data_files']:,} data files")
    return keep_pristine(live), {"seconds": round(r["seconds"], 3), "peak_rss_mb": r["peak_rss_mb"],
                                 "objects": len(refs), **digest}


# A run longer than this is not repeated (the scenario's time stays bounded).
REPEAT_UNDER_SECONDS = 20.0


def contender(kind: str, spec: dict[str, Any], pristine: Path, live: Path, columns: list[str],
              want: dict[str, Any], since: int, times: int, label: str,
              timeout: float | None = None) -> dict[str, Any]:
    """Up to ``times`` runs, each on a fresh copy, each checked: the median run plus all runs.
    After a run of more than REPEAT_UNDER_SECONDS (or one stopped at ``timeout``), no more."""
    runs: list[dict[str, Any]] = []
    for i in range(times):
        if runs and (runs[-1].get("stopped") or runs[-1]["seconds"] > REPEAT_UNDER_SECONDS):
            break
        restore(pristine, live)
        log(f"{label}" + (f" run {i + 1}/{times}" if times > 1 else ""))
        r = run_child(kind, dict(spec), timeout=timeout)
        if r.get("stopped"):
            r["table"] = {"checked": False}
            log(f"{label}: stopped after {r['seconds']:.0f} s")
        else:
            if r.get("statuses", {"committed": 1}) != {"committed": 1} or r.get("failures"):
                log(f"{label}: not committed: {r.get('statuses')} {r.get('failures')}")
            r["table"] = table_digest(live, columns, since)
            r["table"]["correct"] = _same(r["table"], want)
            if not r["table"]["correct"]:
                log(f"{label}: WRONG RESULT: {r['table']} != {want}")
        runs.append(r)
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["runs_seconds"] = [round(r["seconds"], 3) for r in runs]
    out["best_seconds"] = round(ordered[0]["seconds"], 3)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] or 0 for r in runs)
    out["background_cpu_share"] = max(r["background_cpu_share"] for r in runs)
    out["correct"] = all(r["table"].get("correct", True) for r in runs)
    out["stopped"] = any(r.get("stopped") for r in runs)
    return out


def seconds_text(c: dict[str, Any]) -> float | str:
    """A contender's seconds for the metrics, ``"> N (stopped)"`` when it was stopped."""
    return f"> {c['seconds']:.0f} (stopped)" if c.get("stopped") else round(c["seconds"], 3)


def land(landing: Path, key: str, src: Path) -> tuple[str, str]:
    """Hard-link ``src`` to landing/<bucket>/<key> (replacing what is there); the ref."""
    dest = landing / BUCKET / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
    return (BUCKET, key)


def label_rows(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


