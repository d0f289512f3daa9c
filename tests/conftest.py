"""Fixtures every suite may use: the moto server of the AWS-side tests.

One server subprocess per test module (``tests/support/moto_server.py``); with
``pytest -n 2 --dist loadfile`` a module runs in one worker, so the server is never shared
between workers. ``clean_aws`` wipes it before each test and points this process's AWS
clients at it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_server import MotoServer, aws_env, reset, start_moto_server

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
