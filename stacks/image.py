"""The lakeroute container image: one image asset (``lambda_src/Dockerfile``) for every function
and the large-object Fargate task.

The build context is the repository root, so the Dockerfile sees ``pyproject.toml`` and
``uv.lock`` (dependencies come from the lock file) and ``lambda_src/lakeroute``. The context is
an allow-list: only those files are staged into ``cdk.out`` and hashed, so editing a route
file, a test or the CDK code never rebuilds the image. Synth needs no Docker: CDK only stages
the context; ``cdk deploy`` builds and pushes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "lambda_src/Dockerfile"
INGEST_CMD = ("lakeroute.handler.handler",)
SYNC_CMD = ("lakeroute.sync.on_event",)
# The large-object tier: the stop handler is a function of the image; the Fargate task runs the
# image with its entry point replaced (the Lambda base image's is /lambda-entrypoint.sh, the
# runtime interface client). The base image's interpreter is /var/lang/bin/python3.
STOPPED_TASK_CMD = ("lakeroute.task.on_stopped",)
TASK_ENTRY_POINT = ("/var/lang/bin/python3", "-m", "lakeroute.task")
TASK_WORKING_DIRECTORY = "/var/task"  # LAMBDA_TASK_ROOT: the code and its dependencies

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


def _asset_options() -> dict[str, Any]:
    """The build inputs: identical for every user, so CDK stages ONE asset (same hash)."""
    return {"file": DOCKERFILE, "exclude": list(BUILD_CONTEXT_EXCLUDE),
            "ignore_mode": IgnoreMode.DOCKER, "platform": PLATFORM}


def lakeroute_image(*, cmd: Sequence[str]) -> lambda_.DockerImageCode:
    """The lakeroute image with its CMD (the handler) set to ``cmd``.

    Every function uses the same build inputs, so they share one asset (one build, one push);
    only the function's ImageConfig.Command differs.
    """
    return lambda_.DockerImageCode.from_image_asset(str(REPO_ROOT), cmd=list(cmd), **_asset_options())


def lakeroute_task_image(scope: Construct, id: str) -> ecs.ContainerImage:
    """The same image asset for an ECS container (``ContainerImage.from_docker_image_asset``).

    Same inputs, same asset hash: the functions' image (one entry in the assets manifest, one
    build, one push, the same ECR tag); the task replaces the entry point instead of the CMD.
    """
    asset = ecr_assets.DockerImageAsset(scope, id, directory=str(REPO_ROOT), **_asset_options())
    return ecs.ContainerImage.from_docker_image_asset(asset)
