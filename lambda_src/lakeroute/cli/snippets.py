"""Text shared by `connect`'s snippets (``connect.py``: local, named catalog, Glue stage;
``connect_s3tables.py``: S3 Tables stage): printed for the reader, never run here."""

from __future__ import annotations

import shlex

from ..core.sql_text import quote_ident

ICEBERG_SPARK = "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0"
ICEBERG_AWS = "org.apache.iceberg:iceberg-aws-bundle:1.10.0"
DUCKDB_PIP = '"duckdb==1.4.4" duckdb-ext "duckdb-ext-iceberg==1.4.4.*" "duckdb-ext-avro==1.4.4.*"'
# DuckDB views over iceberg_scan: names quoted as identifiers, each metadata file bound as a
# variable's value (never SQL text). The views read the snapshot current when they are made.
DUCKDB_VIEWS = '''def ident(name):
    return '"' + name.replace('"', '""') + '"'


for i, (namespace, name, location) in enumerate(tables):
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(namespace)}")
    con.execute(f"SET VARIABLE lakeroute_{i} = ?", [location])
    con.execute(f"CREATE OR REPLACE VIEW {ident(namespace)}.{ident(name)} AS "
                f"SELECT * FROM iceberg_scan(getvariable('lakeroute_{i}'))")'''


def example(tables: list[str]) -> str | None:
    return tables[0] if tables else None


def select(table: str, quote: str = '"', catalog: str = "") -> str:
    """The printed example query of ``ns.t`` (text for the reader, never run here): every name
    quoted as an identifier."""
    return f"SELECT * FROM {catalog}{quoted(table, quote)} LIMIT 10"  # noqa: S608


def quoted(table: str, quote: str = '"') -> str:
    """``ns.t`` as a qualified name quoted for SQL (the printed examples quote what they name)."""
    if quote == '"':
        return ".".join(quote_ident(part) for part in table.split(".", 1))
    return ".".join(f"`{part.replace('`', '``')}`" for part in table.split(".", 1))


def python_use(tables: list[str], load: str) -> list[str]:
    """Lines that list the tables and read the first one (commented out when there is none)."""
    first = example(tables)
    if first is None:
        return ["print(catalog.list_namespaces())  # no table yet: run `lakeroute ingest` first"]
    namespace = first.split(".", 1)[0]
    return [f"print(catalog.list_tables({namespace!r}))  # all namespaces: catalog.list_namespaces()",
            f"table = catalog.load_table({first!r})", load]


def listed(tables: list[str]) -> str:
    shown = ", ".join(tables[:10]) + (", …" if len(tables) > 10 else "")
    return f"# tables now: {shown}" if tables else "# no table yet"


def reader(engine: str) -> str:
    if engine == "polars":
        return "import polars as pl\n\nprint(pl.scan_iceberg(table).head(10).collect())"
    return "print(table.scan(limit=10).to_arrow())"


def duckdb_query(first: str | None, hint: str = ": run `lakeroute ingest` first") -> str:
    """The DuckDB snippets' last line: the first table's rows, or the (empty) list of tables."""
    if first:
        return f"print(con.sql({select(first)!r}))"
    return f"print(con.sql('SHOW ALL TABLES'))  # no table yet{hint}"


def duckdb_s3_session(secret: list[str], values: list[str]) -> list[str]:
    """A DuckDB connection with the offline extensions and an S3 secret from the reader's own
    credential chain: the secret's options bound as values, never pasted into the SQL text."""
    return [
        "con = duckdb.connect()",
        "duckdb_ext.init(con)  # extensions from the duckdb-ext wheels: nothing is downloaded",
        'con.execute("LOAD httpfs")', 'con.execute("LOAD iceberg")',
        "frozen = boto3.Session().get_credentials().get_frozen_credentials()",
        f"secret, values = {', '.join(secret)!r}, [{', '.join(values)}]",
        "if frozen.token:",
        "    secret, values = secret + ', SESSION_TOKEN ?', values + [frozen.token]",
        'con.execute(f"CREATE SECRET lakeroute_s3 ({secret})", values)',
    ]


def spark_sql(head: list[str], packages: str, props: dict[str, str], first: str) -> str:
    """A spark-sql command line with the Spark catalog ``lakeroute`` set from ``props``."""
    lines = [*head, "spark-sql \\", f"  --packages {packages} \\",
             "  --conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions \\",
             "  --conf spark.sql.catalog.lakeroute=org.apache.iceberg.spark.SparkCatalog \\"]
    lines += [f"  --conf {shlex.quote(f'spark.sql.catalog.lakeroute.{k}={v}')} \\" for k, v in props.items()]
    lines.append(f"  -e {shlex.quote(select(first, '`', 'lakeroute.'))}")
    return "\n".join(lines) + "\n"
