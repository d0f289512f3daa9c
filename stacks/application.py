"""Builds the CDK app: the stack of the selected stage, with cdk-nag on every synth."""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from .config import StageConfig, StageConfigError
from .lakeroute_stack import DEFAULT_ROUTES_DIR, LakerouteStack


def stack_name(stage: str) -> str:
    return f"lakeroute-{stage}"


ROUTES_CONTEXT_KEY = "routes"


def routes_dir_from_context(app: App) -> Path:
    """``-c routes=DIR`` (relative to the current directory), else ``routes/`` of the repo.

    A folder given explicitly must exist: a typo must not deploy an empty route set (which
    would remove every route and landing bucket of the stage).
    """
    value = app.node.try_get_context(ROUTES_CONTEXT_KEY)
    if value is None:
        return DEFAULT_ROUTES_DIR
    path = (Path.cwd() / str(value)).resolve()
    if not path.is_dir():
        raise StageConfigError(f"-c {ROUTES_CONTEXT_KEY}={value}: {path} is not a folder")
    return path


def build(app: App, *, stage: str | None = None, routes_dir: Path | None = None) -> LakerouteStack:
    """Add the stage's stack to ``app`` and register the AwsSolutions checks.

    ``stage`` defaults to ``-c stage=...``, then ``lakeroute:defaultStage``, then ``dev``.
    ``routes_dir`` defaults to ``-c routes=DIR``, then the repository's ``routes/``.
    Account and region: the stage's ``account``/``region`` when set, else the CLI's
    ``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` (unset: an environment-agnostic template).
    Nothing is looked up in AWS.
    """
    config = StageConfig.from_context(app.node, stage)
    env = Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )
    stack = LakerouteStack(app, stack_name(config.name), config=config,
                           routes_dir=routes_dir or routes_dir_from_context(app), env=env)
    # Every finding fails the synth unless acknowledged (with its reason) where it arises.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack
