"""IAM enforced on a moto server: the deployed stack's roles, readied for moto's authorization,
an audit of every authorized request, and function runs in a subprocess under a role.

Usage (see ``tests/integration/test_iam_on_moto.py``)::

    with start_audited_moto_server(audit_file) as moto:          # instead of start_moto_server
        role = DeployedRole.read(iam, "IngestHandlerRoleDA78BC03", role_name)
        ready_for_moto(iam, role, trusted=tester_arn)             # while auth is still off
        with iam_enforced(moto.endpoint):                         # POST /moto-api/reset-auth 0
            creds = assume(moto.endpoint, tester, role.arn)
            with FunctionProcess("lakeroute.handler.handler", env | creds, ...) as fn:
                fn.invoke(event)

What moto 5.2 checks when auth is on (``moto/core/authorization.py``,
``moto/iam/access_control.py``): the SigV4 signature, then the caller's identity policies
(inline and attached; no resource policies, no permission boundaries, no SCPs) for the
request's action and ONE resource: S3 the bucket or object ARN, SQS the queue ARN, STS
AssumeRole the role ARN (plus the role's trust policy); every other service (DynamoDB, Glue,
CloudWatch Logs, ECS, ...) the resource ``*``, so a statement naming ARNs never matches
there. ``ready_for_moto`` therefore widens the Resource of those statements (DynamoDB, Glue,
Logs, ECS) to ``*`` and keeps their actions exactly; S3 and SQS statements stay exactly as
deployed. moto has no request context for the conditions of identity policies and treats
them as met; ``iam:PassRole`` is never checked (no moto service asks for it).

The audit (``start_audited_moto_server``): the server is ``moto_glue_locking`` plus a wrapper
of moto's ``check_action_permitted`` that appends one JSON line per authorized request
(principal, action, resource, allowed) to a file, so a test can list what each role really
used, and which call was denied; and one more moto fix (Fargate task definitions without
container-level memory, as CDK writes them, make RunTask fail).

This module is also the subprocess entry point: ``python -m tests.support.iam moto-server``
(the audited server) and ``python -m tests.support.iam serve MODULE.FUNCTION`` (a warm
"container": one invocation per stdin line, see ``FunctionProcess``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support.patience import patience

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIT_ENV = "LAKEROUTE_IAM_AUDIT"
RESULT_MARKER = "LAKEROUTE-IAM-RESULT "
# moto authorizes requests of these services against a resource ARN (the bucket or object,
# the queue, the role to assume); every other service's against the resource "*" only.
ARN_CHECKED_SERVICES = frozenset({"s3", "sqs", "sts", "iam"})
# What an authorization failure looks like in a client's error, a log line or a traceback.
DENIED = re.compile(r"AccessDenied|access denied|not authori[sz]ed|InvalidClientTokenId|"
                    r"SignatureDoesNotMatch|InvalidAccessKeyId|\bForbidden\b", re.IGNORECASE)


# ---------------------------------------------------------------- moto's auth switch


def set_auth(endpoint: str, enforced: bool) -> None:
    """``POST /moto-api/reset-auth``: the body is INITIAL_NO_AUTH_ACTION_COUNT, the number of
    requests still let through unchecked (the count restarts at 0): ``0`` checks every request
    from now on, ``inf`` none (moto's default)."""
    body = b"0" if enforced else b"inf"
    # Not form-encoded (urllib's default): the server reads the raw body.
    req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=body, method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=patience(10)) as resp:
        assert resp.status == 200, resp.status


@contextlib.contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Every request authorized against its caller's policies inside the block; off again after
    (the setting is global to the server and outlives ``/moto-api/reset``)."""
    set_auth(endpoint, True)
    try:
        yield
    finally:
        set_auth(endpoint, False)


# ---------------------------------------------------------------- roles as deployed


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


@dataclass
class Policy:
    name: str  # the inline policy's name, or the managed policy's ARN
    document: dict[str, Any]
    managed: bool = False

    @property
    def statements(self) -> list[dict[str, Any]]:
        return [dict(s) for s in as_list(self.document["Statement"])]


@dataclass
class DeployedRole:
    """A role as the stack left it in moto's IAM: inline and attached policies."""

    logical_id: str
    name: str
    arn: str
    policies: list[Policy]
    trust: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, iam: Any, logical_id: str, name: str, managed: Iterable[str] = ()) -> DeployedRole:
        """The role's policies in moto's IAM. ``managed``: the ManagedPolicyArns of the template,
        which moto's CloudFormation does not attach (it drops them silently): attached here, if
        moto knows the policy (AWS managed ones only with MOTO_IAM_LOAD_MANAGED_POLICIES=true)."""
        role = iam.get_role(RoleName=name)["Role"]
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for arn in set(managed) - attached:
            try:
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            except iam.exceptions.NoSuchEntityException as e:
                raise AssertionError(f"role {name}: managed policy {arn} is unknown to moto; its statements "
                                     "cannot be enforced here") from e
        policies = [Policy(p, _document(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]))
                    for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
        for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            version = iam.get_policy(PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=version)["PolicyVersion"]
            policies.append(Policy(p["PolicyArn"], _document(document["Document"]), managed=True))
        return cls(logical_id, name, role["Arn"], policies, _document(role["AssumeRolePolicyDocument"]))

    @property
    def statements(self) -> list[dict[str, Any]]:
        return [s for p in self.policies for s in p.statements]

    @property
    def actions(self) -> set[str]:
        return {a for s in self.statements if s["Effect"] == "Allow" for a in as_list(s.get("Action", []))}


def _document(value: Any) -> dict[str, Any]:
    """boto3 gives policy documents as dicts (moto: sometimes still as JSON text)."""
    if isinstance(value, str):
        from urllib.parse import unquote

        return dict(json.loads(unquote(value)))
    return dict(value)


# ---------------------------------------------------------------- readied for moto


def for_moto(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The document as moto can enforce it, and a note per change.

    Actions of services moto checks against ``*`` only (everything but ARN_CHECKED_SERVICES:
    DynamoDB, Glue, Logs, ECS, ...) get Resource ``*``; a statement that mixes them with S3,
    SQS, STS or IAM actions is split. Actions are never changed. A Condition is kept and
    noted: moto has no request context for identity policies, so it treats every condition
    as met (``moto.iam.policy_conditions``); the condition is not proven here.
    """
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for st in as_list(document["Statement"]):
        st = copy.deepcopy(dict(st))
        label = st.get("Sid") or ", ".join(as_list(st.get("Action", st.get("NotAction"))))
        if "Condition" in st:
            notes.append(f"{label}: Condition {json.dumps(st['Condition'])} kept, but moto treats it as met")
        if "NotAction" in st or "NotResource" in st or "Action" not in st:
            out.append(st)
            continue
        actions = as_list(st["Action"])
        widened = [a for a in actions if a.split(":", 1)[0] not in ARN_CHECKED_SERVICES]
        kept = [a for a in actions if a not in widened]
        if widened and as_list(st.get("Resource")) != ["*"]:
            if kept:
                out.append({**st, "Action": kept})
            out.append({**st, "Action": widened, "Resource": "*"})
            notes.append(f"{', '.join(widened)}: Resource {json.dumps(st.get('Resource'))} -> '*'")
        else:
            out.append(st)
    return {**document, "Statement": out}, notes


def without(action: str, resource: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A document edit: ``action`` revoked (only where the statement names ``resource``,
    if given, else from every statement; statements left empty are dropped)."""

    def edit(document: dict[str, Any]) -> dict[str, Any]:
        statements = []
        for st in as_list(document["Statement"]):
            if resource is None or resource in as_list(st.get("Resource")):
                st = {**st, "Action": [a for a in as_list(st["Action"]) if a != action]}
            if st["Action"]:
                statements.append(st)
        return {**document, "Statement": statements}

    return edit


def without_resource(action: str, resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A document edit: ``resource`` removed from the statements granting ``action``."""

    def edit(document: dict[str, Any]) -> dict[str, Any]:
        statements = []
        for st in as_list(document["Statement"]):
            if action in as_list(st.get("Action")):
                st = {**st, "Resource": [r for r in as_list(st["Resource"]) if r != resource]}
            if st["Resource"]:
                statements.append(st)
        return {**document, "Statement": statements}

    return edit


def ready_for_moto(iam: Any, role: DeployedRole, *, trusted: str,
                   edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[str]:
    """Rewrite ``role`` in moto's IAM as moto can enforce it; returns the notes of ``for_moto``.

    Inline policies are replaced under their names; an attached managed policy is detached
    and put inline (``managed:<name>``) so that it can be widened like the rest. The trust
    policy lets ``trusted`` (an IAM principal ARN) assume the role: moto cannot evaluate
    the ``lambda.amazonaws.com`` service principal (its trust check reads only ``AWS``
    principals). ``edit``, if given, changes each readied document (a revoked action).
    """
    notes: list[str] = []
    for policy in role.policies:
        document, changed = for_moto(policy.document)
        notes += [f"{policy.name}: {n}" for n in changed]
        if edit is not None:
            document = edit(document)
        name = policy.name
        if policy.managed:
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):  # readied before
                iam.detach_role_policy(RoleName=role.name, PolicyArn=policy.name)
            name = "managed:" + policy.name.rsplit("/", 1)[-1]
        iam.put_role_policy(RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(document))
    iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]}))
    was = [st.get("Principal") for st in as_list(role.trust.get("Statement", []))]
    notes.append(f"trust policy: {json.dumps(was)} -> {trusted}")
    return notes


def iam_user(iam: Any, name: str, statements: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """A user with one inline policy: (its ARN, its credentials as environment variables)."""
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def client(service: str, endpoint: str, credentials: Mapping[str, str], region: str) -> Any:
    """A boto3 client on ``endpoint`` with exactly these credentials."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"), region_name=region,
    ).client(service, endpoint_url=endpoint)


