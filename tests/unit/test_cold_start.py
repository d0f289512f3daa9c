"""The cold start stays lean: what a fresh interpreter imports, and that the imports run
without garbage collections (``core.startup``). Counted, never timed: each check runs a fresh
interpreter and reads ``sys.modules`` and the collector's own counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws_lake import Deployment
from tests.support.patience import patience

# Imported by the handler before these changes, used by no ingest of a routed Parquet file
# into an append table: now imported where they are used.
OFF_THE_COLD_PATH = (
    "yaml",  # route files: the Lambda reads its routes from the routing table
    "lakeroute.core.routes.nearest",  # why an object matches no route (difflib)
    "lakeroute.core.maintain.compaction",  # maintenance runs, not ingest's expiry
    "lakeroute.core.maintain.clustering",
    "lakeroute.core.maintain.replace_files",
    "lakeroute.core.write.upsert",  # upsert tables only
    "lakeroute.core.write.merge_on_read",
)
# Heavy libraries the handler leaves to the runtime's set-up (the first batch).
HEAVY = ("boto3", "duckdb", "pyarrow", "pyiceberg", "sqlalchemy")

COUNT_COLLECTIONS = """
import gc, json, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
"""


def _run(code: str, cwd: Path) -> dict[str, Any]:
    """The JSON a fresh interpreter prints last, running ``code``."""
    done = subprocess.run([sys.executable, "-c", COUNT_COLLECTIONS + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=patience(60))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_the_handler_imports_no_heavy_library_and_nothing_only_some_routes_need(tmp_path: Path) -> None:
    out = _run(f"""
        import lakeroute.handler
        print(json.dumps({{"loaded": [m for m in {OFF_THE_COLD_PATH + HEAVY!r} if m in sys.modules],
                           "lakeroute": sorted(m for m in sys.modules if m.startswith("lakeroute."))}}))
    """, tmp_path)
    assert out["loaded"] == []
    assert "lakeroute.core.pipeline.ingest" in out["lakeroute"]  # the check looked at a real import


@pytest.mark.parametrize(("module", "first_paused"), [("lakeroute.handler", "aws_lambda_powertools"),
                                                     ("lakeroute.cli", "lakeroute.cli.backfill")])
def test_the_shells_import_collects_no_garbage_and_freezes_what_it_made(tmp_path: Path, module: str,
                                                                         first_paused: str) -> None:
    """Counted from the pause's first import on: the shell module's own compilation (no
    bytecode in this environment) comes before and may collect."""
    out = _run(f"""
        paused = []
        gc.callbacks.append(lambda phase, info: phase == "start" and {first_paused!r} in sys.modules
                            and paused.append(info["generation"]))
        import {module}
        print(json.dumps({{"paused": paused, "all": collections, "enabled": gc.isenabled(),
                           "frozen": gc.get_freeze_count()}}))
    """, tmp_path)
    assert out["paused"] == []
    assert out["enabled"] is True
    assert out["frozen"] > 10_000  # the modules' objects, out of the generations gc walks


def test_a_failed_runtime_set_up_gives_the_collector_back(tmp_path: Path) -> None:
    """No stage environment: the runtime's set-up raises a ConfigError after importing the
    stack; the collector is on again and the handler fails the batch as before."""
    out = _run("""
        import os
        for name in [n for n in os.environ if n.startswith(("LAKEROUTE_", "AWS_"))]:
            del os.environ[name]
        import lakeroute.handler as h
        from lakeroute.core.errors import ConfigError
        before = len(collections)
        try:
            h.get_runtime()
            raised = ""
        except ConfigError as e:
            raised = str(e)
        print(json.dumps({"raised": raised, "enabled": gc.isenabled(), "during": len(collections) - before,
                          "stack": [m for m in ("duckdb", "pyarrow", "pyiceberg.io.pyarrow") if m in sys.modules]}))
    """, tmp_path)
    assert out["raised"]
    assert out["enabled"] is True
    assert out["during"] == 0
    assert out["stack"] == ["duckdb", "pyarrow", "pyiceberg.io.pyarrow"]


def test_the_first_local_pipeline_imports_the_stack_without_collections_a_second_freezes_nothing(
        tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "r.yaml").write_text("name: r\nsource:\n  bucket: b-1\n  prefix: in/\n"
                                   "target:\n  table: ns.t\nsql: SELECT * FROM source\n")
    out = _run(f"""
        from pathlib import Path
        from lakeroute.local import LocalPaths, local_pipeline
        paths = LocalPaths(Path({str(routes)!r}), Path({str(tmp_path / "home")!r}), Path({str(tmp_path)!r}))
        before = len(collections)
        first = local_pipeline(paths)
        during, frozen = len(collections) - before, gc.get_freeze_count()
        second = local_pipeline(paths)
        print(json.dumps({{"during": during, "enabled": gc.isenabled(), "frozen": frozen,
                           "frozen_after_second": gc.get_freeze_count(), "routes": len(first.routes.routes),
                           "stack": [m for m in ("duckdb", "pyarrow", "pyiceberg.io.pyarrow", "pyiceberg.catalog.sql")
                                     if m in sys.modules]}}))
    """, tmp_path)
    assert out["during"] == 0
    assert out["enabled"] is True
    assert out["routes"] == 1
    assert out["stack"] == ["duckdb", "pyarrow", "pyiceberg.io.pyarrow", "pyiceberg.catalog.sql"]
    assert out["frozen"] > 0
    assert out["frozen_after_second"] <= out["frozen"]  # set up again in a long process: nothing more frozen


def test_the_pause_ends_on_an_error_and_a_nested_pause_leaves_the_outer_one_alone(tmp_path: Path) -> None:
    out = _run("""
        from lakeroute.core.startup import gc_paused
        states = []
        try:
            with gc_paused():
                with gc_paused():
                    pass
                states.append(gc.isenabled())  # still paused: the inner block did not turn it on
                raise RuntimeError("boom")
        except RuntimeError:
            states.append(gc.isenabled())
        gc.disable()
        with gc_paused():
            pass
        states.append(gc.isenabled())  # a process that runs without the collector keeps it off
        print(json.dumps({"states": states}))
    """, tmp_path)
    assert out["states"] == [False, True, False]


def _stage_env(tmp_path: Path, catalog: str = "glue") -> dict[str, str]:
    """A stage's function environment; the endpoint answers nothing: the runtime's set-up
    makes no AWS call, so these checks run offline."""
    deployment = Deployment(routes_table="r", ledger_table="l", warehouse_bucket="w", quarantine_bucket="q",
                            metrics_namespace="m", catalog=catalog)
    (tmp_path / "lambda-tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEROUTE_", "AWS_"))}
    env.update(deployment.env("http://127.0.0.1:9", tmp_path))
    return env


def test_the_commit_lanes_runtime_imports_pyiceberg_and_leaves_duckdb_to_the_commits_that_need_it(
        tmp_path: Path) -> None:
    code = COUNT_COLLECTIONS + textwrap.dedent("""
        from lakeroute import lane_handler
        assert lane_handler.handler({"Records": []}, None) == {"batchItemFailures": []}
        print(json.dumps([m for m in ("duckdb", "pyarrow", "pyiceberg.io.pyarrow") if m in sys.modules]))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_stage_env(tmp_path),
                          capture_output=True, text=True, timeout=patience(60))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["pyarrow", "pyiceberg.io.pyarrow"]


