"""Least privilege, proven on moto: the deployed functions run with IAM enforced.

The dev stage's synthesized template is deployed to moto's CloudFormation (as in
``test_stages_on_moto.py``), which creates the IAM roles with the template's policies. Each
role under test is read back from moto's IAM and readied for moto's authorization
(``tests/support/iam.py``): statements of services moto checks by action only (DynamoDB,
Glue, Logs, ECS) get Resource ``*``, every action stays exactly as synthesized, S3 and SQS
statements stay exactly as deployed (moto checks them against the bucket, object and queue
ARNs); the trust policy lets the test's own user assume the role. With auth on
(``/moto-api/reset-auth``), the test assumes the role through moto's STS and runs the code
in a subprocess with the deployed environment plus the role's temporary credentials:

- the route sync (``lakeroute.sync.on_event``, Create, the custom resource's properties);
- the ingest handler (``lakeroute.handler.handler``) on what Lambda's SQS poller hands it,
  the poller emulated with the same role (GetQueueAttributes, ReceiveMessage,
  DeleteMessage) and the output delivered to the function's log group with it
  (CreateLogStream, PutLogEvents), as Lambda does. The messages are moto's own S3
  notifications (the configuration the stack's custom resource would put) of objects an
  ``uploader`` user with nothing but ``s3:PutObject`` put into the physical landing bucket:
  good files (staged and handed off to the commit lane: a record under the lane prefix and a
  message in the table's group of the FIFO queue), a poison file (quarantined, a multipart
  copy), and a good file's message delivered again after its commit (skipped);
- the commit handler (``lakeroute.lane_handler.handler``) on what the FIFO queue's poller
  hands it, with the commit function's role: it commits each table's hand-offs (creating the
  table whose first rows these are), removes the records, writes the ledger and its logs;
- the large-object tier, when the template has it: the hand-off (``ecs:RunTask`` with the
  ingest role), the Fargate task's entry point with the task role (its logs shipped and its
  image pulled with the execution role, as ECS does), and the stop handler with its role
  (retry with RunTask, then quarantine).

The audited server records every authorization decision: the tests assert that none was
denied and print, per role, what it was granted and what it used; the revocation tests take
one needed permission away and assert that the run then reports AccessDenied.

What these tests cannot prove (moto 5.2): resource-level scoping of DynamoDB, Glue, Logs and
ECS statements (checked by action only); conditions of identity policies (moto treats them as
met) and ``iam:PassRole`` (never checked); resource policies (bucket and queue policies are
not even deployed: moto's CloudFormation skips them) and the S3 -> SQS delivery they allow;
the copy source of CopyObject (moto checks the destination only); S3's 403-instead-of-404
without ``s3:ListBucket``; KMS (an imported landing bucket encrypted with a customer key
needs ``kms:Decrypt`` that the stack does not grant); Lake Formation; X-Ray.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.infra.synth import INGEST_CMD, SYNC_CMD, Synth, function_by_cmd, render
from tests.integration.test_stages_on_moto import bootstrap, deploy, stack_resources
from tests.support.aws_lake import ACCOUNT
from tests.support.iam import (
    DENIED,
    REPO_ROOT,
    Audit,
    Check,
    DeployedRole,
    FunctionProcess,
    Invocation,
    assume,
    client,
    iam_enforced,
    iam_user,
    ready_for_moto,
    start_audited_moto_server,
    without,
    without_resource,
)
from tests.support.moto_server import REGION, MotoServer
from tests.support.patience import patience

pytestmark = pytest.mark.slow

STOPPED_TASK_CMD = ["lakeroute.task.on_stopped"]
COMMIT_CMD = ["lakeroute.lane_handler.handler"]
TESTER = "lakeroute-iam-tester"  # assumes the roles (their trust policies name it)
UPLOADER = "lakeroute-uploader"  # puts landing objects, nothing else
SALES = "lr-test-sales"  # the logical landing bucket of the orders route
GOOD_KEY, POISON_KEY = "orders/2026/good.parquet", "orders/2026/poison.parquet"
REFUNDS_KEY = "refunds/2026/refunds.csv"  # its table has no declared columns: created on first load
BIG_KEY, OOM_KEY = "orders/2026/big.parquet", "orders/2026/oom.parquet"
TABLES = ("sales_dev.orders", "sales_dev.refunds")  # the Glue tables (physical) of GOOD_KEY, REFUNDS_KEY
# ReceiveMessage's visibility timeout for the first batch: short, so that the message whose
# delete is "lost" (the function timed out after committing) comes back within the test.
FIRST_VISIBILITY_SECONDS = 3


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def audit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("iam-audit") / "audit.jsonl"


@pytest.fixture(scope="module")
def moto(audit_file: Path) -> Iterator[MotoServer]:
    """This module's server: conftest's ``moto``, with every authorization decision recorded."""
    with start_audited_moto_server(audit_file) as server:
        yield server


@pytest.fixture
def audit(clean_aws: MotoServer, audit_file: Path) -> Audit:
    found = Audit(audit_file)
    found.mark()
    return found


# ``dev``: the dev stage of BASE_ROUTES, the session's synth (tests/infra/fixtures.py).


# ---------------------------------------------------------------- the deployed stage


def resolve(value: Any) -> Any:
    return render(value, account=ACCOUNT, region=REGION)


def has_tier(s: Synth) -> bool:
    return bool(s.resources("AWS::ECS::TaskDefinition")) and any(
        r["Properties"].get("ImageConfig", {}).get("Command") == STOPPED_TASK_CMD
        for r in s.resources("AWS::Lambda::Function").values())


@dataclass
class Stage:
    """The dev stack deployed to moto, completed by hand where moto's CloudFormation stops."""

    s: Synth
    resources: dict[str, dict[str, Any]]
    queue_url: str = ""
    queue_arn: str = ""
    lane_url: str = ""  # the commit lane's FIFO queue
    lane_arn: str = ""
    landing: dict[str, str] = field(default_factory=dict)  # logical -> physical (created buckets)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # function configurations by CMD

    @classmethod
    def deploy(cls, s: Synth) -> Stage:
        bootstrap()
        deploy(s)
        stage = cls(s, stack_resources(s.stack.stack_name))
        stage.queue_url = stage.physical(s.stack.resolve(s.stack.queue.queue.node.default_child.logical_id))
        stage.queue_arn = boto3.client("sqs").get_queue_attributes(
            QueueUrl=stage.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stage.lane_url = stage.physical(s.stack.resolve(s.stack.lane.queue.node.default_child.logical_id))
        stage.lane_arn = boto3.client("sqs").get_queue_attributes(
            QueueUrl=stage.lane_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # moto's event source mapping would "invoke" the function (in Docker) for every message
        # sent to the queue; the test's Poller is the event source here.
        for logical in s.resources("AWS::Lambda::EventSourceMapping"):
            boto3.client("lambda").update_event_source_mapping(UUID=stage.physical(logical), Enabled=False)
        # moto skips AWS::Glue::Database: create the databases as CloudFormation would.
        for db in s.resources("AWS::Glue::Database").values():
            boto3.client("glue").create_database(DatabaseInput=stage.value(db["Properties"]["DatabaseInput"]))
        # moto runs no custom resource: put the notification configurations CDK's
        # Custom::S3BucketNotifications would (of the created buckets; imported ones do not
        # exist here). moto then sends its s3:TestEvent, and one message per new object.
        logical_of = {resolve(s.stack.resolve(p)): b for b, p in s.stack.names.bucket_map().items()}
        for props in (r["Properties"] for r in s.resources("Custom::S3BucketNotifications").values()):
            if "Ref" in props["BucketName"]:
                bucket = stage.value(props["BucketName"])
                boto3.client("s3").put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration=stage.value(props["NotificationConfiguration"]))
                stage.landing[logical_of[bucket]] = bucket
        return stage

    def physical(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["PhysicalResourceId"])

    def value(self, value: Any) -> Any:
        """A template value as CloudFormation resolved it in this deployment (Ref, Fn::Join,
        Fn::Sub of pseudo parameters, Fn::GetAtt of the queue's or a bucket's Arn)."""
        value = resolve(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.physical(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            type_ = self.resources[logical]["ResourceType"]
            if (type_, attribute) == ("AWS::SQS::Queue", "Arn") and self.physical(logical) == self.queue_url:
                return self.queue_arn
            if (type_, attribute) == ("AWS::SQS::Queue", "Arn") and self.physical(logical) == self.lane_url:
                return self.lane_arn
            if (type_, attribute) == ("AWS::S3::Bucket", "Arn"):
                return f"arn:aws:s3:::{self.physical(logical)}"
            raise NotImplementedError(f"Fn::GetAtt {logical}.{attribute} ({type_})")
        if set(value) == {"Fn::Join"}:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self.value(p)) for p in parts)
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name in ("AWS::Partition", "AWS::AccountId", "AWS::Region", "AWS::URLSuffix"):
                text = text.replace(f"${{{name}}}", str(resolve({"Ref": name})))
            return text
        return {k: self.value(v) for k, v in value.items()}

    def function(self, cmd: list[str]) -> dict[str, Any]:
        """The deployed function's configuration (moto's Lambda; read once, with auth off)."""
        if cmd[0] not in self.configs:
            logical, _ = function_by_cmd(self.s, cmd)
            self.configs[cmd[0]] = dict(boto3.client("lambda").get_function_configuration(
                FunctionName=self.physical(logical)))
        return self.configs[cmd[0]]

    def log_group(self, cmd: list[str]) -> str:
        _, resource = function_by_cmd(self.s, cmd)
        return str(self.value(resource["Properties"]["LoggingConfig"]["LogGroup"]))

    def role_ids(self) -> dict[str, str]:
        """Logical ids of the roles under test, by what assumes them."""
        def of_function(cmd: list[str]) -> str:
            return str(function_by_cmd(self.s, cmd)[1]["Properties"]["Role"]["Fn::GetAtt"][0])

        ids = {"ingest": of_function(INGEST_CMD), "commit": of_function(COMMIT_CMD), "sync": of_function(SYNC_CMD)}
        if has_tier(self.s):
            ((_, definition),) = self.s.resources("AWS::ECS::TaskDefinition").items()
            ids["task"] = definition["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
            ids["execution"] = definition["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
            ids["stop"] = of_function(STOPPED_TASK_CMD)
        return ids

    def role(self, logical_id: str) -> DeployedRole:
        managed = [str(self.value(arn)) for arn in
                   self.s.json["Resources"][logical_id]["Properties"].get("ManagedPolicyArns", [])]
        return DeployedRole.read(boto3.client("iam"), logical_id, self.physical(logical_id), managed)

    def bucket(self, construct: Any) -> str:
        return self.physical(self.s.stack.resolve(construct.node.default_child.logical_id))

    @property
    def warehouse_bucket(self) -> str:
        return self.bucket(self.s.stack.storage.warehouse)

    @property
    def quarantine_bucket(self) -> str:
        return self.bucket(self.s.stack.storage.quarantine)

    def task_definition(self) -> dict[str, Any]:
        ((logical, _),) = self.s.resources("AWS::ECS::TaskDefinition").items()
        found = boto3.client("ecs").describe_task_definition(taskDefinition=self.physical(logical))
        return dict(found["taskDefinition"])


# ---------------------------------------------------------------- running under a role


def runtime_env(variables: dict[str, str], credentials: dict[str, str], endpoint: str, tmp: Path,
                **runtime: str) -> dict[str, str]:
    """What the code's process sees in AWS: the deployed environment, the role's session
    credentials and the runtime's own variables (``runtime``); plus the test's plumbing (the
    moto endpoint, a private /tmp and HOME, no shared config or credential files)."""
    tmp.mkdir(parents=True, exist_ok=True)
    plumbing = {"AWS_ENDPOINT_URL": endpoint, "LAKEROUTE_TMP": str(tmp), "HOME": str(tmp),
                "PATH": os.environ.get("PATH", ""), "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONUNBUFFERED": "1"}
    if os.environ.get("PYTHONPATH"):
        plumbing["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**variables, **credentials, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **runtime, **plumbing}


class LambdaLogs:
    """What Lambda (or ECS's awslogs driver) does with the output: its lines to the log group,
    one stream per process, with the role it was given (CreateLogStream, PutLogEvents)."""

    def __init__(self, endpoint: str, credentials: dict[str, str], log_group: str, stream: str = "") -> None:
        self.logs = client("logs", endpoint, credentials, REGION)
        self.log_group = log_group
        self.stream = stream or f"2026/11/02/[$LATEST]{os.urandom(8).hex()}"
        self.logs.create_log_stream(logGroupName=log_group, logStreamName=self.stream)

    def deliver(self, lines: list[str]) -> None:
        now = int(time.time() * 1000)
        lines = [line for line in lines if line.strip()]
        for i in range(0, len(lines), 1000):
            self.logs.put_log_events(logGroupName=self.log_group, logStreamName=self.stream,
                                     logEvents=[{"timestamp": now, "message": m} for m in lines[i:i + 1000]])

    def invocation(self, invocation: Invocation) -> Invocation:
        self.deliver(invocation.output)
        return invocation


class Poller:
    """Lambda's SQS event source for one function, calling SQS with the function's role (as
    the service does): GetQueueAttributes, ReceiveMessage, DeleteMessage per handled record
    (DeleteMessageBatch is authorized as sqs:DeleteMessage by AWS, as its own action by moto)."""

    def __init__(self, url: str, arn: str, endpoint: str, credentials: dict[str, str], batch_size: int) -> None:
        self.sqs = client("sqs", endpoint, credentials, REGION)
        self.url, self.arn = url, arn
        self.batch_size = batch_size
        self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])

    def receive(self, keys: set[str], *, visibility: int | None = None, wait: float = 20,
                names: Callable[[dict[str, Any]], list[str]] | None = None) -> list[dict[str, Any]]:
        """Records until the notifications of ``keys`` are among them (with any other message);
        ``names``: what a record announces (default: the S3 keys it notifies)."""
        names = names or notified_keys
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while missing := keys - {k for r in records for k in names(r)}:
            assert time.monotonic() < deadline, f"no message for {missing}"
            args: dict[str, Any] = {"QueueUrl": self.url, "MaxNumberOfMessages": min(10, self.batch_size),
                                    "AttributeNames": ["All"], "MessageAttributeNames": ["All"],
                                    "WaitTimeSeconds": 1}
            if visibility is not None:
                args["VisibilityTimeout"] = visibility
            records += [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": REGION,
            } for m in self.sqs.receive_message(**args).get("Messages", [])]
        return records

    def delete(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=r["receiptHandle"])


def signalled_tables(record: dict[str, Any]) -> list[str]:
    """The table a commit-lane message signals (``{"table": T, "handoff": ID}``)."""
    return [json.loads(record["body"])["table"]]


def notified_keys(record: dict[str, Any]) -> list[str]:
    body = json.loads(record["body"])
    return [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", []) if "s3" in r]


def by_key(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    (found,) = [r for r in records if key in notified_keys(r)]
    return found


def failures(invocation: Invocation) -> set[str]:
    assert invocation.error is None, invocation.error
    return {f["itemIdentifier"] for f in invocation.result["batchItemFailures"]}


def summary(invocation: Invocation) -> dict[str, Any]:
    (line,) = [log for log in invocation.logs() if log["message"] == "batch ingested"]
    return line


def with_column(item: dict[str, Any], name: str, type_: str) -> dict[str, Any]:
    """A route item (``Route.to_item()``) with one more declared column, if it declares any."""
    route = json.loads(json.dumps(item["route"]))
    if route["target"].get("columns"):
        route["target"]["columns"][name] = type_
    return {**item, "route": route}


def parquet(rows: int, first: int = 1) -> bytes:
    data = io.BytesIO()
    pq.write_table(pa.table({"order_id": pa.array(range(first, first + rows), pa.int64()),
                             "amount": pa.array(["1.50"] * rows).cast(pa.decimal128(12, 2)),
                             "order_ts": pa.array([0] * rows, pa.timestamp("us", tz="UTC"))}), data)
    return data.getvalue()


@dataclass
class Run:
    """One run under IAM: the roles readied and the test's users made (auth off), then, with
    auth on, the steps of a test; everything the subprocesses printed."""

    stage: Stage
    moto: MotoServer
    tmp: Path
    tester_arn: str = ""
    tester: dict[str, str] = field(default_factory=dict)
    uploader: dict[str, str] = field(default_factory=dict)
    roles: dict[str, DeployedRole] = field(default_factory=dict)  # ingest, commit, sync (, task, execution, stop)
    notes: dict[str, list[str]] = field(default_factory=dict)
    output: dict[str, list[str]] = field(default_factory=dict)  # per role: stdout lines + stderr

    @classmethod
    def prepare(cls, stage: Stage, moto: MotoServer, tmp: Path,
                edits: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None) -> Run:
        run = cls(stage, moto, tmp)
        iam = boto3.client("iam")
        # The tester may assume the roles (and, for the tier, see which tasks were started).
        run.tester_arn, run.tester = iam_user(iam, TESTER, [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"},
            {"Effect": "Allow", "Action": ["ecs:ListTasks", "ecs:DescribeTasks"], "Resource": "*"}])
        _, run.uploader = iam_user(iam, UPLOADER, [{
            "Effect": "Allow", "Action": "s3:PutObject",
            "Resource": [f"arn:aws:s3:::{b}/*" for b in stage.landing.values()]}])
        for cmd in (INGEST_CMD, COMMIT_CMD, SYNC_CMD, *([STOPPED_TASK_CMD] if has_tier(stage.s) else [])):
            stage.function(cmd)
        for name, logical_id in stage.role_ids().items():
            run.roles[name] = stage.role(logical_id)
            run.notes[name] = ready_for_moto(iam, run.roles[name], trusted=run.tester_arn,
                                             edit=(edits or {}).get(name))
        return run

    def credentials(self, name: str) -> dict[str, str]:
        return assume(self.moto.endpoint, self.tester, self.roles[name].arn, f"lakeroute-{name}", REGION)

    def function(self, name: str, cmd: list[str], credentials: dict[str, str]) -> FunctionProcess:
        config = self.stage.function(cmd)
        env = runtime_env(config["Environment"]["Variables"], credentials, self.moto.endpoint, self.tmp / name,
                          AWS_LAMBDA_FUNCTION_NAME=config["FunctionName"],
                          AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config["MemorySize"]))
        return FunctionProcess(cmd[0], env, stderr=self.tmp / f"{name}.stderr",
                               function_name=config["FunctionName"], memory_mb=config["MemorySize"])

    def record(self, name: str, fn: FunctionProcess, *invocations: Invocation) -> None:
        self.output.setdefault(name, [])
        for i in invocations:
            self.output[name] += [*i.output, *([i.error] if i.error else [])]
        self.output[name] += fn.stderr().splitlines()

    def sync(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None) -> Invocation:
        """The route sync as the provider framework invokes it: Create with the custom resource's
        properties, or (``change``: the route items edited) the Update a changed route set makes."""
        (resource,) = self.stage.s.resources("Custom::LakerouteRouteSync").values()
        properties = resolve({k: v for k, v in resource["Properties"].items() if k != "ServiceToken"})
        event: dict[str, Any] = {"RequestType": "Create", "ResourceProperties": properties,
                                 "ResourceType": resource["Type"], "LogicalResourceId": "RouteSync",
                                 "StackId": self.stage.s.stack.stack_name}
        if change is not None:
            routes = json.dumps(change(json.loads(properties["Routes"])))
            event = {**event, "RequestType": "Update", "PhysicalResourceId": "lakeroute-route-sync",
                     "OldResourceProperties": properties,
                     "ResourceProperties": {**properties, "Routes": routes, "RoutesHash": "changed"}}
        credentials = self.credentials("sync")
        logs = LambdaLogs(self.moto.endpoint, credentials, self.stage.log_group(SYNC_CMD))
        with self.function("sync", SYNC_CMD, credentials) as fn:
            invocation = logs.invocation(fn.invoke(event))
            self.record("sync", fn, invocation)
        return invocation

    def upload(self, objects: dict[str, bytes]) -> None:
        s3 = client("s3", self.moto.endpoint, self.uploader, REGION)
        for key, body in objects.items():
            s3.put_object(Bucket=self.stage.landing[SALES], Key=key, Body=body)

    def ingest(self) -> tuple[FunctionProcess, Poller, LambdaLogs]:
        """The ingest function's warm process, its poller and its log delivery (one session)."""
        return self._fed("ingest", INGEST_CMD, self.stage.queue_url, self.stage.queue_arn)

    def commit(self) -> tuple[FunctionProcess, Poller, LambdaLogs]:
        """The commit function's warm process, the FIFO queue's poller and its log delivery."""
        return self._fed("commit", COMMIT_CMD, self.stage.lane_url, self.stage.lane_arn)

    def _fed(self, name: str, cmd: list[str], url: str, arn: str) -> tuple[FunctionProcess, Poller, LambdaLogs]:
        """A queue-fed function as the stack wires it: its event source mapping's batch size, the
        poller and the log delivery with the function's role."""
        credentials = self.credentials(name)
        function_id, _ = function_by_cmd(self.stage.s, cmd)
        (mapping,) = [m for m in self.stage.s.resources("AWS::Lambda::EventSourceMapping").values()
                      if m["Properties"]["FunctionName"] == {"Ref": function_id}]
        assert self.stage.value(mapping["Properties"]["EventSourceArn"]) == arn, "the queue the stack wires"
        poller = Poller(url, arn, self.moto.endpoint, credentials, int(mapping["Properties"]["BatchSize"]))
        logs = LambdaLogs(self.moto.endpoint, credentials, self.stage.log_group(cmd))
        return self.function(name, cmd, credentials), poller, logs

    def denials_in_output(self) -> list[str]:
        return [f"{name}: {line}" for name, lines in self.output.items() for line in lines if DENIED.search(line)]


def denied(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.allowed]


def used(checks: list[Check], role: DeployedRole) -> dict[str, set[str]]:
    """Action -> resources the role was allowed."""
    found: dict[str, set[str]] = {}
    for c in checks:
        if c.allowed and c.role == role.name:
            found.setdefault(c.action, set()).add(c.resource)
    return found


def report(run: Run, checks: list[Check]) -> str:
    """Per role run or checked: statements, actions granted, used (on which resources), not exercised."""
    lines = []
    for name, role in run.roles.items():
        if name not in run.output and not any(c.role == role.name for c in checks):
            continue
        granted, exercised = role.actions, used(checks, role)
        lines.append(f"role {name} ({role.logical_id}): {len(role.statements)} statements in "
                     f"{len(role.policies)} policies, {len(granted)} actions granted, {len(exercised)} exercised, "
                     f"{sum(1 for c in checks if c.role == role.name)} requests checked")
        lines += [f"  for moto: {note}" for note in run.notes[name]]
        for action in sorted(exercised):
            shown = sorted(exercised[action])
            more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
            lines.append(f"  used {action} on {', '.join(shown[:3])}{more}")
        lines.append(f"  granted, not exercised here: {', '.join(sorted(granted - set(exercised))) or 'none'}")
    for who in sorted({c.principal for c in checks if c.role is None}):
        lines.append(f"principal {who}: {', '.join(sorted({c.action for c in checks if c.principal == who}))}")
    for c in denied(checks):
        lines.append(f"DENIED {c.action} on {c.resource} to {c.principal} {c.reason}")
    return "\n".join(lines)


def assert_nothing_denied(run: Run, checks: list[Check]) -> None:
    assert not denied(checks), "\n".join(map(str, denied(checks)))
    assert not run.denials_in_output(), "\n".join(run.denials_in_output())
    assert {c.role for c in checks} >= {run.roles[n].name for n in run.output}, "every role run was checked"


# ---------------------------------------------------------------- route sync + ingest


def test_route_sync_ingest_and_commit_need_nothing_beyond_the_template(
    clean_aws: MotoServer, dev: Synth, audit: Audit, tmp_path: Path,
) -> None:
    stage = Stage.deploy(dev)
    run = Run.prepare(stage, clean_aws, tmp_path)
    # The poison is big enough for the quarantine's copy to be multipart (s3transfer: 8 MiB).
    good, poison = parquet(3), b"PAR1" + os.urandom(9 * 1024 * 1024) + b"PAR1"
    with iam_enforced(clean_aws.endpoint):
        sync = run.sync()
        run.upload({GOOD_KEY: good, REFUNDS_KEY: b"refund_id,amount\n7,2.50\n8,3.75\n", POISON_KEY: poison})
        fn, poller, logs = run.ingest()
        with fn:
            # Batch 1: the good objects are staged and handed off to their tables' lanes (the
            # refunds table does not exist yet), the poison is quarantined (a failure: redelivered).
            first = poller.receive({GOOD_KEY, REFUNDS_KEY, POISON_KEY}, visibility=FIRST_VISIBILITY_SECONDS)
            one = logs.invocation(fn.invoke({"Records": first}))
            # The function "timed out" after handing off: its message is not deleted, so it comes back.
            poller.delete([r for r in first
                           if r["messageId"] not in failures(one) and GOOD_KEY not in notified_keys(r)])
            # The commit lane: the FIFO queue's messages (one group per table) to the commit
            # function, which commits both tables (creating refunds) and removes the hand-offs.
            committer, lane_poller, lane_logs = run.commit()
            with committer:
                signals = lane_poller.receive(set(TABLES), names=signalled_tables)
                committed = lane_logs.invocation(committer.invoke({"Records": signals}))
                lane_poller.delete([r for r in signals if r["messageId"] not in failures(committed)])
                run.record("commit", committer, committed)
            # Batch 2: both come back; the good object is skipped (ledger), the poison quarantined again.
            second = poller.receive({GOOD_KEY, POISON_KEY})
            two = logs.invocation(fn.invoke({"Records": second}))
            poller.delete([r for r in second if r["messageId"] not in failures(two)])
            run.record("ingest", fn, one, two)
        # A later deploy: one route file removed, a column added to a declared table.
        update = run.sync(lambda items: [with_column(i, "note", "string") for i in items if i["name"] != "test-events"])
    checks = audit.checks()
    print("\n" + report(run, checks))
    assert_nothing_denied(run, checks)

    # (a) The route sync wrote the routes and created the declared tables; the update removed
    # a route (DeleteItem) and evolved a table (UpdateTable).
    assert sync.error is None, sync.error
    assert sync.result["Data"] == {"Routes": "4"}
    assert update.error is None, update.error
    assert update.result["Data"] == {"Routes": "3"}
    assert {"dynamodb:DeleteItem", "glue:UpdateTable"} <= set(used(checks, run.roles["sync"]))
    # (b) Batch 1: staged and handed off + quarantined (moto's s3:TestEvent messages are ignored).
    assert failures(one) == {by_key(first, POISON_KEY)["messageId"]}
    assert {k: summary(one)[k] for k in ("committed", "quarantined", "failed", "rows")} == {
        "committed": 0, "quarantined": 1, "failed": 0, "rows": 0}
    assert sorted(log["key"] for log in one.logs() if log["message"] == "staged") == sorted([GOOD_KEY, REFUNDS_KEY])
    ingest_used = used(checks, run.roles["ingest"])
    assert "sqs:SendMessage" in ingest_used and ingest_used["sqs:SendMessage"] == {stage.lane_arn}
    assert "glue:CreateTable" not in ingest_used, "staging creates no table: the committer does"
    # The signals: one message group per table, deduplicated by hand-off id.
    assert sorted(m["attributes"]["MessageGroupId"] for m in signals) == sorted(TABLES)
    assert all(m["attributes"]["MessageDeduplicationId"] == json.loads(m["body"])["handoff"] for m in signals)
    # (c) The commit: both tables, nothing failed; the refunds table created on its first commit.
    assert failures(committed) == set()
    lanes = {log["table"]: log for log in committed.logs() if log["message"] == "lane committed"}
    assert {t: (lanes[t]["commits"], lanes[t]["objects"]) for t in lanes} == {t: (1, 1) for t in TABLES}
    commit_used = used(checks, run.roles["commit"])
    assert "glue:CreateTable" in commit_used, "the refunds table, on its first commit"
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "s3:DeleteObject", "dynamodb:BatchWriteItem"} <= set(commit_used)
    # Batch 2: the redelivered good message is skipped, the poison quarantined again.
    assert by_key(second, GOOD_KEY)["messageId"] == by_key(first, GOOD_KEY)["messageId"]
    assert by_key(second, GOOD_KEY)["attributes"]["ApproximateReceiveCount"] == "2"
    assert failures(two) == {by_key(second, POISON_KEY)["messageId"]}
    assert {k: summary(two)[k] for k in ("committed", "skipped", "quarantined", "failed")} == {
        "committed": 0, "skipped": 1, "quarantined": 1, "failed": 0}

    # What it left, read with auth off again.
    from lakeroute.aws.catalog import glue_catalog

    warehouse = stage.function(INGEST_CMD)["Environment"]["Variables"]["LAKEROUTE_WAREHOUSE"]
    catalog = glue_catalog(warehouse)
    assert sorted(catalog.load_table("sales_dev.orders").scan().to_arrow()["order_id"].to_pylist()) == [1, 2, 3]
    assert sorted(catalog.load_table("sales_dev.refunds").scan().to_arrow()["refund_id"].to_pylist()) == [7, 8]
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=stage.warehouse_bucket, Prefix="lane/").get("KeyCount") == 0, "hand-offs removed"
    assert boto3.client("sqs").receive_message(QueueUrl=stage.lane_url).get("Messages", []) == [], "nothing re-handed"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=stage.quarantine_bucket, Prefix="quarantine/")["Contents"]}
    (record_key,) = [k for k in listed if k.endswith("/error.json")]
    record = json.loads(s3.get_object(Bucket=stage.quarantine_bucket, Key=record_key)["Body"].read())
    assert (record["key"], record["attempts"], record["object_copied"]) == (POISON_KEY, 2, True), record
    assert record["object_copy"].split("/", 3)[3] in listed
    logged = boto3.client("logs").get_log_events(logGroupName=logs.log_group, logStreamName=logs.stream)
    assert any("batch ingested" in e["message"] for e in logged["events"])
    logged = boto3.client("logs").get_log_events(logGroupName=lane_logs.log_group, logStreamName=lane_logs.stream)
    assert any("lane committed" in e["message"] for e in logged["events"])


# ---------------------------------------------------------------- the test can fail


@dataclass(frozen=True)
class Revocation:
    """One needed permission taken away from one role (``resource``: only from the statement
    naming it; ``narrow``: the resource removed from the statement, the action kept)."""

    role: str
    action: str
    resource: Callable[[Stage], str] | None = None
    narrow: bool = False
    hits: tuple[str, ...] = ()  # the objects whose ingest it breaks

    def edit(self, stage: Stage) -> Callable[[dict[str, Any]], dict[str, Any]]:
        resource = self.resource(stage) if self.resource else None
        if self.narrow:
            assert resource is not None
            return without_resource(self.action, resource)
        return without(self.action, resource)


REVOCATIONS = {
    # S3, checked on the object ARN: the commit-lane hand-off (records and blobs under lane/).
    "lane-hand-off-PutObject": Revocation(
        "ingest", "s3:PutObject", lambda st: f"arn:aws:s3:::{st.warehouse_bucket}/lane/*", hits=(GOOD_KEY,)),
    # The committer cannot read the hand-offs: its table is failed back (SQS retries it), the
    # hand-offs wait.
    "commit-lane-GetObject": Revocation(
        "commit", "s3:GetObject", lambda st: f"arn:aws:s3:::{st.warehouse_bucket}/lane/*"),
    # S3, checked by action on the object ARN: the quarantine's writes.
    "quarantine-PutObject": Revocation(
        "ingest", "s3:PutObject", lambda st: f"arn:aws:s3:::{st.quarantine_bucket}/quarantine/*", hits=(POISON_KEY,)),
    # S3, checked against the resource: GetObject kept, but not on the landing bucket (the
    # stack grants the whole bucket it creates: unrouted keys are read to be quarantined).
    "landing-prefix": Revocation(
        "ingest", "s3:GetObject", lambda st: f"arn:aws:s3:::{st.landing[SALES]}/*", narrow=True,
        hits=(GOOD_KEY, POISON_KEY)),
    # Glue, checked by action: the route sync cannot create the declared tables.
    "sync-CreateTable": Revocation("sync", "glue:CreateTable"),
}


