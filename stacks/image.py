"""The Lambda container image: one image asset (``lambda_src/Dockerfile``) for both functions.

The build context is the repository root, so the Dockerfile sees ``pyproject.toml`` and
``uv.lock`` (dependencies come from the lock file) and ``lambda_src/lakeroute``. The context is
an allow-list: only those files are staged into ``cdk.out`` and hashed, so editing a route
file, a test or the CDK code never rebuilds the image. Synth needs no Docker: CDK only stages
the context; ``cdk deploy`` builds and pushes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "lambda_src/Dockerfile"
INGEST_CMD = ("lakeroute.handler.handler",)
SYNC_CMD = ("lakeroute.sync.on_event",)

# Docker ignore syntax: everything out, then the image's inputs back in.
BUILD_CONTEXT_EXCLUDE = (
    "*",
    "!pyproject.toml",
    "!uv.lock",
    "!lambda_src",
    "lambda_src/*",
    f"!{DOCKERFILE}",
    "!lambda_src/lakeroute",
    "**/__pycache__",
    "**/*.pyc",
)

# The Lambda runtime's instruction set; the image is built for it whatever the build host is.
ARCHITECTURE = lambda_.Architecture.X86_64
PLATFORM = ecr_assets.Platform.LINUX_AMD64


def lakeroute_image(*, cmd: Sequence[str]) -> lambda_.DockerImageCode:
    """The lakeroute image with its CMD (the handler) set to ``cmd``.

    Both functions use the same build inputs, so they share one asset (one build, one push);
    only the function's ImageConfig.Command differs.
    """
    return lambda_.DockerImageCode.from_image_asset(
        str(REPO_ROOT),
        file=DOCKERFILE,
        cmd=list(cmd),
        exclude=list(BUILD_CONTEXT_EXCLUDE),
        ignore_mode=IgnoreMode.DOCKER,
        platform=PLATFORM,
    )
