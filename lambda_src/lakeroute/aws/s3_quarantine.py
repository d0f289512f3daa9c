"""The quarantine in S3: a copy of each bad object beside its error record."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..core.engine import SourceObject
from ..core.errors import ObjectError
from ..core.objects import error_record
from .clients import aws_client, aws_errors, error_code, transient
from .config import split_s3_uri
from .s3_source import is_etag


class S3Quarantine:
    """``<prefix>/<bucket>/<key>`` (a copy of the object) beside ``<key>.error.json``.

    Idempotent per object version: when the error record of the same version is already
    there (a redelivery of a poison message), the object is not copied again; the error
    record is rewritten so it shows the latest reason.
    """

    VERSION_META = "lakeroute-version"

    def __init__(self, uri: str, s3: Any = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.s3 = s3 if s3 is not None else aws_client("s3")

    def location(self, bucket: str, key: str) -> str:
        dest = f"{self.prefix}/{bucket}/{key}" if self.prefix else f"{bucket}/{key}"
        if len(dest.encode()) + len(".error.json") > 1024:  # S3's key length limit
            digest = hashlib.sha256(key.encode()).hexdigest()
            dest = f"{self.prefix}/{bucket}/_long-keys/{digest}".lstrip("/")
        return dest

    def put(self, bucket: str, key: str, obj: SourceObject | None, error: ObjectError) -> str:
        dest = self.location(bucket, key)
        version = obj.version if obj is not None else ""
        if obj is not None and not obj.path.startswith("s3://"):
            # DuckDB names the downloaded temp file; the reader of the record knows the object.
            error.message = error.message.replace(obj.path, obj.uri)
        record = error_record(bucket, key, obj, error)
        try:
            if obj is not None and not self._has(dest, version):
                self._copy(obj, dest, record)
            self.s3.put_object(
                Bucket=self.bucket, Key=dest + ".error.json",
                Body=(json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode(),
                ContentType="application/json",
                Metadata={self.VERSION_META: version.encode("ascii", "replace").decode()})
        except aws_errors() as e:
            raise transient(f"quarantine s3://{self.bucket}/{dest}", e) from e
        return f"s3://{self.bucket}/{dest}"

    def _has(self, dest: str, version: str) -> bool:
        if not version:
            return False
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=dest + ".error.json")
        except aws_errors():
            return False
        return bool((head.get("Metadata") or {}).get(self.VERSION_META) == version)

    def _copy(self, obj: SourceObject, dest: str, record: dict[str, Any]) -> None:
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if not is_etag(obj.version):
            source["VersionId"] = obj.version
        try:
            self.s3.copy(source, self.bucket, dest)
        except aws_errors() as e:
            code, status, _ = error_code(e)
            if status in (404, 412) or code in ("404", "NoSuchKey", "NoSuchVersion"):
                record["object_copied"] = False  # gone already: the error record still tells
                return
            raise
