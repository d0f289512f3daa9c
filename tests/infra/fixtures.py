"""The synthesized route sets as session fixtures, shared by every test that reads a template.

Each route set is synthesized once per pytest process (``synth.py``: the whole app path,
``stacks.application.build`` with the stage from context and cdk-nag registered, into a temp
``outdir``), whichever test first asks for it: the infra tests and the moto deploy tests
(``tests/integration/test_stages_on_moto.py``, ``test_iam_on_moto.py``) use the same ones.
Tests only read a ``Synth`` (template, report, stack, outdir); none may change it.

``tests/conftest.py`` imports these fixtures and keeps every module that uses one in one
xdist group, so that with ``-n 2`` each route set is synthesized once in the whole run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.synth import BASE_ROUTES, NEW_BUCKET_ROUTE, Synth, synth, write_routes

# What generation 1 of prod named the events landing bucket in account 111122223333.
RETAINED_EVENTS_BUCKET = "lr-test-events-prod-111122223333-eu-west-1"


@pytest.fixture(scope="session")
def base_routes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_routes(tmp_path_factory.mktemp("routes-base"), BASE_ROUTES)


@pytest.fixture(scope="session")
def dev(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(base_routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-dev"))


@pytest.fixture(scope="session")
def prod(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(base_routes_dir, "prod", tmp_path_factory.mktemp("cdk-out-prod"))


@pytest.fixture(scope="session")
def dev_new_bucket(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    routes_dir = write_routes(tmp_path_factory.mktemp("routes-more"),
                              {**BASE_ROUTES, **NEW_BUCKET_ROUTE})
    return synth(routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-more"))


@pytest.fixture(scope="session")
def prod_overridden(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """prod redeployed next to what a deleted stack retained (generation 2), keeping one
    retained landing bucket (imported by its old name); an exact name for another bucket,
    account-wide databases and an alarm e-mail."""
    return synth(base_routes_dir, "prod", tmp_path_factory.mktemp("cdk-out-prod-overridden"), {
        "buckets": {"lr-test-sales": {"name": "acme-sales-uploads"},
                    "lr-test-events": {"name": RETAINED_EVENTS_BUCKET, "existing": True}},
        "generation": 2,
        "databases": "account",
        "alarm_email": "data-oncall@example.com",
    })


@pytest.fixture(scope="session")
def dev_tier_off(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """dev with ``large_object_tier: false``: no VPC, cluster or stop handler."""
    return synth(base_routes_dir, "dev", tmp_path_factory.mktemp("cdk-out-dev-tier-off"),
                 {"large_object_tier": False})


@pytest.fixture(scope="session")
def prod_pinned(base_routes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """prod with its account and region pinned in the stage (CDK would look AZs up), and an
    explicit large-object threshold."""
    return synth(base_routes_dir, "prod", tmp_path_factory.mktemp("cdk-out-prod-pinned"),
                 {"account": "111122223333", "region": "eu-west-1", "large_object_bytes": 2 * 1024**3})
