"""Listing a table location on S3 (orphan-file removal, ``core.maintenance``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.maintain.references import FileInfo, Lister
from .clients import aws_client, aws_errors, transient
from .config import split_s3_uri


def s3_lister(s3: Any = None) -> Lister:
    """A ``Lister`` over ``s3://bucket/prefix`` locations (``s3a``/``s3n`` read as ``s3``)."""
    client = s3 if s3 is not None else aws_client("s3")

    def listing(location: str) -> Iterator[FileInfo]:
        uri = "s3://" + location.split("://", 1)[1] if "://" in location else location
        bucket, prefix = split_s3_uri(uri)
        # The trailing slash: `ns.db/t` must not list `ns.db/t2`.
        args = {"Bucket": bucket, "Prefix": prefix.rstrip("/") + "/" if prefix else ""}
        try:
            for page in client.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", []):
                    if str(item["Key"]).endswith("/"):
                        continue  # a folder marker (pyarrow's S3 file system writes them), not a file
                    yield FileInfo(f"s3://{bucket}/{item['Key']}", int(item.get("Size", 0)),
                                   item["LastModified"].timestamp())
        except aws_errors() as e:
            raise transient(f"list {uri}", e) from e

    return listing