def assume(endpoint: str, caller: Mapping[str, str], role_arn: str, session: str, region: str) -> dict[str, str]:
    """STS AssumeRole on the server as ``caller``: the temporary credentials as variables."""
    c = client("sts", endpoint, caller, region).assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"]}


# ---------------------------------------------------------------- the audited server


@dataclass(frozen=True)
class Check:
    """One authorization decision of the server."""

    principal: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>, a user ARN, or "?"
    action: str
    resource: str
    allowed: bool
    reason: str = ""  # why a request was refused before its policies were read (bad key, signature)

    @property
    def role(self) -> str | None:
        parts = self.principal.split(":assumed-role/", 1)
        return parts[1].split("/", 1)[0] if len(parts) == 2 else None


class Audit:
    """The server's audit file, read from a mark on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.touch()
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def checks(self) -> list[Check]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            lines = f.read().decode().splitlines()
        return [Check(**json.loads(line)) for line in lines if line.strip()]


def _patch_audit(path: str) -> None:
    """Record every decision of moto's ``IAMRequestBase.check_action_permitted``, and every
    request refused before it (unknown access key, token or signature mismatch)."""
    import threading

    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMRequestBase

    lock, local = threading.Lock(), threading.local()
    check = IAMRequestBase.check_action_permitted
    authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def write(**entry: Any) -> None:
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def check_action_permitted(self: Any, resource: str) -> None:
        local.decided = True
        allowed = False
        try:
            check(self, resource)
            allowed = True
        finally:
            write(principal=self._access_key.arn, action=self._action, resource=resource, allowed=allowed)

    def authenticate_and_authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        local.decided = False
        try:
            authorize(self, iam_request_cls, resource)
        except Exception as e:
            if not local.decided:
                write(principal="?", action=str(self._get_action()), resource=resource, allowed=False,
                      reason=f"{type(e).__name__}: {getattr(e, 'description', e)}"[:300])
            raise

    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_and_authorize  # type: ignore[method-assign]


def _patch_ecs_fargate_container_memory() -> None:
    """moto 5.2's ECS ``RunTask`` fails with a 500 when a container definition has neither
    ``memory`` nor ``memoryReservation`` (valid for Fargate, where the task-level memory
    counts; CDK writes no container memory): it adds None to its resource sum. Count such a
    container as 0 MiB, as the task-level memory already bounds it."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements
    keys = ("Memory", "MemoryReservation", "memory", "memoryReservation")

    def calculate(task_definition: Any) -> dict[str, Any]:
        containers = task_definition.container_definitions
        task_definition.container_definitions = [
            c if any(c.get(k) is not None for k in keys) else {**c, "memory": 0} for c in containers]
        try:
            return dict(original(task_definition))
        finally:
            task_definition.container_definitions = containers

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)  # type: ignore[method-assign]


