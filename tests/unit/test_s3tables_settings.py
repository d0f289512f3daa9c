"""S3 Tables settings without AWS: the handler's environment, a stage's outputs, the maintenance
configuration derived from ``target.maintenance``, and which paths are S3 Tables storage."""

from __future__ import annotations

import pytest
from lakeroute.aws.config import AwsConfig
from lakeroute.aws.s3tables import in_table_storage
from lakeroute.aws.s3tables_maintenance import table_configuration
from lakeroute.aws.stage import stage_from_env, stage_from_outputs
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import Maintenance

ARN = "arn:aws:s3tables:eu-west-1:111122223333:bucket/lakeroute-dev-tables"
BASE = {"LAKEROUTE_ROUTES_TABLE": "r", "LAKEROUTE_LEDGER_TABLE": "l", "LAKEROUTE_WAREHOUSE": "s3://wh/wh",
        "LAKEROUTE_QUARANTINE": "s3://q/q"}


def test_catalog_s3tables_needs_the_table_bucket_arn() -> None:
    with pytest.raises(ConfigError, match="LAKEROUTE_CATALOG=s3tables needs LAKEROUTE_TABLE_BUCKET_ARN"):
        AwsConfig.from_env({**BASE, "LAKEROUTE_CATALOG": "s3tables"})
    config = AwsConfig.from_env({**BASE, "LAKEROUTE_CATALOG": "s3tables", "LAKEROUTE_TABLE_BUCKET_ARN": ARN})
    assert (config.catalog, config.table_bucket) == ("s3tables", ARN)
    assert AwsConfig.from_env(BASE).catalog == "glue"


def test_a_stage_says_its_catalog_in_outputs_and_environment() -> None:
    stage = stage_from_outputs("dev", {"StageCatalog": "s3tables", "TableBucketArn": ARN,
                                       "Namespaces": '{"sales": "sales_dev"}'}, "stack lakeroute-dev")
    assert (stage.catalog, stage.table_bucket, stage.table("sales.orders")) == ("s3tables", ARN, "sales_dev.orders")
    assert stage_from_outputs("dev", {"GlueDatabases": '{"sales": "sales_dev"}'}, "s").catalog == "glue"
    env = stage_from_env({**BASE, "LAKEROUTE_CATALOG": "s3tables", "LAKEROUTE_TABLE_BUCKET_ARN": ARN})
    assert env is not None and (env.catalog, env.table_bucket) == ("s3tables", ARN)


@pytest.mark.parametrize(("mb", "want"), [(1, 64), (64, 64), (128, 128), (512, 512), (4096, 512)])
def test_target_file_size_is_brought_into_s3_tables_range(mb: int, want: int) -> None:
    value = table_configuration(Maintenance(target_file_mb=mb))
    assert value["icebergCompaction"]["settings"]["icebergCompaction"]["targetFileSizeMB"] == want


def test_snapshot_management_keeps_what_lakeroute_keeps() -> None:
    value = table_configuration(Maintenance(keep_snapshots=7, keep_days=0.01))
    assert value["icebergSnapshotManagement"] == {"status": "enabled", "settings": {"icebergSnapshotManagement": {
        "minSnapshotsToKeep": 7, "maxSnapshotAgeHours": 1}}}


def test_only_table_storage_buckets_are_left_to_s3_tables() -> None:
    assert in_table_storage("s3://3a341634-aa7e-4de3--table-s3/metadata/x.json")
    assert not in_table_storage("s3://lakeroute-dev-warehouse/lane/t/x/tails.arrow")
    assert not in_table_storage("file:///tmp/x--table-s3/y")
