"""boto3 clients (endpoints from the environment) and AWS errors translated to ours."""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import TransientError

if TYPE_CHECKING:
    import boto3

MiB = 1024 * 1024


# What a `--stage` command says when boto3 finds no region (the CLI's global --region sets one).
NO_REGION = ("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in ~/.aws/config) "
             "or pass --region")


def botocore_session(like: Any = None) -> Any:
    """A new botocore session; given ``like`` (another one), it reads botocore's data (endpoints,
    service models) through ``like``'s loader, which keeps what it has parsed: a session of its
    own parses them again (~0.05-0.1 s of a cold start per session). Never one botocore session
    under two boto3 sessions (PyIceberg's catalogs make their own): boto3 registers its handlers
    on the session it wraps, and twice on one session breaks every S3 client made after."""
    import botocore.session

    core = botocore.session.get_session()
    if like is not None:
        core.register_component("data_loader", like.get_component("data_loader"))
    return core


def aws_client(service: str, session: boto3.session.Session | None = None) -> Any:
    """A boto3 client with standard retries; endpoint from AWS_ENDPOINT_URL[_SERVICE]; region
    from ``region_name`` (boto3 alone ignores ``AWS_REGION``)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    return session.client(service, region_name=region_name(session), config=Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=16, connect_timeout=5, read_timeout=60))


def endpoint_for(service: str) -> str | None:
    return (os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
            or os.environ.get("AWS_ENDPOINT_URL") or None)


def region_name(session: boto3.session.Session | None = None) -> str | None:
    """``AWS_REGION`` (what Lambda sets and the SDKs read first), ``AWS_DEFAULT_REGION``, then
    the profile's ``region`` (boto3's own resolution: ``AWS_PROFILE``, ``AWS_CONFIG_FILE``)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import boto3

    return (session or boto3.session.Session()).region_name


def error_code(e: Exception) -> tuple[str, int | None, str]:
    response = getattr(e, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code", "")), status, str(error.get("Message", "") or e)


def aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def transient(what: str, e: Exception) -> TransientError:
    code, status, message = error_code(e)
    detail = f"{code} ({status}): {message}" if code else str(e)
    return TransientError(f"{what}: {detail}")


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** attempt)))


def batch_write(ddb: Any, table: str, items: list[dict[str, Any]], what: str) -> None:
    """PutRequests in BatchWriteItem calls of 25, unprocessed items retried with backoff."""
    puts = [{"PutRequest": {"Item": it}} for it in items]
    for i in range(0, len(puts), 25):
        request: dict[str, Any] = {table: puts[i:i + 25]}
        for attempt in range(10):
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            backoff(attempt)
        else:
            raise TransientError(f"{what} {table}: writes kept being throttled")
