"""The deploy entry points: ``app.py`` (what ``cdk synth`` runs), ``make synth`` and the lint of
what it wrote.

- a bad route, a bad stage or a missing routes folder is one ``error:`` line per problem and
  exit 2 (for route files, the very lines ``lakeroute validate`` prints), never a traceback;
- ``make synth ROUTES=DIR`` synthesizes the stage from that folder; ``make synth`` alone keeps
  the repository's ``routes/``;
- ``stacks/lint_templates.py`` (what ``make synth`` lints with) lints the stacks of the last
  synth only, not a stale template of another stage left in the same folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.patience import patience

from .synth import REPO_ROOT, cdk_context, write_routes

BAD_ROUTE = {"broken.yaml": """
name: broken
source: {bucket: acme-drop, prefix: x/}
target: {table: sales.orders, mode: upsert}
sql: SELECT 1 AS a FROM source
"""}
GOOD_ROUTE = {"other.yaml": """
name: other-feed
source: {bucket: other-drop, prefix: feed/}
target: {table: other.feed}
"""}
LINT = REPO_ROOT / "stacks" / "lint_templates.py"
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
# A template cfn-lint rejects (E3006: no such resource type).
BROKEN_TEMPLATE = {"Resources": {"Thing": {"Type": "AWS::Nope::Thing"}}}
# One cfn-lint accepts.
GOOD_TEMPLATE = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue",
                                         "Properties": {"SqsManagedSseEnabled": True}}}}


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


# ---------------------------------------------------------------- app.py


def test_app_py_bad_route_is_validates_line_and_exit_2(tmp_path: Path) -> None:
    """``app.py`` as the CDK CLI runs it (context in CDK_CONTEXT_JSON), from a folder where
    ``-c routes=bad`` is relative: the same line as ``lakeroute --routes bad validate``."""
    write_routes(tmp_path / "bad", BAD_ROUTE)
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "CDK_CONTEXT_JSON": json.dumps({**cdk_context("dev"), "routes": "bad"}),
           "CDK_OUTDIR": str(tmp_path / "out")}
    synth = subprocess.run([sys.executable, str(REPO_ROOT / "app.py")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=patience(180))
    validate = subprocess.run([str(Path(sys.executable).with_name("lakeroute")), "--routes", "bad",
                               "--landing", "no-landing", "validate"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=patience(60))
    print(f"app.py: exit {synth.returncode}\n{synth.stderr}validate: exit {validate.returncode}\n{validate.stderr}")
    assert synth.returncode == 2
    assert synth.stderr.splitlines() == [
        "error: bad/broken.yaml: target: mode 'upsert' needs key: [columns] (the row identity)"]
    assert synth.stderr.splitlines() == error_lines(validate.stderr)
    assert validate.returncode == 2
    assert not (tmp_path / "out" / "manifest.json").exists(), "nothing synthesized"


@pytest.mark.parametrize(("context", "expected"), [
    ({"routes": "no-such-folder"}, "error: -c routes=no-such-folder: "),
    ({"stage": "qa"}, "error: unknown stage 'qa' (-c stage=...); cdk.json defines: "),
    ({"lakeroute:stages": {"dev": {"memory_mb": 2048}}}, "error: cdk.json context lakeroute:stages.dev: "
                                                          "missing key(s) "),
])
def test_configuration_errors_are_one_line_exit_2(context: dict, expected: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import App

    from stacks.application import main

    monkeypatch.chdir(tmp_path)
    stderr = io.StringIO()
    code = main(App(context={**cdk_context("dev"), **context}, outdir=str(tmp_path / "out")), stderr=stderr)
    (line,) = stderr.getvalue().splitlines()
    assert code == 2 and line.startswith(expected), line


def test_routes_context_is_relative_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import App

    from stacks.application import build

    write_routes(tmp_path / "elsewhere", GOOD_ROUTE)
    monkeypatch.chdir(tmp_path)
    stack = build(App(context={**cdk_context("dev"), "routes": "elsewhere"}, outdir=str(tmp_path / "out")))
    assert [r.name for r in stack.routes] == ["other-feed"]
    assert list(stack.names.bucket_map()) == ["other-drop"]


# ---------------------------------------------------------------- lint of the last synth


def assembly(folder: Path, listed: dict[str, dict], stale: dict[str, dict] | None = None) -> Path:
    """A cloud assembly whose manifest lists ``listed`` (stack -> template), plus templates of
    ``stale`` stacks left in the folder by an earlier synth."""
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, template in {**listed, **(stale or {})}.items():
        (folder / f"{name}.template.json").write_text(json.dumps(template))
    for name in listed:
        artifacts[name] = {"type": "aws:cloudformation:stack", "environment": "aws://unknown-account/unknown-region",
                           "properties": {"templateFile": f"{name}.template.json"}}
    artifacts["Tree"] = {"type": "cdk:tree", "properties": {"file": "tree.json"}}
    (folder / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return folder


def lint(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LINT), str(folder)], capture_output=True, text=True,
                          timeout=patience(120))


def test_lint_skips_a_stale_template_of_another_stage(tmp_path: Path) -> None:
    out = assembly(tmp_path / "cdk.out", {"lakeroute-prod": GOOD_TEMPLATE}, stale={"lakeroute-dev": BROKEN_TEMPLATE})
    proc = lint(out)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lakeroute-prod.template.json" in proc.stderr and "lakeroute-dev" not in proc.stderr + proc.stdout


def test_lint_fails_on_a_bad_template_the_manifest_lists(tmp_path: Path) -> None:
    """The control: the same broken template, listed, fails the lint (the check can fail)."""
    proc = lint(assembly(tmp_path / "cdk.out", {"lakeroute-dev": BROKEN_TEMPLATE}))
    assert proc.returncode != 0 and "E3006" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_lint_follows_nested_assemblies(tmp_path: Path) -> None:
    out = assembly(tmp_path / "cdk.out", {})
    assembly(out / "assembly-Prod", {"Prod-lakeroute": BROKEN_TEMPLATE})
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"]["assembly-Prod"] = {"type": "cdk:cloud-assembly",
                                              "properties": {"directoryName": "assembly-Prod"}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    proc = lint(out)
    assert proc.returncode != 0 and "Prod-lakeroute.template.json" in proc.stderr


def test_lint_without_an_assembly_is_one_line(tmp_path: Path) -> None:
    proc = lint(tmp_path / "nothing")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'nothing'}: no cloud assembly (manifest.json); "
                                        "run `make synth` first"]
    proc = lint(assembly(tmp_path / "empty", {}))
    assert proc.returncode == 2 and "lists no stack" in proc.stderr


# ---------------------------------------------------------------- make synth, through the CDK CLI


def make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), *args], env=env,
                          capture_output=True, text=True, timeout=patience(600))


def test_make_synth_without_routes_keeps_the_repository_routes() -> None:
    dry = make("-n", "synth", "STAGE=prod")
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if "cdk synth" in line or "lint_templates" in line]
    assert commands == ['npx cdk synth -q -c stage=prod -o "cdk.out"',
                        'python3 -m uv run --frozen python stacks/lint_templates.py "cdk.out"']
    routed = make("-n", "synth", "STAGE=prod", "ROUTES=some/dir")
    assert 'npx cdk synth -q -c stage=prod -c "routes=some/dir" -o "cdk.out"' in routed.stdout
    deploy = make("-n", "deploy", "STAGE=prod", "ROUTES=some/dir")
    assert 'npx cdk deploy -c stage=prod -c "routes=some/dir" -o "cdk.out"' in deploy.stdout


needs_cdk_cli = pytest.mark.skipif(not CDK_CLI.is_file() or shutil.which("make") is None,
                                   reason="the CDK CLI is installed by `npm ci` (node_modules/.bin/cdk) "
                                          "and make is needed")


@pytest.mark.slow
@needs_cdk_cli
def test_make_synth_routes_dir_after_another_stage(tmp_path: Path) -> None:
    """``make synth STAGE=prod ROUTES=DIR`` into a folder where an earlier synth of dev left a
    template cfn-lint rejects: prod is synthesized from DIR and only prod is linted."""
    routes = write_routes(tmp_path / "other-routes", GOOD_ROUTE)
    out = assembly(tmp_path / "cdk.out", {}, stale={"lakeroute-dev": BROKEN_TEMPLATE})
    proc = make("synth", "STAGE=prod", f"ROUTES={routes}", f"CDK_OUT={out}")
    print(proc.stdout[-2000:], proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    template = json.loads((out / "lakeroute-prod.template.json").read_text())
    assert "LandingBucketOtherDrop" in template["Outputs"] and "ProducerPolicyArnOtherDrop" in template["Outputs"]
    assert "LandingBucketLrTestSales" not in template["Outputs"]
    linted = [line for line in proc.stderr.splitlines() if line.startswith("cfn-lint ")]
    assert linted == [f"cfn-lint {out / 'lakeroute-prod.template.json'}"]


@pytest.mark.slow
@needs_cdk_cli
def test_make_synth_bad_route_is_one_line_through_the_cdk_cli(tmp_path: Path) -> None:
    routes = write_routes(tmp_path / "bad", BAD_ROUTE)
    proc = make("synth", f"ROUTES={routes}", f"CDK_OUT={tmp_path / 'out'}")
    print(proc.stderr)
    assert proc.returncode == 2  # make's code for a failed recipe
    assert error_lines(proc.stderr) == [
        f"error: {routes}/broken.yaml: target: mode 'upsert' needs key: [columns] (the row identity)"]
    assert "Traceback" not in proc.stderr
    # The CDK CLI adds its own line naming the app's exit code; nothing else comes before make's.
    assert "Subprocess exited with error 2" in proc.stderr
