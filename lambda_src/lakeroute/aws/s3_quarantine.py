"""The quarantine in S3: a copy of each bad object beside its error record."""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import ConfigError, ObjectError
from ..core.ledger.quarantine import (
    ANY_VERSION,
    RECORD_NAME,
    REJECTS_SUMMARY,
    Landed,
    closed,
    closings,
    entry_dir,
    error_record,
    is_entry_name,
    object_name,
    rejects_name,
    rejects_record,
)
from ..core.objects import SourceObject
from .clients import aws_client, aws_errors, error_code, transient
from .config import split_s3_uri
from .s3_source import is_etag

SETTLE_THREADS = 8  # keys whose quarantine folders are listed at once after a commit


class S3Quarantine:
    """The ``core.quarantine`` layout under ``s3://<bucket>/<prefix>/``: per object version
    an entry ``<bucket>/<escaped key>/~v=<tag>/`` holding ``object<.ext>`` (a server-side
    copy, pinned to the version) and ``error.json``.

    Idempotent per object version: when the entry's record exists (a redelivery of a poison
    message), the object is not copied again; the record is rewritten with the latest
    reason and one more attempt.
    """

    def __init__(self, uri: str, s3: Any = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.s3 = s3 if s3 is not None else aws_client("s3")

    def location(self, bucket: str, key: str, version: str | None) -> str:
        budget = 1024 - (len(self.prefix.encode()) + 1 if self.prefix else 0)  # S3's key limit
        entry = entry_dir(bucket, key, version, max_bytes=budget, max_segment=1024)
        return f"{self.prefix}/{entry}" if self.prefix else entry

    def put(self, bucket: str, key: str, obj: SourceObject | None, error: ObjectError,
            table: str | None = None) -> str:
        entry = self.location(bucket, key, obj.version if obj is not None else None)
        if obj is not None and not obj.path.startswith("s3://"):
            # DuckDB names the downloaded scratch file; the reader of the record knows the object.
            error.message = error.message.replace(obj.path, obj.uri)
        record_key = f"{entry}/{RECORD_NAME}"
        copy_key = f"{entry}/{object_name(key)}"
        try:
            previous = self._previous(record_key)
            copied: bool | None = None
            if obj is not None:
                copied = bool(previous.get("object_copied")) if previous else self._copy(obj, copy_key)
            record = error_record(bucket, key, obj, error, previous, table=table, copied=copied)
            record["object_copy"] = f"s3://{self.bucket}/{copy_key}" if copied else None
            self.s3.put_object(
                Bucket=self.bucket, Key=record_key,
                Body=(json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"),
                ContentType="application/json")
        except aws_errors() as e:
            raise transient(f"quarantine s3://{self.bucket}/{entry}", e) from e
        return f"s3://{self.bucket}/{entry}"

    def holds(self, bucket: str, key: str, version: str) -> bool:
        """Whether the object version has an entry (its error record): one HEAD. The sweep
        asks it before sending an unrouted key, so that such a key is quarantined once."""
        record_key = f"{self.location(bucket, key, version)}/{RECORD_NAME}"
        try:
            self.s3.head_object(Bucket=self.bucket, Key=record_key)
        except aws_errors() as e:
            code, status, _ = error_code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise transient(f"quarantine s3://{self.bucket}/{record_key}", e) from e
        return True

    def put_rejects(self, bucket: str, key: str, obj: SourceObject, route: str, table: str, data: bytes,
                    count: int) -> str:
        """The rejected rows of one object version for one table, beside a summary record."""
        entry = self.location(bucket, key, obj.version)
        rejects_key = f"{entry}/{rejects_name(table)}"
        summary_key = f"{entry}/{REJECTS_SUMMARY}"
        where = f"s3://{self.bucket}/{rejects_key}"
        try:
            self.s3.put_object(Bucket=self.bucket, Key=rejects_key, Body=data, ContentType="application/x-ndjson")
            record = rejects_record(bucket, key, obj, route, table, count, where, self._previous(summary_key))
            self.s3.put_object(Bucket=self.bucket, Key=summary_key, ContentType="application/json",
                               Body=(json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode(
                                   "utf-8", "backslashreplace"))
        except aws_errors() as e:
            raise transient(f"rejects s3://{self.bucket}/{entry}", e) from e
        return where

    def _previous(self, record_key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=record_key)["Body"].read()
        except aws_errors() as e:
            code, status, _ = error_code(e)
            if status == 404 or code in ("404", "NoSuchKey"):
                return None
            raise
        try:
            value = json.loads(body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _copy(self, obj: SourceObject, dest: str) -> bool:
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if not is_etag(obj.version):
            source["VersionId"] = obj.version
        try:
            self.s3.copy(source, self.bucket, dest)
        except aws_errors() as e:
            code, status, _ = error_code(e)
            if status in (404, 412) or code in ("404", "NoSuchKey", "NoSuchVersion"):
                return False  # gone already: the error record still tells
            raise
        return True

    # -- closing entries (``core.ledger.quarantine``: resolved, superseded, dismissed)

    def versions(self, bucket: str, key: str) -> list[tuple[str, dict[str, Any]]]:
        """(record key, record) of every quarantined version of one key: one ListObjectsV2 of
        the key's folder (its version entries are the only ``~`` folders in it)."""
        folder = self.location(bucket, key, ANY_VERSION).rsplit("/", 1)[0]
        out = []
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{folder}/~", Delimiter="/")
        for common in listed.get("CommonPrefixes", []):
            entry = str(common["Prefix"]).rstrip("/")
            if not is_entry_name(entry.rsplit("/", 1)[-1]):
                continue
            record = self._previous(f"{entry}/{RECORD_NAME}")
            if record is not None:
                out.append((f"{entry}/{RECORD_NAME}", record))
        return out

    def close(self, record_key: str, state: str, reason: str, **extra: str) -> dict[str, Any]:
        """Close the entry whose record is ``record_key`` (in the quarantine bucket)."""
        try:
            record = self._previous(record_key)
            if record is None:
                raise ConfigError(f"s3://{self.bucket}/{record_key}: no quarantine record there")
            new = closed(record, state, reason, **extra)
            self._put_record(record_key, new)
        except aws_errors() as e:
            raise transient(f"quarantine s3://{self.bucket}/{record_key}", e) from e
        return new

    def settle(self, landed: list[Landed]) -> list[dict[str, Any]]:
        """Close the entries the landed versions close; a few keys at once (one LIST each,
        then a GET and a PUT per entry that closes). Returns the closed records."""
        from concurrent.futures import ThreadPoolExecutor

        def one(item: Landed) -> list[dict[str, Any]]:
            try:
                done = []
                for record_key, record in closings(item, self.versions(item.bucket, item.key)):
                    self._put_record(record_key, record)
                    done.append(record)
                return done
            except aws_errors() as e:
                raise transient(f"quarantine of s3://{item.bucket}/{item.key}", e) from e

        if len(landed) <= 1:
            return [r for item in landed for r in one(item)]
        with ThreadPoolExecutor(min(SETTLE_THREADS, len(landed)), thread_name_prefix="lakeroute-settle") as pool:
            return [r for records in pool.map(one, landed) for r in records]

    def _put_record(self, record_key: str, record: dict[str, Any]) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=record_key, ContentType="application/json",
                           Body=(json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode(
                               "utf-8", "backslashreplace"))
