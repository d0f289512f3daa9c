"""`lakeroute demo`: the sample routes and deterministic sample data, ingested end to end."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples" / "routes"


def sample_route_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.yaml"))


def write_sample_routes(routes: Path) -> list[Path]:
    """The sample routes into ``routes``, and the JSON Schema their first line names
    (``# yaml-language-server: $schema=../schemas/route.schema.json``) when that file is not
    there yet, so an editor opening the copies finds it. Returns the files written."""
    from .core.routes.schema import render_route_schema

    routes.mkdir(parents=True, exist_ok=True)
    written = []
    refs = set()
    for f in sample_route_files():
        text = f.read_text(encoding="utf-8")
        if m := re.match(r"# yaml-language-server: \$schema=(\S+)\n", text):
            refs.add(m.group(1))
        shutil.copyfile(f, routes / f.name)
        written.append(routes / f.name)
    for ref in sorted(refs):
        schema = Path(os.path.normpath(routes / ref))
        if not schema.exists():
            schema.parent.mkdir(parents=True, exist_ok=True)
            schema.write_text(render_route_schema(), encoding="utf-8")
            written.append(schema)
    return written


def write_sample_data(landing: Path, seed: int = 7) -> list[Path]:
    """Sample files for every sample route; the same bytes on every run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    written: list[Path] = []

    orders = landing / "acme-sales-landing" / "orders"
    orders.mkdir(parents=True, exist_ok=True)
    for h in range(24):
        n = 400
        ids = [h * 10_000 + i for i in range(n)]
        tbl = pa.table({
            "order_id": pa.array(ids, pa.int64()),
            "customer_id": pa.array([rng.randrange(1, 5000) for _ in ids], pa.int64()),
            "amount": pa.array([round(rng.uniform(1, 500), 2) for _ in ids], pa.float64()),
            "currency": pa.array([rng.choice(["eur", "usd", "gbp"]) for _ in ids]),
            "order_ts": pa.array([base + dt.timedelta(hours=h * 3, seconds=i * 7) for i in range(n)],
                                 pa.timestamp("us", tz="UTC")),
        })
        path = orders / f"2026-11-01/orders-{h:02d}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(tbl, path)
        written.append(path)

    refunds = landing / "acme-sales-landing" / "refunds"
    refunds.mkdir(parents=True, exist_ok=True)
    for d in range(3):
        lines = ["refund_id;order_id;amount;reason"]
        for i in range(50):
            reason = rng.choice(["damaged", "late; very late", "wrong size", "changed mind"])
            lines.append(f'{d * 1000 + i};{rng.randrange(0, 230_000)};'
                         f'{rng.uniform(1, 100):.2f};"{reason}"')
        path = refunds / f"refunds-2026-11-0{d + 1}.csv.gz"
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
        written.append(path)

    events = landing / "acme-web-events"
    events.mkdir(parents=True, exist_ok=True)
    for part in range(4):
        rows = []
        for i in range(250):
            ts = base + dt.timedelta(minutes=part * 90 + i)
            rows.append(json.dumps({"event_id": f"e-{part}-{i}", "user_id": rng.randrange(1, 900),
                                    "event_type": rng.choice(["view", "click", "buy"]),
                                    "ts": ts.isoformat()}))
        path = events / f"site/part-{part}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
        written.append(path)

    readings = landing / "acme-iot-landing" / "readings"
    readings.mkdir(parents=True, exist_ok=True)
    for kind, lo, hi in (("temperature", -5.0, 35.0), ("humidity", 10.0, 95.0)):
        for batch in range(2):
            tbl = pa.table({
                "device_id": [f"dev-{rng.randrange(1, 20):02d}" for _ in range(300)],
                "reading_ts": pa.array([base + dt.timedelta(seconds=30 * i) for i in range(300)],
                                       pa.timestamp("us", tz="UTC")),
                "value": [round(rng.uniform(lo, hi), 2) for _ in range(300)],
            }).replace_schema_metadata({"sensor_type": kind})
            path = readings / f"{kind[:4]}-batch-{batch}.parquet"
            pq.write_table(tbl, path)
            written.append(path)
    return written


def run_demo(routes: Path, home: Path, landing: Path, echo: Callable[[str], None] = print) -> int:
    from .core.ledger.history import table_rows
    from .core.pipeline import ObjectRef
    from .local import LocalPaths, local_catalog, local_pipeline
    from .local.validate import validate_routes
    from .local.warehouse import open_warehouse, render

    if not routes.is_dir() or not any(routes.glob("*.y*ml")):
        written = write_sample_routes(routes)
        schemas = [f for f in written if f.suffix == ".json"]
        echo(f"wrote {len(sample_route_files())} sample routes to {routes}/"
             + "".join(f" and {f} (their JSON Schema, for editors)" for f in schemas))
    files = write_sample_data(landing)
    echo(f"wrote {len(files)} sample files under {landing}/")

    problems, _warnings, _notes, count = validate_routes(routes, landing)
    for line in problems:
        echo(f"error: {line}")
    if problems:
        return 2
    echo(f"validated {count} routes")

    pipe = local_pipeline(LocalPaths(routes, home, landing))
    refs = []
    for f in files:
        ref = pipe.source.ref_of(f)  # type: ignore[attr-defined]
        refs.append(ObjectRef(*ref))
    report = pipe.ingest(refs)
    echo(f"ingested {report.count('committed')} files ({report.rows} rows), skipped "
         f"{report.count('skipped')} already ingested, {len(report.failed)} failed, "
         f"{len(report.commits)} commits in {report.seconds:.2f}s")
    for o in report.failed:
        echo(f"  failed {o.ref.bucket}/{o.ref.key}: {o.message}")

    echo("\ntables:")
    for row in table_rows(local_catalog(home)):
        echo(f"  {row['table']:<18} {row['rows']:>7} rows  {row['snapshots']} snapshot(s)  "
             f"routes: {row['routes']}")
    echo("\nrevenue by currency (sales.orders):")
    con = open_warehouse(local_catalog(home))
    render(con.sql("SELECT currency, count(*) AS orders, sum(amount) AS revenue "
                   "FROM sales.orders GROUP BY currency ORDER BY currency").fetch_arrow_table(),
           "table")
    echo("next: lakeroute tables | lakeroute history sales.orders | "
         "lakeroute query \"SELECT * FROM iot.temperature LIMIT 5\"")
    return 1 if report.failed else 0