@pytest.mark.parametrize("name", REVOCATIONS)
def test_a_missing_permission_is_reported_as_access_denied(
    name: str, clean_aws: MotoServer, dev: Synth, audit: Audit, tmp_path: Path,
) -> None:
    revoked = REVOCATIONS[name]
    stage = Stage.deploy(dev)
    run = Run.prepare(stage, clean_aws, tmp_path, edits={revoked.role: revoked.edit(stage)})
    batch: list[dict[str, Any]] = []
    with iam_enforced(clean_aws.endpoint):
        sync = run.sync()
        if revoked.role in ("ingest", "commit"):
            run.upload({GOOD_KEY: parquet(3), POISON_KEY: b"PAR1 not parquet PAR1"})
            fn, poller, logs = run.ingest()
            with fn:
                batch = poller.receive({GOOD_KEY, POISON_KEY})
                invocation = logs.invocation(fn.invoke({"Records": batch}))
                run.record("ingest", fn, invocation)
        if revoked.role == "commit":
            committer, lane_poller, lane_logs = run.commit()
            with committer:
                signals = lane_poller.receive({TABLES[0]}, names=signalled_tables)
                invocation = lane_logs.invocation(committer.invoke({"Records": signals}))
                run.record("commit", committer, invocation)
    checks = audit.checks()
    print("\n" + report(run, checks))

    # moto denied exactly the revoked permission, and only to that role.
    refused = denied(checks)
    assert refused, f"nothing was denied without {revoked.action}"
    assert {(c.role, c.action) for c in refused} == {(run.roles[revoked.role].name, revoked.action)}, refused
    if revoked.resource is not None:
        prefix = revoked.resource(stage).rstrip("*")
        assert all(c.resource.startswith(prefix) for c in refused), refused
    # ... and the run reports it: failed or quarantined, never silently OK.
    if revoked.role == "sync":
        assert sync.error is not None and DENIED.search(sync.error), sync.error
        return
    assert sync.error is None, sync.error
    if revoked.role == "commit":
        # The table's signal goes back to the queue, the reason names the denial, nothing is
        # committed and the hand-off waits for the next try.
        assert failures(invocation) == {m["messageId"] for m in signals}
        reasons = [log for log in invocation.logs() if log["message"] == "commit lane failed"]
        assert [r["table"] for r in reasons] == [TABLES[0]] and DENIED.search(reasons[0]["error"]), reasons
        from lakeroute.aws.catalog import glue_catalog

        warehouse = stage.function(INGEST_CMD)["Environment"]["Variables"]["LAKEROUTE_WAREHOUSE"]
        assert glue_catalog(warehouse).load_table(TABLES[0]).current_snapshot() is None
        waiting = boto3.client("s3").list_objects_v2(Bucket=stage.warehouse_bucket, Prefix=f"lane/{TABLES[0]}/")
        assert [o["Key"] for o in waiting.get("Contents", []) if o["Key"].endswith(".json")], "the hand-off waits"
        print("reported:", reasons[0]["table"], reasons[0]["error"])
        return
    hit = {by_key(batch, key)["messageId"] for key in revoked.hits}
    assert hit <= failures(invocation), "the broken objects' messages go back to the queue"
    reasons = [log for log in invocation.logs() if log["message"] in ("failed", "quarantined")
               and log.get("key") in revoked.hits]
    assert {r["key"] for r in reasons} == set(revoked.hits), invocation.logs()
    assert all(DENIED.search(str(r.get("reason"))) for r in reasons), reasons
    print("reported:", [(r["key"], r["message"], r["reason"]) for r in reasons])


