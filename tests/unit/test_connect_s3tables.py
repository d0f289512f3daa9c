"""`connect --stage S` text for an S3 Tables stage, as a real account gets it (no endpoint
variables): what only a real account can run is checked here as text and as Python that
compiles; the printed code that runs on moto is run in ``tests/integration/test_connect.py``."""

from __future__ import annotations

import ast

import pytest
from lakeroute.aws.stage import Stage
from lakeroute.cli.connect import stage_snippet

ARN = "arn:aws:s3tables:eu-west-1:111122223333:bucket/lakeroute-prod-tables"
STAGE = Stage(name="prod", source="stack lakeroute-prod", warehouse="s3://prod-wh/wh", catalog="s3tables",
              table_bucket=ARN, databases={"sales": "sales_prod"})


def commented_block(code: str, first: str) -> str:
    """The commented-out code that starts at the line ``#   <first>``, uncommented."""
    lines = code.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"#   {first}"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[4:] if line.startswith("#   ") else "")
    return "\n".join(block) + "\n"


def test_the_commented_rest_option_is_pyicebergs_sigv4_configuration_for_the_bucket() -> None:
    code = stage_snippet("pyiceberg", STAGE, ["sales_prod.orders"], None, {})
    print(code)
    compile(code, "pyiceberg-snippet", "exec")
    assert "endpoint_url" not in code and "s3.endpoint" not in code, "no endpoint without AWS_ENDPOINT_URL*"
    assert "boto3.client('s3tables', region_name='eu-west-1')" in code, "the region is the table bucket's"
    rest = commented_block(code, "from pyiceberg.catalog import load_catalog")
    call = next(n for n in ast.walk(ast.parse(rest))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "load_catalog")
    assert ast.literal_eval(call.args[0]) == "s3tables"
    assert ast.literal_eval(call.keywords[0].value) == {
        "type": "rest", "uri": "https://s3tables.eu-west-1.amazonaws.com/iceberg", "warehouse": ARN,
        "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables", "rest.signing-region": "eu-west-1"}
    assert "Untested by lakeroute" in code


def test_the_commented_duckdb_attach_is_the_bucket_arn_with_the_s3_tables_endpoint_type() -> None:
    code = stage_snippet("duckdb", STAGE, ["sales_prod.orders"], None, {})
    print(code)
    compile(code, "duckdb-snippet", "exec")
    attach = commented_block(code, 'con.execute("LOAD aws")')
    compile(attach, "attach", "exec")
    assert f"ATTACH '{ARN}' AS s3_tables (TYPE iceberg, ENDPOINT_TYPE s3_tables)" in attach
    assert "PROVIDER credential_chain" in attach and 's3_tables."sales_prod"."orders"' in attach
    assert "ENDPOINT ?" not in code and "'eu-west-1']" in code, "region in the S3 secret, no endpoint"


@pytest.mark.parametrize("engine", ["pyiceberg", "polars", "duckdb"])
def test_a_stage_without_tables_yet_prints_code_that_lists_them(engine: str) -> None:
    code = stage_snippet(engine, STAGE, [], None, {})
    compile(code, f"{engine}-snippet", "exec")
    assert "# no table yet" in code and f"{ARN!r}" in code and "glue" not in code.lower()
    assert ("SHOW ALL TABLES" if engine == "duckdb" else "catalog.list_namespaces()") in code


def test_spark_and_athena_without_tables_name_placeholders() -> None:
    spark = stage_snippet("spark", STAGE, [], None, {})
    assert "spark.sql.catalog.lakeroute.warehouse=" + ARN in spark and "`namespace`.`table`" in spark
    athena = stage_snippet("athena", STAGE, [], None, {})
    assert "--   sales -> sales_prod: (no table yet)" in athena
    assert "--region eu-west-1" in athena and "Catalog=s3tablescatalog/lakeroute-prod-tables," in athena
