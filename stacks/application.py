"""Builds the CDK app: the stack of the selected stage, with cdk-nag on every synth."""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from .config import StageConfig
from .lakeroute_stack import DEFAULT_ROUTES_DIR, LakerouteStack


def stack_name(stage: str) -> str:
    return f"lakeroute-{stage}"


def build(app: App, *, stage: str | None = None, routes_dir: Path = DEFAULT_ROUTES_DIR) -> LakerouteStack:
    """Add the stage's stack to ``app`` and register the AwsSolutions checks.

    ``stage`` defaults to ``-c stage=...``, then ``lakeroute:defaultStage``, then ``dev``.
    Account and region: the stage's ``account``/``region`` when set, else the CLI's
    ``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` (unset: an environment-agnostic template).
    Nothing is looked up in AWS.
    """
    config = StageConfig.from_context(app.node, stage)
    env = Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )
    stack = LakerouteStack(app, stack_name(config.name), config=config, routes_dir=routes_dir, env=env)
    # Every finding fails the synth unless acknowledged (with its reason) where it arises.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack
