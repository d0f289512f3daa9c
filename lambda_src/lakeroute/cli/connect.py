"""`connect`: ready-to-run code (or configuration) that opens lakeroute's tables elsewhere.

Locally the tables live in a PyIceberg SQLite catalog named ``lakeroute`` (``catalog.db``)
over a file warehouse, both under the home; a deployed stage keeps them in its Glue
databases (one per route namespace, named by the stack's ``GlueDatabases`` output) over its
S3 warehouse (``WarehouseUri``), or, for a stage with ``catalog: s3tables``, in its S3 table
bucket (``connect_s3tables.py``). What each engine needs to find them is printed, with the
tables there are now. Nothing secret is printed: AWS credentials come from the reader's own
chain (environment, profile, SSO, role) when the code runs; endpoints are printed only when
``AWS_ENDPOINT_URL[_SERVICE]`` is set (moto, LocalStack).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import LakerouteError, one_line
from ..core.sql_text import quote_ident
from .app import app, fail, get_ctx
from .snippets import (
    DUCKDB_PIP,
    DUCKDB_VIEWS,
    ICEBERG_AWS,
    ICEBERG_SPARK,
    duckdb_query,
    duckdb_s3_session,
    example,
    listed,
    python_use,
    quoted,
    reader,
    select,
    spark_sql,
)

if TYPE_CHECKING:
    from ..aws.stage import Stage

ENGINES = ("pyiceberg", "duckdb", "polars", "spark", "athena")
SQLITE_JDBC = "org.xerial:sqlite-jdbc:3.46.1.3"


# The catalog's own table (PyIceberg's SqlCatalog): the current metadata file of each table.
SQLITE_TABLES = """tables = catalog.execute(
    "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = 'lakeroute'"
).fetchall()"""


# ---------------------------------------------------------------- local


def local_snippet(engine: str, home: Path, tables: list[str]) -> str:
    """``engine``'s code or configuration for the SQLite catalog and file warehouse under ``home``."""
    home = home.resolve()
    db, warehouse = home / "catalog.db", (home / "warehouse").as_uri()
    if engine in ("pyiceberg", "polars"):
        head = [f"# lakeroute's tables under {home} with PyIceberg: the SQLite catalog and its file warehouse.",
                '# pip install "pyiceberg[sql-sqlite,pyarrow]"' + (" polars" if engine == "polars" else ""),
                listed(tables),
                "from pyiceberg.catalog.sql import SqlCatalog", "",
                "# The catalog's name must be lakeroute: the SQLite catalog files every table under it.",
                f"catalog = SqlCatalog('lakeroute', uri={'sqlite:///' + str(db)!r}, warehouse={warehouse!r})"]
        return "\n".join(head + python_use(tables, reader(engine))) + "\n"
    if engine == "duckdb":
        first = example(tables)
        query = duckdb_query(first)
        return "\n".join([
            f"# lakeroute's tables under {home} in DuckDB: a view namespace.table per table (reopen after new",
            "# commits: each view reads the snapshot current when it was made).",
            f"# pip install {DUCKDB_PIP}",
            "# (online, plain duckdb works too: INSTALL iceberg instead of duckdb_ext.init)",
            listed(tables),
            "import sqlite3", "", "import duckdb", "import duckdb_ext", "",
            "con = duckdb.connect()",
            "duckdb_ext.init(con)  # extensions from the duckdb-ext wheels: nothing is downloaded",
            'con.execute("LOAD iceberg")',
            f"catalog = sqlite3.connect({db.as_uri() + '?mode=ro'!r}, uri=True)",
            SQLITE_TABLES,
            "", "", DUCKDB_VIEWS, query]) + "\n"
    if engine == "spark":
        first = example(tables) or "namespace.table"
        return spark_sql([f"# lakeroute's tables under {home} in Spark 3.5 + Iceberg 1.10: the SQLite catalog through",
                       "# Iceberg's JDBC catalog. The Spark catalog must be named lakeroute (the JDBC catalog",
                       "# filters tables by that name).", listed(tables)],
                      f"{ICEBERG_SPARK},{SQLITE_JDBC}",
                      {"catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog", "uri": f"jdbc:sqlite:{db}",
                       "jdbc.schema-version": "V1", "warehouse": warehouse}, first)
    raise LakerouteError(f"--engine {engine}: Athena reads only a deployed stage's Glue catalog; add --stage NAME")


# ---------------------------------------------------------------- a named PyIceberg catalog

# A DuckDB S3 secret per table from its FileIO properties, every value bound (lakeroute's
# own is local.warehouse.storage_secret; this copy keeps the printed code free of lakeroute).
DUCKDB_S3_SECRET = """def s3_secret(i, table):
    props, location = table.io.properties, table.location()
    if not location.startswith(('s3://', 's3a://', 's3n://')):
        return
    fields, values = ['TYPE s3', 'SCOPE ?'], ['s3://' + location.split('://', 1)[1]]
    for prop, field in [('s3.access-key-id', 'KEY_ID'), ('s3.secret-access-key', 'SECRET'),
                        ('s3.session-token', 'SESSION_TOKEN'), ('s3.region', 'REGION')]:
        if props.get(prop):
            fields, values = fields + [field + ' ?'], values + [props[prop]]
    if props.get('s3.endpoint'):
        scheme, host = props['s3.endpoint'].split('://', 1)
        fields += ['ENDPOINT ?', 'URL_STYLE ?', 'USE_SSL ?']
        values += [host.rstrip('/'), 'path', scheme == 'https']
    con.execute(f"CREATE SECRET lakeroute_s3_{i} ({', '.join(fields)})", values)"""
SECRET_PROPS = ("credential", "token", "secret", "password", "session")
# The Spark catalog implementation per PyIceberg catalog type (Iceberg's own class names).
SPARK_TYPES = {"rest": "rest", "glue": "glue", "hive": "hive"}


def catalog_snippet(engine: str, name: str, props: dict[str, str], tables: list[str]) -> str:
    """``engine``'s code for the PyIceberg catalog ``name`` (``--catalog``): Python reads the same
    configuration (``load_catalog(name)``), so nothing is copied out of it; Spark gets the
    catalog's non-secret properties and is told which secret ones to add."""
    about = [f"# lakeroute's tables in the PyIceberg catalog {name} (from .pyiceberg.yaml / "
             f"PYICEBERG_CATALOG__{name.upper()}__* variables, as lakeroute reads them).", listed(tables)]
    load = ["from pyiceberg.catalog import load_catalog", "",
            f"catalog = load_catalog({name!r})  # the same configuration lakeroute uses"]
    if engine in ("pyiceberg", "polars"):
        pip = '# pip install "pyiceberg[pyarrow]"' + (" polars" if engine == "polars" else "")
        return "\n".join([*about, pip, *load, *python_use(tables, reader(engine))]) + "\n"
    if engine == "duckdb":
        first = example(tables)
        query = duckdb_query(first)
        return "\n".join([
            *about, "# DuckDB reads each table's current metadata file (iceberg_scan); S3 locations with the",
            "# table's own FileIO properties (those the catalog vends included).",
            f'# pip install "pyiceberg[pyarrow]" {DUCKDB_PIP} "duckdb-ext-httpfs==1.4.4.*" "duckdb-ext-aws==1.4.4.*"',
            "import duckdb", "import duckdb_ext", *load, "",
            "con = duckdb.connect()", "duckdb_ext.init(con)",
            'con.execute("LOAD httpfs")', 'con.execute("LOAD iceberg")',
            DUCKDB_S3_SECRET, "", "",
            "tables = []",
            "for (namespace, *_) in catalog.list_namespaces():",
            "    for ident in catalog.list_tables(namespace):",
            "        table = catalog.load_table(ident)",
            "        s3_secret(len(tables), table)",
            "        tables.append((ident[0], ident[-1], table.metadata_location))",
            "", DUCKDB_VIEWS, query]) + "\n"
    kind = props.get("type") or ("rest" if props.get("uri", "").startswith("http") else "")
    if engine == "spark" and kind in SPARK_TYPES:
        first = example(tables) or "namespace.table"
        conf = {k: v for k, v in props.items() if k != "type" and not any(s in k for s in SECRET_PROPS)}
        hidden = sorted(k for k in props if any(s in k for s in SECRET_PROPS))
        lines = [*about, f"# Spark 3.5 + Iceberg 1.10, catalog {name} as an Iceberg {kind} catalog.",
                 *([f"# Add the secret properties yourself: {', '.join(hidden)} (not printed)."] if hidden else []),
                 "spark-sql \\", f"  --packages {ICEBERG_SPARK},{ICEBERG_AWS} \\",
                 "  --conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions \\",
                 f"  --conf {shlex.quote(f'spark.sql.catalog.{name}=org.apache.iceberg.spark.SparkCatalog')} \\",
                 f"  --conf {shlex.quote(f'spark.sql.catalog.{name}.type={SPARK_TYPES[kind]}')} \\"]
        lines += [f"  --conf {shlex.quote(f'spark.sql.catalog.{name}.{k}={v}')} \\" for k, v in conf.items()]
        lines.append(f"  -e {shlex.quote(select(first, '`', quoted(name, '`') + '.'))}")
        return "\n".join(lines) + "\n"
    if engine == "spark":
        raise LakerouteError(f"--engine spark: catalog {name} is of type {kind or 'unknown'}; this prints Spark "
                             f"settings for {', '.join(SPARK_TYPES)} catalogs only (use pyiceberg, duckdb or polars)")
    raise LakerouteError(f"--engine {engine}: Athena reads only a deployed stage's Glue catalog; add --stage NAME")


