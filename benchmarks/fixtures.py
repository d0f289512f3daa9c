"""A scenario's inputs and checks: the landing folder, route files, the catalogs (lakeroute's and
the reference's, with its table created up front) and the rows a table holds afterwards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BUCKET = "bench-landing"
REFERENCE_SQL = {"parquet": "SELECT * FROM read_parquet('{s3_input_path}')",
                 "csv": "SELECT * FROM read_csv('{s3_input_path}')"}


def link_landing(landing: Path, folder: str, files: list[Path]) -> list[tuple[str, str]]:
    """Hard-link data files to landing/<bucket>/<folder>/<name> (a copy across file systems;
    lakeroute refuses symlinks that leave the landing folder); return (bucket, key) refs."""
    refs = []
    for f in files:
        key = f"{folder}/{f.name}"
        dest = landing / BUCKET / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, dest)
        except OSError:
            shutil.copyfile(f, dest)
        refs.append((BUCKET, key))
    return refs


def write_route(routes: Path, name: str, folder: str, table: str,
                partition_by: list[str] | None = None) -> Path:
    routes.mkdir(parents=True, exist_ok=True)
    lines = [f"name: {name}", "source:", f"  bucket: {BUCKET}", f"  prefix: {folder}/",
             "target:", f"  table: {table}"]
    if partition_by:
        lines.append(f"  partition_by: {json.dumps(partition_by)}")
    lines.append("sql: SELECT * FROM source")
    path = routes / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sql_catalog_props(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "warehouse").mkdir(exist_ok=True)
    return {"uri": f"sqlite:///{(home / 'catalog.db').resolve()}",
            "warehouse": (home / "warehouse").resolve().as_uri()}


def result_schema(sample: Path, fmt: str):  # type: ignore[no-untyped-def]
    """The Arrow schema DuckDB gives ``SELECT * FROM <reader>(sample)``."""
    import duckdb

    con = duckdb.connect()
    try:
        sql = REFERENCE_SQL[fmt].format(s3_input_path=str(sample)) + " LIMIT 0"
        return con.execute(sql).fetch_arrow_table().schema
    finally:
        con.close()


def reference_setup(home: Path, table: str, sample: Path, fmt: str,
                    partition_day: str | None = None) -> dict[str, Any]:
    """The reference provisions no tables: create its table up front, with the schema DuckDB
    gives its query and pyiceberg's default properties (a fresh home per run)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.transforms import DayTransform

    if home.exists():
        shutil.rmtree(home)
    props = sql_catalog_props(home)
    catalog = SqlCatalog("reference", **props)
    catalog.create_namespace_if_not_exists(table.split(".")[0])
    tbl = catalog.create_table(table, schema=result_schema(sample, fmt))
    if partition_day:
        with tbl.update_spec() as update:
            update.add_field(partition_day, DayTransform(), f"{partition_day}_day")
    return {"catalog_name": "reference", "catalog_properties": props}


def lakeroute_catalog(home: Path) -> dict[str, Any]:
    from lakeroute.local import CATALOG_NAME

    # the layout local_catalog() uses: <home>/catalog.db + <home>/warehouse
    return {"catalog_name": CATALOG_NAME, "catalog_properties": sql_catalog_props(home)}


def table_stats(catalog: dict[str, Any], table: str, distinct: bool = True) -> dict[str, Any]:
    """Rows in the table (snapshot summary) and, with ``distinct``, a scan of event ids."""
    import pyarrow.compute as pc
    from pyiceberg.catalog.sql import SqlCatalog

    tbl = SqlCatalog(catalog["catalog_name"], **catalog["catalog_properties"]).load_table(table)
    snap = tbl.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    out: dict[str, Any] = {
        "rows": int(summary.get("total-records", 0)),
        "data_files": int(summary.get("total-data-files", 0)),
        "snapshots": len(tbl.snapshots()),
    }
    if distinct and snap is not None:
        ids = tbl.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
        out["scanned_rows"] = len(ids)
        out["distinct_event_ids"] = pc.count_distinct(ids).as_py()
    return out


def exact(t: dict[str, Any], expected: int) -> bool:
    return bool(t.get("rows") == expected and t.get("distinct_event_ids", expected) == expected
                and t.get("scanned_rows", expected) == expected)