# ---------------------------------------------------------------- the large-object tier


def with_size(record: dict[str, Any], size: int) -> dict[str, Any]:
    """The record with its notification's object size raised to ``size``."""
    body = json.loads(record["body"])
    for r in body["Records"]:
        r["s3"]["object"]["size"] = size
    return {**record, "body": json.dumps(body)}


def task_object(task: dict[str, Any]) -> str:
    (override,) = task["overrides"]["containerOverrides"]
    return next(v["value"] for v in override["environment"] if v["name"] == "LAKEROUTE_TASK_OBJECT")


def stopped(task: dict[str, Any], exit_code: int, reason: str) -> dict[str, Any]:
    """EventBridge's ECS Task State Change event for ``task`` (as moto described it) stopped."""
    return {"source": "aws.ecs", "detail-type": "ECS Task State Change", "region": REGION, "account": ACCOUNT,
            "detail": {"clusterArn": task["clusterArn"], "taskArn": task["taskArn"], "lastStatus": "STOPPED",
                       "stoppedReason": "Essential container in task exited",
                       "containers": [{"name": "lakeroute", "exitCode": exit_code, "reason": reason}],
                       "overrides": task["overrides"]}}


def test_large_object_tier_needs_nothing_beyond_the_template(
    clean_aws: MotoServer, dev: Synth, audit: Audit, tmp_path: Path,
) -> None:
    if not has_tier(dev):
        pytest.skip("the dev template has no large-object tier (no AWS::ECS::TaskDefinition and no "
                    "lakeroute.task.on_stopped function): its roles cannot be checked")
    stage = Stage.deploy(dev)
    run = Run.prepare(stage, clean_aws, tmp_path)
    definition = stage.task_definition()
    (container,) = definition["containerDefinitions"]
    env = stage.function(INGEST_CMD)["Environment"]["Variables"]
    threshold, cluster = int(env["LAKEROUTE_LARGE_OBJECT_BYTES"]), env["LAKEROUTE_TASK_CLUSTER"]
    repository, _, tag = container["image"].split("/", 1)[1].partition(":")
    with iam_enforced(clean_aws.endpoint):
        assert run.sync().error is None
        run.upload({BIG_KEY: parquet(5, first=100), OOM_KEY: parquet(2, first=200)})
        # The hand-off, with the ingest role: both notifications claim the stage's threshold.
        fn, poller, logs = run.ingest()
        with fn:
            records = poller.receive({BIG_KEY, OOM_KEY})
            handed = logs.invocation(fn.invoke({"Records": [
                with_size(r, threshold) if notified_keys(r) else r for r in records]}))
            poller.delete([r for r in records if r["messageId"] not in failures(handed)])
            run.record("ingest", fn, handed)
        handoffs = {log.get("key"): log for log in handed.logs() if log["message"] in ("handed_off", "failed")}
        assert {k: h["message"] for k, h in handoffs.items()} == {BIG_KEY: "handed_off", OOM_KEY: "handed_off"}, (
            [h.get("detail") for h in handoffs.values()], report(run, audit.checks()))
        ecs = client("ecs", clean_aws.endpoint, run.tester, REGION)
        tasks = {json.loads(task_object(t))["key"]: t for t in ecs.describe_tasks(
            cluster=cluster, tasks=ecs.list_tasks(cluster=cluster)["taskArns"])["tasks"]}
        # ECS with the execution role: the image pull and the awslogs driver's log stream.
        execution = run.credentials("execution")
        ecr = client("ecr", clean_aws.endpoint, execution, REGION)
        ecr.get_authorization_token()
        ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
        options = container["logConfiguration"]["options"]
        task_id = tasks[BIG_KEY]["taskArn"].rsplit("/", 1)[1]
        shipped = LambdaLogs(clean_aws.endpoint, execution, options["awslogs-group"],
                             f"{options['awslogs-stream-prefix']}/lakeroute/{task_id}")
        # The task's entry point with the task role and the task definition's environment.
        variables = {v["name"]: v["value"] for v in container.get("environment", [])}
        task_env = runtime_env(variables, run.credentials("task"), clean_aws.endpoint, tmp_path / "task",
                               LAKEROUTE_TASK_OBJECT=task_object(tasks[BIG_KEY]))
        entry = [sys.executable, *container["entryPoint"][1:]]
        done = subprocess.run(entry, env=task_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=patience(300))
        shipped.deliver(done.stdout.splitlines() + done.stderr.splitlines())
        run.output["task"] = done.stdout.splitlines() + done.stderr.splitlines()
        # The stop handler with its role: the big task succeeded; the other one dies until
        # its attempts run out (RunTask again each time), then it is quarantined.
        stop_credentials = run.credentials("stop")
        stop_logs = LambdaLogs(clean_aws.endpoint, stop_credentials, stage.log_group(STOPPED_TASK_CMD))
        with run.function("stop", STOPPED_TASK_CMD, stop_credentials) as stop:
            results = [stop_logs.invocation(stop.invoke(stopped(tasks[BIG_KEY], 0, "")))]
            task = tasks[OOM_KEY]
            while True:
                results.append(stop_logs.invocation(stop.invoke(stopped(task, 137, "OutOfMemoryError"))))
                if (results[-1].result or {}).get("action") != "retried":
                    break
                (task,) = ecs.describe_tasks(cluster=cluster, tasks=[results[-1].result["task"]])["tasks"]
            run.record("stop", stop, *results)
    checks = audit.checks()
    print("\n" + report(run, checks))
    assert_nothing_denied(run, checks)

    assert failures(handed) == set() and summary(handed)["committed"] == 0, "handed off, not ingested here"
    assert done.returncode == 0, run.output["task"][-20:]
    actions = [r.result and r.result["action"] for r in results]
    attempts = int(env["LAKEROUTE_TASK_MAX_ATTEMPTS"])
    assert actions == ["none", *["retried"] * (attempts - 1), "quarantined"], [r.error for r in results]
    assert {c.action for c in checks if c.role == run.roles["stop"].name and c.allowed} >= {"ecs:RunTask"}
    assert {c.action for c in checks if c.role == run.roles["ingest"].name and c.allowed} >= {"ecs:RunTask"}

    from lakeroute.aws.catalog import glue_catalog

    table = glue_catalog(env["LAKEROUTE_WAREHOUSE"]).load_table("sales_dev.orders")
    assert sorted(table.scan().to_arrow()["order_id"].to_pylist()) == [100, 101, 102, 103, 104]
    s3 = boto3.client("s3")
    (record_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=stage.quarantine_bucket)["Contents"]
                     if o["Key"].endswith("/error.json")]
    record = json.loads(s3.get_object(Bucket=stage.quarantine_bucket, Key=record_key)["Body"].read())
    assert (record["key"], record["stage"], record["object_copied"]) == (OOM_KEY, "task", True), record
