"""`lakeroute connect`: the printed code opens lakeroute's tables outside lakeroute.

Every snippet that can run here is run, as a file, by a fresh Python process (only what the
snippet says to install; lakeroute itself only where the snippet says it needs it: PyIceberg on
an S3 Tables stage): locally PyIceberg and DuckDB (offline, the duckdb-ext wheels) over the real
SQLite catalog and warehouse, and against a moto server for a deployed stage, found through its
stack's outputs (PyIceberg and DuckDB over Glue + S3, and over moto's S3 Tables for a stage with
``catalog: s3tables``). polars is not a dependency of lakeroute: its snippet's PyIceberg part is
run (the whole snippet when polars happens to be installed). Spark and Athena snippets are
configuration text: checked for the catalog, database and warehouse (or table bucket) they must
name; nothing here runs Spark or Athena.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from lakeroute.aws.catalog import glue_catalog
from lakeroute.cli import app
from typer.testing import CliRunner

from tests.integration.test_cli import run
from tests.integration.test_stage_cli_on_moto import DEPLOYMENT, parquet
from tests.integration.test_stage_cli_on_moto import Stage as DeployedStage
from tests.support.aws_lake import handler_environment
from tests.support.moto_server import REGION, MotoServer
from tests.support.workspace import Workspace, orders

runner = CliRunner()


def run_snippet(code: str, tmp: Path, env: dict[str, str] | None = None) -> str:
    """Run ``code`` as a script in a fresh Python process; its stdout (it must succeed). The
    handler's LAKEROUTE_* variables a stage test sets are not passed on: the snippet must name
    what it opens."""
    script = tmp / "snippet.py"
    script.write_text(code, encoding="utf-8")
    outside = {k: v for k, v in os.environ.items() if not k.startswith("LAKEROUTE_")}
    done = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp, env={**outside, **(env or {})}, check=False)
    print(f"--- snippet\n{code}--- stdout\n{done.stdout}--- stderr\n{done.stderr[-2000:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def lake(ws: Workspace) -> Workspace:
    ws.route("o", {"bucket": "bkt"}, {"table": "sales.orders"})
    ws.put("bkt", "a.parquet", orders(3, start=41))
    assert ws.ingest(("bkt", "a.parquet")).count("committed") == 1
    return ws


def connect(ws: Workspace, engine: str) -> str:
    code, out, err = run(ws, "connect", "--engine", engine)
    assert code == 0, err
    return out


# ---------------------------------------------------------------- local


@pytest.mark.slow
def test_local_pyiceberg_snippet_reads_the_table(lake: Workspace, tmp_path: Path) -> None:
    out = run_snippet(connect(lake, "pyiceberg"), tmp_path)
    assert "('sales', 'orders')" in out and "id: int64" in out and "[[41,42,43]]" in out


def test_local_duckdb_snippet_reads_the_table_offline(lake: Workspace, tmp_path: Path) -> None:
    code = connect(lake, "duckdb")
    assert "duckdb_ext.init(con)" in code and "INSTALL" not in code.replace("INSTALL iceberg instead", "")
    total = 'print(con.sql("SELECT sum(id) FROM sales.orders").fetchall())\n'  # noqa: S608 - the test's own SQL
    out = run_snippet(code + total, tmp_path)
    assert "[(126,)]" in out, "41 + 42 + 43, through iceberg_scan over the catalog's metadata file"


@pytest.mark.slow
def test_local_polars_snippet(lake: Workspace, tmp_path: Path) -> None:
    code = connect(lake, "polars")
    head, polars_part = code.split("import polars as pl")
    assert "pl.scan_iceberg(table)" in polars_part
    if importlib.util.find_spec("polars") is None:
        print("polars is not installed (not a lakeroute dependency): running the snippet's PyIceberg part only")
        out = run_snippet(head + "print(table.scan().to_arrow().num_rows)\n", tmp_path)
        assert out.strip().endswith("3")
    else:
        assert "shape: (3," in run_snippet(code, tmp_path)


def test_local_spark_configuration_names_the_catalog_and_warehouse(lake: Workspace) -> None:
    text = connect(lake, "spark")
    print(text)
    home = lake.paths.home.resolve()
    assert "--conf spark.sql.catalog.lakeroute=org.apache.iceberg.spark.SparkCatalog" in text
    assert "spark.sql.catalog.lakeroute.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog" in text
    assert f"spark.sql.catalog.lakeroute.uri=jdbc:sqlite:{home / 'catalog.db'}" in text
    assert "spark.sql.catalog.lakeroute.jdbc.schema-version=V1" in text
    assert f"spark.sql.catalog.lakeroute.warehouse={(home / 'warehouse').as_uri()}" in text
    assert "SELECT * FROM lakeroute.`sales`.`orders` LIMIT 10" in text


def test_local_errors_are_one_line_exit_2_and_nothing_is_created(ws: Workspace) -> None:
    code, out, err = run(ws, "connect", "--engine", "athena")
    assert code == 2 and err.count("\n") == 1 and "add --stage NAME" in err, err
    code, out, err = run(ws, "connect", "--engine", "sqlite")
    assert code == 2 and err == "error: --engine 'sqlite': use one of pyiceberg, duckdb, polars, spark, athena\n"
    code, out, err = run(ws, "connect")
    assert code == 0 and "# no table yet" in out and "SqlCatalog('lakeroute'" in out
    assert not ws.paths.home.exists(), "connect never creates a catalog"
    result = runner.invoke(app, ["connect", "--help"])
    assert result.exit_code == 0 and "Example: lakeroute connect" in result.stdout


# ---------------------------------------------------------------- a deployed stage (moto)

STAGE, DATABASE, WAREHOUSE_BUCKET = "qa", "qa_sales", "qa-wh"
WAREHOUSE = f"s3://{WAREHOUSE_BUCKET}/wh"


@pytest.fixture
def stage(clean_aws: MotoServer) -> MotoServer:
    """A stack `lakeroute-qa` whose outputs name the Glue database and the warehouse, and a
    table with three rows in them."""
    outputs = {"Stage": STAGE, "GlueDatabases": json.dumps({"sales": DATABASE}), "WarehouseUri": WAREHOUSE,
               "LandingBuckets": json.dumps({"landing": "qa-landing"}),
               "QuarantineUri": "s3://qa-quarantine/quarantine"}
    boto3.client("cloudformation").create_stack(StackName=f"lakeroute-{STAGE}", TemplateBody=json.dumps({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "qa-ingest"}}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()}}))
    boto3.client("s3").create_bucket(Bucket=WAREHOUSE_BUCKET)
    catalog = glue_catalog(WAREHOUSE)
    catalog.create_namespace(DATABASE)
    table = catalog.create_table(f"{DATABASE}.orders", pa.schema([("id", pa.int64()), ("name", pa.string())]))
    table.append(pa.table({"id": pa.array([7, 8, 9], pa.int64()), "name": ["a", "b", "c"]}))
    return clean_aws


def stage_connect(engine: str) -> str:
    result = runner.invoke(app, ["connect", "--stage", STAGE, "--engine", engine])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_stage_snippets_read_the_glue_tables_on_moto(stage: MotoServer, tmp_path: Path) -> None:
    env = stage.env()
    code = stage_connect("pyiceberg")
    assert "GlueCatalog('lakeroute'" in code and f"'warehouse': '{WAREHOUSE}'" in code
    assert "testing" not in code, "no credential is ever printed"
    out = run_snippet(code, tmp_path, env)
    assert f"('{DATABASE}', 'orders')" in out and "[[7,8,9]]" in out

    code = stage_connect("duckdb")
    assert "testing" not in code
    total = 'print(con.sql("SELECT sum(id) FROM qa_sales.orders").fetchall())\n'  # noqa: S608 - the test's own SQL
    out = run_snippet(code + total, tmp_path, env)
    assert "[(24,)]" in out, "7 + 8 + 9, read by DuckDB from S3 through the Glue table's metadata"

    head = stage_connect("polars").split("import polars as pl")[0]
    print("polars is not installed (not a lakeroute dependency): running the snippet's PyIceberg part only"
          if importlib.util.find_spec("polars") is None else "polars installed: PyIceberg part checked here")
    assert run_snippet(head + "print(table.scan().to_arrow().num_rows)\n", tmp_path, env).strip().endswith("3")


@pytest.mark.slow
def test_stage_spark_and_athena_name_the_glue_database_and_warehouse(stage: MotoServer) -> None:
    spark = stage_connect("spark")
    print(spark)
    assert "spark.sql.catalog.lakeroute.type=glue" in spark
    assert f"spark.sql.catalog.lakeroute.warehouse={WAREHOUSE}" in spark
    assert "spark.sql.catalog.lakeroute.io-impl=org.apache.iceberg.aws.s3.S3FileIO" in spark
    assert "SELECT * FROM lakeroute.`qa_sales`.`orders` LIMIT 10" in spark
    assert "iceberg-aws-bundle" in spark and f"sales -> {DATABASE}" in spark
    athena = stage_connect("athena")
    print(athena)
    assert 'SELECT * FROM "AwsDataCatalog"."qa_sales"."orders" LIMIT 10;' in athena
    assert f"--   sales -> {DATABASE}: orders" in athena
    assert f"Catalog=AwsDataCatalog,Database={DATABASE}" in athena


@pytest.mark.slow
def test_an_unknown_stage_is_one_line_exit_2(clean_aws: MotoServer) -> None:
    result = runner.invoke(app, ["connect", "--stage", "nope"])
    print(result.stderr)
    assert result.exit_code == 2
    assert result.stderr == ("error: stage 'nope': stack lakeroute-nope not found (deploy it with "
                             "`npx cdk deploy -c stage=nope`)\n")


# ---------------------------------------------------------------- a stage on S3 Tables (moto)

S3TABLES_ONLY = pytest.mark.parametrize("catalog_kind", ["s3tables"], indirect=True)


@pytest.fixture
def tables_stage(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 catalog_kind: str) -> Iterator[DeployedStage]:
    """A stage with ``catalog: s3tables`` (outputs ``StageCatalog``, ``TableBucketArn``,
    ``Namespaces``: sales -> qa_sales) whose handler has ingested three rows into sales.orders."""
    deployment = DEPLOYMENT.with_catalog(catalog_kind)
    with handler_environment(deployment, clean_aws, tmp_path, monkeypatch):
        lake = DeployedStage(tmp_path, deployment)
        lake.put("orders/a.parquet", parquet([7, 8, 9]))
        assert lake.ingest("orders/a.parquet") == {"batchItemFailures": []}
        yield lake


@pytest.mark.slow
@S3TABLES_ONLY
def test_s3tables_stage_snippets_read_the_ingested_rows_on_moto(tables_stage: DeployedStage,
                                                               tmp_path: Path) -> None:
    arn = DEPLOYMENT.with_catalog("s3tables").table_bucket_arn
    code = stage_connect("pyiceberg")
    assert "from lakeroute.aws.s3tables import S3TablesCatalog" in code and f"'warehouse': '{arn}'" in code
    assert "Glue" not in code and "testing" not in code, "no Glue code, no credential printed"
    rest = ["#   catalog = load_catalog('s3tables', **{", "#       'type': 'rest',",
            f"#       'uri': 'https://s3tables.{REGION}.amazonaws.com/iceberg',", f"#       'warehouse': '{arn}',",
            "#       'rest.sigv4-enabled': 'true',", "#       'rest.signing-name': 's3tables',",
            f"#       'rest.signing-region': '{REGION}',"]
    assert all(line in code.splitlines() for line in rest), "the lakeroute-free REST option, commented out"
    out = run_snippet(code, tmp_path)
    assert f"('{DATABASE}', 'orders')" in out and "[[7,8,9]]" in out, "the rows the handler ingested"

    code = stage_connect("duckdb")
    assert "Glue" not in code and "glue" not in code and "testing" not in code
    assert f"#   con.execute(\"ATTACH '{arn}' AS s3_tables (TYPE iceberg, ENDPOINT_TYPE s3_tables)\")" in code
    total = 'print(con.sql("SELECT sum(id) FROM qa_sales.orders").fetchall())\n'  # noqa: S608 - the test's own SQL
    out = run_snippet(code + total, tmp_path)
    assert "[(24,)]" in out, "7 + 8 + 9, read by DuckDB from the table's S3 Tables storage"
    # Without --stage, the handler's variables (LAKEROUTE_CATALOG=s3tables, LAKEROUTE_TABLE_BUCKET_ARN)
    # name the stage: no Namespaces output there, so the snippet lists the bucket's namespaces itself.
    result = runner.invoke(app, ["connect", "--engine", "duckdb"])
    assert result.exit_code == 0 and f"bucket = '{arn}'" in result.stdout, result.stderr
    assert "[(24,)]" in run_snippet(result.stdout + total, tmp_path)

    head = stage_connect("polars").split("import polars as pl")[0]
    assert "S3TablesCatalog('lakeroute'" in head
    assert run_snippet(head + "print(table.scan().to_arrow().num_rows)\n", tmp_path).strip().endswith("3")


@pytest.mark.slow
@S3TABLES_ONLY
def test_s3tables_stage_spark_and_athena_name_the_table_bucket(tables_stage: DeployedStage) -> None:
    """Text only: no Spark, no Athena and no Lake Formation integration can run here."""
    arn = DEPLOYMENT.with_catalog("s3tables").table_bucket_arn
    bucket = arn.rsplit("/", 1)[1]
    spark = stage_connect("spark")
    print(spark)
    assert "software.amazon.s3tables:s3-tables-catalog-for-iceberg-runtime:" in spark
    assert "spark.sql.catalog.lakeroute.catalog-impl=software.amazon.s3tables.iceberg.S3TablesCatalog" in spark
    assert f"spark.sql.catalog.lakeroute.warehouse={arn}" in spark
    assert "SELECT * FROM lakeroute.`qa_sales`.`orders` LIMIT 10" in spark
    assert "type=glue" not in spark and "Not run in lakeroute's tests" in spark
    athena = stage_connect("athena")
    print(athena)
    assert f'SELECT * FROM "s3tablescatalog/{bucket}"."qa_sales"."orders" LIMIT 10;' in athena  # noqa: S608
    assert f"Catalog=s3tablescatalog/{bucket},Database=qa_sales" in athena
    assert "Enable integration" in athena and "Lake Formation permissions" in athena
    assert "--   sales -> qa_sales: orders" in athena and "AwsDataCatalog" not in athena
