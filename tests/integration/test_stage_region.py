"""`--stage` commands take the AWS region from the standard places, and say where to set one
when there is none: ``AWS_REGION`` (which boto3 alone ignores), ``AWS_DEFAULT_REGION``, the
profile's ``region`` in ``~/.aws/config``, or the global ``--region``; none of them: one
``error:`` line, exit 2, no AWS call.

On moto's server, where CloudFormation is regional: the stage's stack exists in eu-west-3 only,
so a command finds it exactly when the region it resolved is eu-west-3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from lakeroute.aws.clients import NO_REGION
from lakeroute.cli import app
from typer.testing import CliRunner

from tests.support.moto_server import MotoServer
from tests.support.patience import patience

STAGE = "regional"
REGION = "eu-west-3"
QUARANTINE_BUCKET = "regional-quarantine"
ENTRY = "quarantine/landing/orders/a.csv@1"
NO_REGION_LINE = ("error: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in "
                  "~/.aws/config) or pass --region")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE",
                    "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture
def regional_stage(clean_aws: MotoServer) -> MotoServer:
    """The stage's stack in eu-west-3 (outputs as `--stage` reads them), its quarantine holding
    one entry."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=QUARANTINE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    record = {"bucket": "landing", "key": "orders/a.csv", "version": "1", "route": "orders",
              "stage": "read", "error": "broken", "quarantined_at": "2026-12-07T06:00:00+00:00"}
    s3.put_object(Bucket=QUARANTINE_BUCKET, Key=f"{ENTRY}/error.json", Body=json.dumps(record).encode())
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "regional-ingest"}}},
        "Outputs": {"IngestQueueUrl": {"Value": {"Ref": "Queue"}},
                    "QuarantineUri": {"Value": f"s3://{QUARANTINE_BUCKET}/quarantine"}},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"lakeroute-{STAGE}", TemplateBody=json.dumps(template))
    return clean_aws


@pytest.fixture
def no_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No region anywhere: none of the variables, and HOME an empty folder (no ~/.aws)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in REGION_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    return home


def listed(*args: str) -> list[str]:
    """`lakeroute [args] quarantine ls --stage STAGE -f json` in this process: the entries' keys."""
    result = CliRunner().invoke(app, [*args, "quarantine", "ls", "--stage", STAGE, "--all", "-f", "json"])
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return [str(r["key"]) for r in json.loads(result.stdout)]


def test_without_any_region_one_line_and_exit_2(regional_stage: MotoServer, no_region: Path) -> None:
    """The console script, as a user runs it: no NoRegionError traceback, no exit 1."""
    lakeroute = Path(sys.executable).with_name("lakeroute")
    proc = subprocess.run([str(lakeroute), "quarantine", "ls", "--stage", STAGE], capture_output=True,
                          text=True, env=dict(os.environ), timeout=patience(60))
    print(f"quarantine ls --stage {STAGE}, no region: exit {proc.returncode}, {proc.stderr!r}")
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, NO_REGION_LINE + "\n", "")
    assert f"error: {NO_REGION}" == NO_REGION_LINE


@pytest.mark.parametrize("command", [["tables"], ["history", "sales.orders"], ["replay"], ["connect"],
                                     ["backfill", "landing"], ["maintain"], ["quarantine", "show", "b/k"],
                                     ["quarantine", "dismiss", "b/k", "--yes"],
                                     ["quarantine", "purge", "--resolved"]])
def test_every_stage_command_says_the_same(regional_stage: MotoServer, no_region: Path,
                                           command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--stage", STAGE])
    assert (result.exit_code, result.stderr) == (2, NO_REGION_LINE + "\n"), (command, result.stderr)


def test_aws_region_is_used_and_wins_over_aws_default_region(
        regional_stage: MotoServer, no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    assert listed() == ["orders/a.csv"]
    # boto3 alone reads AWS_DEFAULT_REGION only, and would look for the stack in us-east-1.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert listed() == ["orders/a.csv"]


def test_the_region_decides_which_stack_is_found(regional_stage: MotoServer, no_region: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: in another region the stage has no stack."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    result = CliRunner().invoke(app, ["quarantine", "ls", "--stage", STAGE])
    assert result.exit_code == 2 and f"stack lakeroute-{STAGE} not found" in result.stderr


def test_aws_default_region_alone(regional_stage: MotoServer, no_region: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert listed() == ["orders/a.csv"]


def test_the_profile_region_in_the_aws_config_file(regional_stage: MotoServer, no_region: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (no_region / ".aws").mkdir()
    (no_region / ".aws" / "config").write_text(f"[default]\nregion = {REGION}\n\n[profile other]\n"
                                               "region = us-west-2\n")
    assert listed() == ["orders/a.csv"]
    monkeypatch.setenv("AWS_PROFILE", "other")  # the selected profile's region, not the default's
    result = CliRunner().invoke(app, ["quarantine", "ls", "--stage", STAGE])
    assert result.exit_code == 2 and f"stack lakeroute-{STAGE} not found" in result.stderr


def test_the_region_option(regional_stage: MotoServer, no_region: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert listed("--region", REGION) == ["orders/a.csv"]
    assert "AWS_REGION" not in os.environ, "--region applies to its command only"
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert listed("--region", REGION) == ["orders/a.csv"]  # the option wins over the environment
    assert os.environ["AWS_REGION"] == "us-east-1"


def test_the_handler_environment_needs_a_region_too(regional_stage: MotoServer, no_region: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --stage, the LAKEROUTE_* variables name the stage; its calls need a region as well."""
    for key, value in {"LAKEROUTE_ROUTES_TABLE": "r", "LAKEROUTE_LEDGER_TABLE": "l",
                       "LAKEROUTE_WAREHOUSE": "s3://w/warehouse",
                       "LAKEROUTE_QUARANTINE": f"s3://{QUARANTINE_BUCKET}/quarantine"}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["quarantine", "ls", "--all", "-f", "json"])
    assert (result.exit_code, result.stderr) == (2, NO_REGION_LINE + "\n")
    monkeypatch.setenv("AWS_REGION", REGION)
    result = CliRunner().invoke(app, ["quarantine", "ls", "--all", "-f", "json"])
    assert result.exit_code == 0 and [r["key"] for r in json.loads(result.stdout)] == ["orders/a.csv"]


def test_any_other_aws_command_without_a_region_says_the_same(no_region: Path, tmp_path: Path) -> None:
    """Outside the --stage commands (here `sync --routes-table`, what the deploy runs), boto3's
    NoRegionError reaches the console script: the same line, exit 2, not exit 1."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never reached: no client without a region
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "r.yaml").write_text("name: r\nsource: {bucket: drop}\ntarget: {table: ns.t}\n")
    lakeroute = Path(sys.executable).with_name("lakeroute")
    proc = subprocess.run([str(lakeroute), "--routes", str(routes), "sync", "--routes-table", "t",
                           "--warehouse", "s3://w/p"], capture_output=True, text=True, env=env,
                          timeout=patience(60))
    assert (proc.returncode, proc.stderr) == (2, NO_REGION_LINE + "\n"), proc.stderr
