"""The reference design (shared/REFERENCE-DESIGN.md), reimplemented faithfully as a baseline.

One Lambda invocation per S3 event, step by step as published:

1. only the first record: bucket and key (the key is *not* URL-decoded);
2. routing key = first path segment of the key (folder routing) or the bucket;
3. routing-table ``get_item`` by ``PartitionKey`` -> ``target_table`` + ``query_sql``;
   no item raises;
4. a new in-memory DuckDB connection, ``SET home_directory='/tmp'``, httpfs loaded on every
   invocation, SQL built with ``str.format(s3_input_path=...)``, result fetched whole as an
   Arrow table;
5. a new catalog object per call, ``load_table``, ``refresh``, ``table.append`` (one commit
   per file);
6. up to 5 attempts, retrying only when the error text contains "Cannot commit" or
   "branch main has changed", sleeping 10 s and doubling (10, 20, 40, 80 s), no jitter;
7. returns ``{"status": "success", "rows": n}``, logs with ``print``.

Local stand-ins, each noted where it happens (all of them favour the reference):
- ``INSTALL httpfs`` downloads at run time and the network is closed here, so the extension
  comes from the ``duckdb-ext-httpfs`` wheel: ``duckdb_ext.init(con)`` + ``LOAD httpfs``.
  The download an INSTALL does on a cold Lambda is therefore *not* counted.
- DynamoDB ``get_item`` is a dict lookup (no network round trip).
- The Glue catalog is the same SQLite ``SqlCatalog`` + file warehouse lakeroute uses
  locally (a new ``SqlCatalog`` object per call, as the reference creates a Glue catalog per
  call); ``s3://bucket/key`` is mapped to the local landing file before ``str.format``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RETRY_ATTEMPTS = 5
RETRY_FIRST_SLEEP_S = 10.0
RETRY_MARKERS = ("Cannot commit", "branch main has changed")


@dataclass
class Environment:
    """What the reference reads from its environment and AWS, as local values."""

    routing_table: dict[str, dict[str, str]]  # PartitionKey -> item (DynamoDB stand-in)
    catalog_name: str  # ICEBERG_CATALOG_NAME
    catalog_properties: dict[str, str]  # SqlCatalog uri + warehouse (Glue stand-in)
    input_path: Callable[[str, str], str]  # (bucket, key) -> what DuckDB reads for s3://b/k
    routing: str = "folder"  # "folder" or "bucket": chosen by editing the code
    sleep: Callable[[float], None] = time.sleep
    sleeps: list[float] = field(default_factory=list)  # for the report: retry sleeps taken


def lambda_handler(event: dict[str, Any], context: Any, env: Environment) -> dict[str, Any]:
    import duckdb
    import duckdb_ext
    from pyiceberg.catalog.sql import SqlCatalog

    record = event["Records"][0]  # only the first record
    bucket = record["s3"]["bucket"]["name"]
    key = record["s3"]["object"]["key"]  # not URL-decoded
    routing_key = key.split("/")[0] if env.routing == "folder" else bucket
    print(f"Processing s3://{bucket}/{key} (routing key {routing_key})")

    item = env.routing_table.get(routing_key)  # dynamodb.Table(ROUTING_TABLE).get_item(...)
    if item is None:
        raise ValueError(f"No routing configuration found for {routing_key}")
    target_table = item["target_table"]
    query = item["query_sql"].format(s3_input_path=env.input_path(bucket, key))

    con = duckdb.connect()  # new in-memory connection per invocation
    con.execute("SET home_directory='/tmp'")
    duckdb_ext.init(con)  # stands in for `INSTALL httpfs;` (no network here; see module doc)
    con.execute("LOAD httpfs;")
    arrow_table = con.execute(query).fetch_arrow_table()  # the whole result, in memory

    catalog = SqlCatalog(env.catalog_name, **env.catalog_properties)  # new catalog per call
    table = catalog.load_table(target_table)
    table.refresh()

    delay = RETRY_FIRST_SLEEP_S
    for attempt in range(RETRY_ATTEMPTS):
        try:
            table.append(arrow_table)  # one commit per file
            break
        except Exception as e:
            text = str(e)
            if any(m in text for m in RETRY_MARKERS) and attempt < RETRY_ATTEMPTS - 1:
                print(f"Commit conflict (attempt {attempt + 1}), retrying in {delay:.0f}s: {text}")
                env.sleeps.append(delay)
                env.sleep(delay)
                delay *= 2
                continue
            raise
    rows = arrow_table.num_rows
    print(f"Appended {rows} rows to {target_table}")
    return {"status": "success", "rows": rows}


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """A minimal S3 ObjectCreated notification, as the reference receives it."""
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}
