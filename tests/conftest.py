"""Fixtures every suite may use: the moto server of the AWS-side tests, and the synthesized
route sets (``tests/infra/fixtures.py``); how ``make test`` spreads the modules over workers.

One moto server subprocess per test module (``tests/support/moto_server.py``); a module runs
in one worker, so the server is never shared between workers. ``clean_aws`` wipes it
before each test and points this process's AWS clients at it.

Scheduling (``make test``: ``pytest -n 2 --dist loadfile``): each module is one work unit,
except that the modules using a synthesized route set (SYNTH_MODULES) are one together, so
each route set is synthesized once per run, not once per worker; the longest units
(LONGEST_FIRST) are handed out first, so that none of them starts last and leaves a core
idle (``pytest_xdist_make_scheduler`` below; xdist's ``loadgroup`` would do the grouping,
but with pytest 9.2 it silently stops grouping: pytest-dev/pytest-xdist#1386).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.fixtures import (  # noqa: F401 - fixtures, shared by tests/infra and tests/integration
    base_routes_dir,
    dev,
    dev_new_bucket,
    dev_tier_off,
    prod,
    prod_overridden,
    prod_pinned,
)
from tests.support.moto_server import MotoServer, aws_env, reset, start_moto_server

# Modules that use a synthesized route set: one xdist work unit (below).
SYNTH_GROUP = "cdk-synth"
SYNTH_MODULES = frozenset({
    "tests/infra/test_large_objects.py", "tests/infra/test_stack.py", "tests/infra/test_stages.py",
    "tests/infra/test_sweep.py", "tests/infra/test_maintenance.py", "tests/integration/test_iam_on_moto.py",
    "tests/integration/test_stages_on_moto.py", "tests/infra/test_commit_lane.py",
    "tests/infra/test_producers.py", "tests/integration/test_producers_on_moto.py",
})
# The longest work units (CPU seconds in a run on 2 busy cores: ~830, ~620, ~450, ~150, ~120,
# ~115, ~50), handed out first so that none of them starts last while the other worker idles.
LONGEST_FIRST = (
    "tests/reliability/test_aws_reliability.py",
    SYNTH_GROUP,
    "tests/reliability/test_exactly_once.py",
    "tests/integration/test_aws_runtime_edges.py",
    "tests/integration/test_aws_e2e.py",
    "tests/integration/test_stage_cli_on_moto.py",
    "tests/integration/test_cli.py",
)

# Real credentials or a profile from outside must not leak into the tests.
OUTSIDE_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """The module's moto server (S3, DynamoDB, Glue with VersionId locking, SQS, ...)."""
    with start_moto_server() as server:
        yield server


@pytest.fixture
def clean_aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The module's moto server, wiped, with ``aws_env`` set and no outside credentials."""
    reset(moto.endpoint)
    for key in OUTSIDE_AWS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in aws_env(moto.endpoint).items():
        monkeypatch.setenv(key, value)
    return moto


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with the SYNTH_MODULES as one work unit and LONGEST_FIRST first."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SYNTH_GROUP if module in SYNTH_MODULES else module

        def _assign_work_unit(self, node: Any) -> None:
            rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
            first = min(self.workqueue, key=lambda unit: rank.get(unit, len(rank)))  # ties: queue order
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return Scheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers from where a test lives and what it uses, for ``make test-fast``: ``aws`` (a
    moto server), ``infra`` (a CDK synth), ``reliability`` (many processes), ``spark`` (a Spark
    co-writer session)."""
    for item in items:
        path = str(item.path)
        if "moto" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.aws)
        if "/tests/infra/" in path:
            item.add_marker(pytest.mark.infra)
        if "/tests/reliability/" in path:
            item.add_marker(pytest.mark.reliability)
        if "spark" in item.path.name:
            item.add_marker(pytest.mark.spark)
