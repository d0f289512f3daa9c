"""`connect --stage S` for a stage whose catalog is S3 Tables (``catalog: s3tables``).

The tables are in one S3 table bucket (stack output ``TableBucketArn``), one table bucket
namespace per route namespace (``Namespaces``). What runs in lakeroute's tests (on moto's S3
Tables API) is printed as the code: PyIceberg through lakeroute's own ``S3TablesCatalog``
(PyIceberg 0.12 has no S3 Tables catalog; moto has no Iceberg REST endpoint) and DuckDB over
each table's current metadata file, found with boto3's ``s3tables`` client. What only a real
account can run is printed as comments or configuration and says so: PyIceberg's REST catalog
on the S3 Tables Iceberg endpoint, DuckDB's own S3 Tables attach, AWS's S3 Tables catalog for
Spark, and Athena's ``s3tablescatalog`` (which needs the bucket integrated with the AWS
analytics services).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ..core.sql_text import quote_ident
from .snippets import (
    DUCKDB_PIP,
    DUCKDB_VIEWS,
    ICEBERG_SPARK,
    duckdb_query,
    duckdb_s3_session,
    example,
    listed,
    python_use,
    reader,
    select,
    spark_sql,
)

if TYPE_CHECKING:
    from ..aws.stage import Stage

# AWS's client catalog for Iceberg engines (Maven Central's latest when this was written;
# github.com/awslabs/s3-tables-catalog has the current one).
S3TABLES_SPARK = "software.amazon.s3tables:s3-tables-catalog-for-iceberg-runtime:0.1.8"
UNTESTED = "# Untested by lakeroute: moto, its test server, has no S3 Tables Iceberg REST endpoint."


def bucket_parts(arn: str) -> tuple[str, str]:
    """(region, bucket name) of ``arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME``."""
    return arn.split(":")[3], arn.rsplit("/", 1)[-1]


def s3tables_snippet(engine: str, stage: Stage, tables: list[str], endpoints: dict[str, str]) -> str:
    """``engine``'s code or configuration for the stage's S3 table bucket."""
    arn = stage.need("table_bucket")
    region, _ = bucket_parts(arn)
    namespaces = ", ".join(f"{ns} -> {t}" for ns, t in sorted(stage.databases.items())) or "as named"
    about = [f"# Table bucket {arn}; namespaces (route namespace -> table bucket namespace): {namespaces}",
             listed(tables)]
    client = ", ".join([f"region_name={region!r}",
                        *([f"endpoint_url={endpoints['s3tables']!r}"] if "s3tables" in endpoints else [])])
    if engine in ("pyiceberg", "polars"):
        return _python(engine, stage, arn, region, client, about, tables, endpoints)
    if engine == "duckdb":
        return _duckdb(stage, arn, region, client, about, example(tables), endpoints)
    if engine == "spark":
        head = [f"# The tables of stage {stage.name} in Spark 3.5 + Iceberg 1.10 through AWS's Amazon S3 Tables",
                "# Catalog for Apache Iceberg (catalog-impl S3TablesCatalog, the table bucket as warehouse).",
                "# Not run in lakeroute's tests (no Spark there); AWS credentials and region from your chain",
                f"# (the bucket is in {region}). Newer catalog versions: github.com/awslabs/s3-tables-catalog.",
                *about]
        props = {"catalog-impl": "software.amazon.s3tables.iceberg.S3TablesCatalog", "warehouse": arn}
        return spark_sql(head, f"{ICEBERG_SPARK},{S3TABLES_SPARK}", props, example(tables) or "namespace.table")
    return _athena(stage, arn, tables)


def _python(engine: str, stage: Stage, arn: str, region: str, client: str, about: list[str],
            tables: list[str], endpoints: dict[str, str]) -> str:
    props = {"warehouse": arn, "s3.region": region,
             **({"s3.endpoint": endpoints["s3"]} if "s3" in endpoints else {})}
    rest = {"type": "rest", "uri": f"https://s3tables.{region}.amazonaws.com/iceberg", "warehouse": arn,
            "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables", "rest.signing-region": region}
    head = [f"# The tables of stage {stage.name} with PyIceberg, through lakeroute's S3 Tables catalog (PyIceberg",
            "# 0.12 has none of its own): run it where lakeroute is installed (it brings pyiceberg, pyarrow",
            "# and boto3). AWS credentials come from your usual chain (environment, profile, SSO, role).",
            *(["# pip install polars"] if engine == "polars" else []),
            *about,
            "#",
            "# Without lakeroute, on a real account: PyIceberg's REST catalog on the S3 Tables Iceberg endpoint",
            '# (AWS\'s documented configuration; pip install "pyiceberg[pyarrow]" boto3).', UNTESTED,
            "#   from pyiceberg.catalog import load_catalog",
            "#",
            "#   catalog = load_catalog('s3tables', **{",
            *[f"#       {k!r}: {v!r}," for k, v in rest.items()],
            "#   })",
            "import boto3", "from lakeroute.aws.s3tables import S3TablesCatalog", "",
            f"catalog = S3TablesCatalog('lakeroute', client=boto3.client('s3tables', {client}),",
            f"                          **{props!r})"]
    return "\n".join(head + python_use(tables, reader(engine))) + "\n"


def _duckdb(stage: Stage, arn: str, region: str, client: str, about: list[str], first: str | None,
            endpoints: dict[str, str]) -> str:
    secret, values = ["TYPE s3", "KEY_ID ?", "SECRET ?", "REGION ?"], ["frozen.access_key", "frozen.secret_key",
                                                                       repr(region)]
    if "s3" in endpoints:
        host = endpoints["s3"].split("://", 1)[-1].rstrip("/")
        secret += ["ENDPOINT ?", "URL_STYLE ?", "USE_SSL ?"]
        values += [repr(host), "'path'", repr(not endpoints["s3"].startswith("http://"))]
    attach = f"ATTACH {arn!r} AS s3_tables (TYPE iceberg, ENDPOINT_TYPE s3_tables)"
    return "\n".join([
        f"# The tables of stage {stage.name} in DuckDB: a view namespace.table per table of its S3 table bucket,",
        "# over the table's current metadata file (reopen after new commits: each view reads the snapshot",
        "# current when it was made). AWS credentials from your chain.",
        f'# pip install boto3 {DUCKDB_PIP} "duckdb-ext-httpfs==1.4.4.*"', *about,
        "#",
        "# On a real account DuckDB can also attach the table bucket itself, through the S3 Tables Iceberg",
        '# REST endpoint (needs "duckdb-ext-aws==1.4.4.*" too).', UNTESTED,
        '#   con.execute("LOAD aws")',
        '#   con.execute("CREATE SECRET (TYPE s3, PROVIDER credential_chain)")',
        f"#   con.execute({attach!r})",
        *([f"#   print(con.sql({select(first, catalog='s3_tables.')!r}))"] if first else []),
        "import boto3", "import duckdb", "import duckdb_ext", "",
        f"s3tables = boto3.client('s3tables', {client})",
        f"bucket = {arn!r}",
        "tables = []",
        "# The bucket holds this stage's namespaces only: all of them are listed.",
        "for listed in s3tables.get_paginator('list_namespaces').paginate(tableBucketARN=bucket):",
        "    for namespace in (n['namespace'][0] for n in listed['namespaces']):",
        "        pages = s3tables.get_paginator('list_tables').paginate(tableBucketARN=bucket, namespace=namespace)",
        "        for t in (t for page in pages for t in page['tables']):",
        "            got = s3tables.get_table_metadata_location(tableBucketARN=bucket, namespace=namespace,",
        "                                                       name=t['name'])",
        "            if got.get('metadataLocation'):  # none yet: a table whose first commit has not happened",
        "                tables.append((namespace, t['name'], got['metadataLocation']))",
        *duckdb_s3_session(secret, values),
        "", "", DUCKDB_VIEWS, duckdb_query(first, "")]) + "\n"


def _athena(stage: Stage, arn: str, tables: list[str]) -> str:
    region, name = bucket_parts(arn)
    catalog = f"s3tablescatalog/{name}"
    by_ns: dict[str, list[str]] = {}
    for t in tables:
        ns, _, table = t.partition(".")
        by_ns.setdefault(ns, []).append(table)
    named = {t: ns for ns, t in stage.databases.items()}
    lines = [f"-- Athena (engine version 3) reads the tables of stage {stage.name}'s S3 table bucket {name}",
             f"-- through the catalog {catalog} (region {region}), once the table bucket is integrated",
             "-- with the AWS analytics services: S3 console > Table buckets > Enable integration (or Lake",
             "-- Formation > Catalogs > Enable S3 Table integration), then Lake Formation permissions on the",
             "-- catalog, its databases and tables for whoever queries. lakeroute's stack does not set this up,",
             "-- and it cannot be tested on moto. A workgroup with a query result location is needed.",
             "-- Databases (route namespace -> table bucket namespace), tables:"]
    for ns in sorted(set(by_ns) | set(named)):
        logical = f"{named[ns]} -> " if ns in named else ""
        lines.append(f"--   {logical}{ns}: {', '.join(sorted(by_ns.get(ns, []))) or '(no table yet)'}")
    first = tables[0] if tables else "namespace.table"
    database, _, table = first.partition(".")
    context = shlex.quote(f"Catalog={catalog},Database={database}")
    lines += [select(first, catalog=quote_ident(catalog) + ".") + ";", "",
              "-- From a shell:",
              f"-- aws athena start-query-execution --work-group primary --region {region} \\",
              f"--   --query-execution-context {context} \\",
              "--   --query-string " + shlex.quote(select(table))]
    return "\n".join(lines) + "\n"