# ---------------------------------------------------------------- a deployed stage


def stage_snippet(engine: str, stage: Stage, tables: list[str], region: str | None,
                  endpoints: dict[str, str]) -> str:
    """``engine``'s code or configuration for the stage's Glue catalog and S3 warehouse, or its
    S3 table bucket (``catalog: s3tables``)."""
    if stage.catalog == "s3tables":
        from .connect_s3tables import s3tables_snippet

        return s3tables_snippet(engine, stage, tables, endpoints)
    warehouse = stage.need("warehouse")
    databases = ", ".join(f"{ns} -> {db}" for ns, db in sorted(stage.databases.items())) or "as named"
    about = [f"# Glue databases (route namespace -> database): {databases}; warehouse {warehouse}",
             listed(tables)]
    first = example(tables)
    if engine in ("pyiceberg", "polars"):
        props = {"warehouse": warehouse, **({"glue.region": region, "s3.region": region} if region else {}),
                 **{f"{s}.endpoint": e for s, e in endpoints.items()}}
        head = [f"# The tables of stage {stage.name} with PyIceberg: the Glue catalog over S3. AWS credentials",
                "# come from your usual chain (environment, profile, SSO, role).",
                '# pip install "pyiceberg[glue,pyarrow]"' + (" polars" if engine == "polars" else ""),
                *about, "from pyiceberg.catalog.glue import GlueCatalog", "",
                f"catalog = GlueCatalog('lakeroute', **{props!r})"]
        return "\n".join(head + python_use(tables, reader(engine))) + "\n"
    if engine == "duckdb":
        return _stage_duckdb(stage, about, first, region, endpoints)
    if engine == "spark":
        props = {"type": "glue", "warehouse": warehouse, "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
                 **{f"{s}.endpoint": e for s, e in endpoints.items()},
                 **({"s3.path-style-access": "true"} if "s3" in endpoints else {})}
        head = [f"# The tables of stage {stage.name} in Spark 3.5 + Iceberg 1.10 through the Glue catalog"
                + (f" (AWS_REGION={region})" if region else "") + ".",
                "# On EMR or in a Glue job, the same --conf settings (the Iceberg jars are there).", *about]
        return spark_sql(head, f"{ICEBERG_SPARK},{ICEBERG_AWS}", props, first or "database.table")
    return _athena(stage, tables, region)


def _stage_duckdb(stage: Stage, about: list[str], first: str | None, region: str | None,
                  endpoints: dict[str, str]) -> str:
    databases = sorted(set(stage.databases.values()))
    glue_args = ", ".join([*( [f"region_name={region!r}"] if region else []),
                           *([f"endpoint_url={endpoints['glue']!r}"] if "glue" in endpoints else [])])
    secret = ["TYPE s3", "KEY_ID ?", "SECRET ?"]
    values = ["frozen.access_key", "frozen.secret_key"]
    if region:
        secret.append("REGION ?")
        values.append(repr(region))
    if "s3" in endpoints:
        host = endpoints["s3"].split("://", 1)[-1].rstrip("/")
        secret += ["ENDPOINT ?", "URL_STYLE ?", "USE_SSL ?"]
        values += [repr(host), "'path'", repr(not endpoints["s3"].startswith("http://"))]
    query = duckdb_query(first, "")
    return "\n".join([
        f"# The tables of stage {stage.name} in DuckDB: a view database.table per Glue table (reopen after new",
        "# commits: each view reads the snapshot current when it was made). AWS credentials from your chain.",
        f"# pip install boto3 {DUCKDB_PIP} \"duckdb-ext-httpfs==1.4.4.*\"", *about,
        "import boto3", "import duckdb", "import duckdb_ext", "",
        f"glue = boto3.client('glue'{', ' + glue_args if glue_args else ''})",
        f"databases = {databases!r}  # the stage's Glue databases",
        "tables = [(db, t['Name'], t['Parameters']['metadata_location'])",
        "          for db in databases for page in glue.get_paginator('get_tables').paginate(DatabaseName=db)",
        "          for t in page['TableList']",
        "          if (t.get('Parameters') or {}).get('table_type', '').upper() == 'ICEBERG']",
        *duckdb_s3_session(secret, values),
        "", "", DUCKDB_VIEWS, query]) + "\n"