@pytest.mark.parametrize("catalog", ["glue", "s3tables"])
def test_the_aws_runtime_and_its_catalog_read_botocores_data_through_one_loader(
        tmp_path: Path, catalog: str) -> None:
    """A session of its own parses botocore's endpoint and service data again (~0.1 s of a cold
    start); each boto3 session keeps a botocore session of its own (an S3 client made after the
    catalog, from the runtime's session, still works)."""
    env = _stage_env(tmp_path, catalog)
    code = COUNT_COLLECTIONS + textwrap.dedent("""
        import botocore.loaders
        made = []
        plain = botocore.loaders.Loader.__init__
        def counted(self, *args, **kwargs):
            made.append(1)
            plain(self, *args, **kwargs)
        botocore.loaders.Loader.__init__ = counted
        import boto3
        from lakeroute.aws.catalog import make_catalog
        from lakeroute.aws.clients import aws_client, botocore_session
        from lakeroute.aws.config import AwsConfig
        from lakeroute.handler import get_runtime
        runtime = get_runtime()
        core = botocore_session()
        session = boto3.session.Session(botocore_session=core)
        catalog = make_catalog(AwsConfig.from_env(), core)
        s3 = aws_client("s3", session)
        print(json.dumps({"loaders": len(made), "catalog": type(runtime.pipeline.catalog).__name__,
                          "s3_after_catalog": hasattr(s3, "upload_file")}))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=patience(60))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    # one loader for the runtime (and its catalog), one for the job's session made after it
    assert out == {"loaders": 2, "catalog": {"glue": "_GlueCatalog", "s3tables": "S3TablesCatalog"}[catalog],
                   "s3_after_catalog": True}
