"""The local warehouse as DuckDB views (`lakeroute query`), and rendering result tables."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..core.ledger.history import all_tables
from ..core.sql_text import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

S3_SCHEMES = ("s3://", "s3a://", "s3n://")


def storage_secret(con: duckdb.DuckDBPyConnection, name: str, location: str, props: Mapping[str, str]) -> None:
    """A DuckDB S3 secret scoped to ``location`` from PyIceberg's ``s3.*`` FileIO properties
    (the catalog's, merged with what a REST catalog vends per table); nothing for local files.
    Values are bound, never pasted; ``name`` is lakeroute's own."""
    if not location.startswith(S3_SCHEMES):
        return
    con.execute("LOAD httpfs")
    fields = ["TYPE s3", "SCOPE ?"]
    params: list[Any] = [_s3(location)]
    for prop, field in (("s3.access-key-id", "KEY_ID"), ("s3.secret-access-key", "SECRET"),
                        ("s3.session-token", "SESSION_TOKEN"), ("s3.region", "REGION")):
        if props.get(prop):
            fields.append(f"{field} ?")
            params.append(props[prop])
    if not props.get("s3.access-key-id"):  # the AWS default chain: env, profile, SSO, instance role
        con.execute("LOAD aws")
        fields.append("PROVIDER credential_chain")
    endpoint = props.get("s3.endpoint")
    if endpoint:
        parsed = urlparse(endpoint if "//" in endpoint else f"https://{endpoint}")
        fields += ["ENDPOINT ?", "URL_STYLE ?", "USE_SSL ?"]
        params += [parsed.netloc, "path", parsed.scheme != "http"]
    con.execute(f"CREATE SECRET {quote_ident(name)} ({', '.join(fields)})", params)


def _s3(location: str) -> str:
    for scheme in S3_SCHEMES:
        if location.startswith(scheme):
            return "s3://" + location[len(scheme):]
    return location


def open_warehouse(catalog: Catalog | Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view `namespace.table` over every Iceberg table of ``catalog``
    (a home folder: its SQLite catalog).

    Each view is ``iceberg_scan`` of the table's current metadata file, so any catalog works
    whose storage DuckDB reads: local files, and S3 (or an S3-compatible store) through httpfs
    with a secret made of the table's own FileIO properties (``storage_secret``).
    """
    import duckdb
    import duckdb_ext

    if isinstance(catalog, Path):
        from .runtime import local_catalog

        catalog = local_catalog(catalog)
    con = duckdb.connect()
    duckdb_ext.init(con)
    con.execute("LOAD iceberg")
    for i, name in enumerate(all_tables(catalog)):
        table = catalog.load_table(name)
        storage_secret(con, f"lakeroute_s3_{i}", table.location(), table.io.properties)
        ns, tbl = name.split(".", 1)
        view = f"{quote_ident(ns)}.{quote_ident(tbl)}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ns)}")
        if table.metadata.current_snapshot_id is None:
            cols = ", ".join(f"NULL AS {quote_ident(f.name)}" for f in table.schema().fields)
            con.execute(f"CREATE VIEW {view} AS SELECT {cols} WHERE false")
            continue
        var = f"lakeroute_meta_{i}"
        con.execute(f"SET VARIABLE {var} = ?", [table.metadata_location.removeprefix("file://")])
        # Names are quoted identifiers; the metadata path enters only as a variable.
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM iceberg_scan(getvariable('{var}'))")  # noqa: S608
    return con


def render(tbl: pa.Table, fmt: str) -> None:
    import sys

    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(tbl, sys.stdout.buffer)
        return
    rows = tbl.to_pylist()
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(*tbl.schema.names)
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row.values()])
    Console(width=200).print(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        # A number when it converts exactly (HUGEINT sums, most money values), else text.
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    return str(value)
