"""Table maintenance on a moto server (Glue catalog, S3 warehouse, DynamoDB ledger): the
scheduled function compacts and expires, exactly once survives it, orphans on S3 go after
the grace period and referenced files never do; the CLI's dry run reads the same stage."""

from __future__ import annotations

import io
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute import handler as lambda_handler
from lakeroute import maintain as lambda_maintain
from lakeroute.aws.config import split_s3_uri
from lakeroute.cli import app
from lakeroute.core.maintain.maintenance import maintain_tables
from lakeroute.core.maintain.references import ManifestReader, referenced
from lakeroute.core.routes import load_routes
from lakeroute.sync import sync_aws
from typer.testing import CliRunner

from tests.support.aws_lake import Deployment, LambdaContext, MotoLake, handler_environment, s3_notification
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.slow

LANDING = "maint-landing"
TABLE = "maint.orders"
DEPLOYMENT = Deployment(routes_table="maint-routes", ledger_table="maint-ledger", warehouse_bucket="maint-wh",
                        quarantine_bucket="maint-quarantine", metrics_namespace="lakeroute-maint")
ROUTE = """
    name: orders
    source: {bucket: maint-landing, prefix: orders/}
    target:
      table: maint.orders
      partition_by: ["bucket(2, id)"]
      columns: {id: long, _source_key: string}
      maintenance: {keep_snapshots: 1, target_file_mb: 1}
    sql: SELECT id, getvariable('source_key') AS _source_key FROM source
    """


class Lake(MotoLake):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, DEPLOYMENT, [LANDING])
        routes_dir = tmp / "routes"
        routes_dir.mkdir()
        (routes_dir / "orders.yaml").write_text(textwrap.dedent(ROUTE), encoding="utf-8")
        sync_aws(load_routes(routes_dir), DEPLOYMENT.routes_table, DEPLOYMENT.warehouse)

    def put(self, key: str, start: int) -> dict:
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": pa.array(range(start, start + 5), pa.int64())}), buf)
        put = self.s3.put_object(Bucket=LANDING, Key=key, Body=buf.getvalue())
        return s3_notification(LANDING, key, put, len(buf.getvalue()))

    def ids(self) -> list[int]:
        return sorted(self.table(TABLE).scan().to_arrow().column("id").to_pylist())


@pytest.fixture
def lake(clean_aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    with handler_environment(DEPLOYMENT, clean_aws, tmp_path, monkeypatch):
        yield Lake(tmp_path)


def test_scheduled_maintenance_on_glue_and_s3(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    notes = [lake.put(f"orders/{i}.parquet", 10 * i) for i in range(4)]
    for i, n in enumerate(notes):  # one commit each
        assert lambda_handler.handler(n, LambdaContext(f"req-{i}", 120_000)) == {"batchItemFailures": []}
    ids = lake.ids()
    assert len(ids) == 20
    table = lake.table(TABLE)
    files_before = len(table.inspect.files())
    # a file of an interrupted run under the table location: young, so it stays for now
    bucket, prefix = split_s3_uri(table.location())
    orphan = f"{prefix}/data/interrupted-run.parquet"
    lake.s3.put_object(Bucket=bucket, Key=orphan, Body=b"staged, never committed")

    # the CLI, in the function's environment (the stage it names): a dry run changes nothing
    location = table.metadata_location
    dry = CliRunner().invoke(app, ["maintain", TABLE])
    assert dry.exit_code == 0, dry.output
    assert "would rewrite" in dry.output and lake.table(TABLE).metadata_location == location

    result = lambda_maintain.handler({"source": "aws.events"}, LambdaContext("req-maint", 600_000))
    out = capsys.readouterr().out
    table = lake.table(TABLE)
    assert result["tables"] == [TABLE] and result["files_compacted"] == files_before
    assert len(table.inspect.files()) == 2, "one file per bucket(2, id) partition"
    assert len(table.metadata.snapshots) == 1 and table.current_snapshot().summary.operation.value == "replace"
    assert lake.ids() == ids
    emf = [json.loads(line) for line in out.splitlines() if '"FilesCompacted"' in line]
    assert emf and emf[0]["FilesCompacted"] == [float(files_before)]
    assert lake.s3.head_object(Bucket=bucket, Key=orphan), "young orphan kept"

    # exactly once after compaction and expiry: every object delivered again is skipped
    for i, n in enumerate(notes):
        lambda_handler.handler(n, LambdaContext(f"again-{i}", 120_000))
    assert lake.ids() == ids

    # four days later the orphan is past the grace period; nothing referenced goes
    job = lambda_maintain.build_job()
    reports, _ = maintain_tables(job.catalog, job.ledger, job.lister, job.settings, [TABLE], apply=True,
                                 now=time.time() + 4 * 86400)
    assert reports[0].orphans == 1
    keys = {o["Key"] for o in lake.s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]}
    assert orphan not in keys
    table = lake.table(TABLE)
    for path in referenced(table.metadata, table.metadata_location, ManifestReader(table.io)):
        assert split_s3_uri(path)[1] in keys, path
    assert lake.ids() == ids
    with capsys.disabled():
        print(f"\n[maintenance on moto] {files_before} -> 2 files, {result['snapshots_expired']} snapshots "
              f"expired, orphans: {reports[0].orphans} removed after the grace period")
