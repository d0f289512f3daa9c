"""Builds the CDK app: the stack of the selected stage, with cdk-nag on every synth.

``main`` is what ``app.py`` (the ``app`` command of ``cdk.json``) runs: a configuration
problem (a bad route file, a stage setting, a routes folder that is not there) is one
``error:`` line per problem on stderr and exit code 2, the lines ``lakeroute validate``
prints for the same route files, never a Python traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks
from lakeroute.core.errors import ConfigError

from .config import StageConfig, StageConfigError
from .lakeroute_stack import DEFAULT_ROUTES_DIR, LakerouteStack
from .route_plan import RoutePlanError

# What the user fixes in a file (route files, cdk.json, -c values), not a bug of the app.
CONFIGURATION_ERRORS = (ConfigError, StageConfigError, RoutePlanError)


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
        return shown(DEFAULT_ROUTES_DIR)
    path = (Path.cwd() / str(value)).resolve()
    if not path.is_dir():
        raise StageConfigError(f"-c {ROUTES_CONTEXT_KEY}={value}: {path} is not a folder; name an "
                               "existing routes folder (make synth ROUTES=DIR)")
    return shown(path)


def shown(path: Path) -> Path:
    """``path`` relative to the current directory when it lies below it: route errors then name
    ``routes/x.yaml``, as ``lakeroute validate`` run from the same directory does."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
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


def main(app: App | None = None, *, stderr: TextIO | None = None) -> int:
    """Synthesize the selected stage; 2 with one ``error:`` line per configuration problem."""
    app = app if app is not None else App()
    try:
        build(app)
    except CONFIGURATION_ERRORS as e:
        out = stderr if stderr is not None else sys.stderr
        for line in str(e).splitlines() or [type(e).__name__]:
            out.write(f"error: {line}\n")
        out.flush()
        return 2
    app.synth()
    return 0
