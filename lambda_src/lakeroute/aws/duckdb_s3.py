"""DuckDB's S3 access (httpfs): one secret, every value bound as a parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .clients import endpoint_for, region_name

if TYPE_CHECKING:
    import boto3


def duckdb_s3_setup(session: boto3.session.Session | None = None) -> list[tuple[str, list[Any]]]:
    """A CREATE SECRET for DuckDB's httpfs, every value bound as a parameter."""
    import boto3

    session = session or boto3.session.Session()
    fields: list[str] = ["TYPE s3"]
    params: list[Any] = []
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        fields += ["KEY_ID ?", "SECRET ?"]
        params += [frozen.access_key, frozen.secret_key]
        if frozen.token:
            fields.append("SESSION_TOKEN ?")
            params.append(frozen.token)
    region = region_name(session)
    if region:
        fields.append("REGION ?")
        params.append(region)
    endpoint = endpoint_for("s3")
    if endpoint:
        parsed = urlparse(endpoint if "//" in endpoint else f"https://{endpoint}")
        fields += ["ENDPOINT ?", "URL_STYLE ?", "USE_SSL ?"]
        params += [parsed.netloc, "path", parsed.scheme != "http"]
    return [(f"CREATE SECRET lakeroute_s3 ({', '.join(fields)})", params)]