def _athena(stage: Stage, tables: list[str], region: str | None) -> str:
    by_db: dict[str, list[str]] = {}
    for t in tables:
        db, _, name = t.partition(".")
        by_db.setdefault(db, []).append(name)
    named = {db: ns for ns, db in stage.databases.items()}
    lines = [f"-- Athena (engine version 3) reads the Iceberg tables of stage {stage.name} from the Glue Data",
             f"-- Catalog as they are: catalog AwsDataCatalog{', region ' + region if region else ''}; a workgroup",
             "-- with a query result location is needed. Databases (route namespace -> Glue database), tables:"]
    for db in sorted(set(by_db) | set(named)):
        ns = f"{named[db]} -> " if db in named else ""
        lines.append(f"--   {ns}{db}: {', '.join(sorted(by_db.get(db, []))) or '(no table yet)'}")
    first = tables[0] if tables else "database.table"
    database, _, name = first.partition(".")
    lines += [select(first, catalog=quote_ident("AwsDataCatalog") + ".") + ";", "",
              "-- From a shell:",
              f"-- aws athena start-query-execution --work-group primary{' --region ' + region if region else ''} \\",
              f"--   --query-execution-context Catalog=AwsDataCatalog,Database={database} \\",
              "--   --query-string " + shlex.quote(select(name))]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command


def _local_tables(home: Path) -> list[str]:
    if not (home / "catalog.db").is_file():
        return []  # never create a catalog just to say there is none
    from ..core.ledger.history import all_tables
    from ..local import local_catalog

    return sorted(all_tables(local_catalog(home)))


def _stage_tables(stage: Stage) -> list[str]:
    from .stage import stage_catalog

    catalog = stage_catalog(stage)
    try:
        databases = sorted(set(stage.databases.values())) or [n[0] for n in catalog.list_namespaces()]
        return sorted(".".join(t) for db in databases for t in catalog.list_tables(db))
    except Exception as e:  # boto3's, PyIceberg's (a database the stack names is gone): not a usage error
        where = "S3 Tables" if stage.catalog == "s3tables" else "Glue"
        raise fail(f"stage {stage.name}: cannot list its {where} tables: {type(e).__name__}: {one_line(e)}",
                   1) from None


@app.command()
def connect(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option(help="A deployed stage (its stack's outputs name the Glue "
                                              "databases and the warehouse, or the S3 table bucket "
                                              "and its namespaces).")] = None,
    engine: Annotated[str, typer.Option(help="pyiceberg | duckdb | polars | spark | athena")] = "pyiceberg",
) -> None:
    """Print ready-to-run code (or configuration) that opens lakeroute's tables elsewhere.

    Locally: the SQLite catalog (named lakeroute) and the file warehouse under --home. With
    --stage (or the handler's LAKEROUTE_* variables): the stage's Glue databases and S3
    warehouse, or its S3 table bucket (catalog: s3tables), from its stack's outputs.
    pyiceberg, duckdb and polars print Python (pipe it to a file and run it), spark a
    spark-sql command line, athena SQL (stages only). Nothing secret is printed: AWS
    credentials come from your own chain when the code runs.

    Example: lakeroute connect --engine duckdb > open_tables.py && python open_tables.py
    """
    from . import stage as staged

    if engine not in ENGINES:
        raise fail(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    st = staged.selected(stage)
    try:
        c = get_ctx(ctx)
        if st is None and c.catalog:
            from ..core.ledger.history import all_tables
            from ..local.catalogs import catalog_properties

            props = catalog_properties(c.catalog)
            text = catalog_snippet(engine, c.catalog, props, sorted(all_tables(c.open_catalog())))
        elif st is None:
            text = local_snippet(engine, c.home, _local_tables(c.home))
        else:
            from ..aws.clients import endpoint_for, region_name

            services = ("s3tables", "s3") if st.catalog == "s3tables" else ("glue", "s3")
            endpoints = {s: e for s in services if (e := endpoint_for(s))}
            text = stage_snippet(engine, st, _stage_tables(st), region_name(), endpoints)
    except LakerouteError as e:
        raise fail(str(e)) from None
    typer.echo(text, nl=False)
