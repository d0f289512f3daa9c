"""One Spark session with lakeroute's local catalog as the Iceberg catalog ``lakeroute``.

Run with the Python of ``.spark/venv`` (``tests/spark/setup_spark.sh``), not the project's:
``driver.py HOME JARS [init]`` (``init``: Iceberg creates the catalog tables itself, for the
set-up's smoke test; otherwise PyIceberg has created them). It reads one JSON request per
line on stdin, ``{"sql": "..."}``, and answers one JSON line on stdout:
``{"ok": true, "rows": [[...], ...]}`` or ``{"ok": false, "error": "..."}``. The test process
stays light (no JVM in it); one session serves a whole test module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def session(home: Path, jars: Path, init: bool = False):  # type: ignore[no-untyped-def]
    from pyspark.sql import SparkSession

    jar_list = ",".join(str(p) for p in sorted(jars.glob("*.jar")))
    catalog = "spark.sql.catalog.lakeroute"
    return (SparkSession.builder.master("local[1]")
            .config("spark.jars", jar_list)
            .config("spark.driver.extraClassPath", ":".join(str(p) for p in sorted(jars.glob("*.jar"))))
            .config("spark.sql.extensions",
                    "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
            .config(catalog, "org.apache.iceberg.spark.SparkCatalog")
            .config(f"{catalog}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
            .config(f"{catalog}.uri", f"jdbc:sqlite:{home / 'catalog.db'}")
            .config(f"{catalog}.jdbc.schema-version", "V1")
            # PyIceberg created the catalog tables (the V1 schema). Iceberg 1.10's check for them
            # leaves a result set open, and its pooled connection then holds SQLite's shared lock
            # for good: every commit of lakeroute's would fail with "database is locked".
            .config(f"{catalog}.jdbc.init-catalog-tables", "true" if init else "false")
            .config(f"{catalog}.warehouse", (home / "warehouse").as_uri())
            .config(f"{catalog}.cache-enabled", "false")  # lakeroute commits between statements
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.default.parallelism", "1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "1g")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate())


def main() -> None:
    home, jars = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    home.mkdir(parents=True, exist_ok=True)
    spark = session(home, jars, init=sys.argv[3:] == ["init"])
    spark.sparkContext.setLogLevel("ERROR")
    print(json.dumps({"ok": True, "ready": spark.version}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            rows = [list(r) for r in spark.sql(request["sql"]).collect()]
            print(json.dumps({"ok": True, "rows": rows}, default=str), flush=True)
        except Exception as e:  # the test reads the message
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"[:4000]}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