def start_audited_moto_server(audit_file: Path, timeout: float = 120.0) -> Any:
    """``moto_server.start_moto_server``, serving ``moto_glue_locking`` with the audit on."""
    from tests.support import moto_server as ms

    audit_file.touch()
    port = ms._free_port()
    stdout, stderr = ms._log_file("moto-iam-out-"), ms._log_file("moto-iam-err-")
    env = {**os.environ, "MOTO_PORT": str(port), "PYTHONUNBUFFERED": "1", AUDIT_ENV: str(audit_file)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.iam", "moto-server", "--host", ms.HOST, "--port", str(port)],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env)
    server = ms.MotoServer(process, port, stdout, stderr)
    ms._live_servers.add(server)
    deadline = time.monotonic() + patience(timeout)
    while not ms._answers_http(server.endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            output = server.output()
            server.stop()
            raise ms.MotoServerError(f"audited moto server did not start on {server.endpoint}:\n{output}")
        time.sleep(0.1)
    return server


# ---------------------------------------------------------------- a function in a subprocess


@dataclass
class Invocation:
    result: Any  # the function's return value (None if it raised)
    error: str | None  # "<ExceptionType>: message" if it raised
    output: list[str]  # everything it printed (Powertools log lines, EMF, prints)

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines (Powertools), in order."""
        found = []
        for line in self.output:
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict) and "message" in value:
                    found.append(value)
        return found

    def denials(self) -> list[str]:
        return [line for line in [*self.output, self.error or ""] if DENIED.search(line)]


class FunctionProcess:
    """A warm container: ``target`` (``module.function``) imported once in a subprocess with
    exactly ``env``; each ``invoke`` is one call with a Lambda-like context."""

    def __init__(self, target: str, env: Mapping[str, str], *, stderr: Path, function_name: str,
                 memory_mb: int, timeout: float = 240.0) -> None:
        self.target = target
        self.timeout = timeout
        self.function_name = function_name
        self.memory_mb = memory_mb
        self._stderr_path = stderr
        self._stderr: IO[bytes] = stderr.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.iam", "serve", target],
            cwd=REPO_ROOT, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1)
        self.calls = 0

    def invoke(self, event: Mapping[str, Any], remaining_ms: int = 240_000) -> Invocation:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.calls += 1
        request = {"event": event, "request_id": f"req-{self.calls}", "remaining_ms": remaining_ms,
                   "function_name": self.function_name, "memory_mb": self.memory_mb}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + patience(self.timeout)
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"{self.target} exited ({self.process.wait()}) during invocation "
                                     f"{self.calls}:\n" + "".join(output) + self.stderr())
            if line.startswith(RESULT_MARKER):
                reply = json.loads(line[len(RESULT_MARKER):])
                return Invocation(reply.get("result"), reply.get("error"), output)
            output.append(line.rstrip("\n"))
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.target}: no answer within {self.timeout:.0f}s")

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=patience(30))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> FunctionProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Context:
    """The parts of the Lambda context the functions read."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.aws_request_id = request["request_id"]
        self.function_name = request["function_name"]
        self.memory_limit_in_mb = request["memory_mb"]
        self.invoked_function_arn = f"arn:aws:lambda:::function:{self.function_name}"
        self._deadline = time.monotonic() + request["remaining_ms"] / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _serve(target: str, lines: Iterable[str]) -> int:
    module, _, name = target.rpartition(".")
    function = getattr(importlib.import_module(module), name)
    for line in lines:
        request = json.loads(line)
        try:
            reply: dict[str, Any] = {"result": function(request["event"], _Context(request))}
        except Exception as e:  # reported to the test, which decides
            traceback.print_exc()
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.flush()
        sys.stderr.flush()
        print(RESULT_MARKER + json.dumps(reply, default=str), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["moto-server"]:
        _patch_audit(os.environ[AUDIT_ENV])
        _patch_ecs_fargate_container_memory()
        from tests.support import moto_glue_locking

        return moto_glue_locking.main(argv[1:])
    if argv[:1] == ["serve"] and len(argv) == 2:
        return _serve(argv[1], sys.stdin)
    print("usage: python -m tests.support.iam moto-server [--host H --port P] | serve MODULE.FUNCTION",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
