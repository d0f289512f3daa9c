"""The commit lane in AWS: hand-off records under an S3 prefix, signalled through SQS FIFO.

The FIFO queue's message group is the table, so the commit function holds at most one batch
of a table at a time (Lambda's SQS FIFO event source processes a group in order, one batch in
flight), while different tables commit in parallel. The deduplication id is the hand-off id,
so a re-sent signal within five minutes is dropped by SQS; later duplicates find the record
gone and are acknowledged. The committer lists the prefix itself, so a record whose signal
was lost (a crash between the record and the message) is committed with the next signal of
its table, or by the sweep (``tables``).
"""

from __future__ import annotations

import json
from typing import Any

from .clients import aws_errors, error_code, transient
from .config import split_s3_uri


class S3Lane:
    def __init__(self, root: str, s3: Any, sqs: Any = None, queue_url: str | None = None) -> None:
        self.root = root.rstrip("/")
        self.bucket, self.prefix = split_s3_uri(self.root)
        self.s3, self.sqs, self.queue_url = s3, sqs, queue_url

    def _key(self, table: str, handoff_id: str) -> str:
        return f"{self.prefix}/{table}/{handoff_id}.json"

    def publish(self, table: str, handoff_id: str, body: bytes) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self._key(table, handoff_id), Body=body,
                               ContentType="application/json")
        except aws_errors() as e:
            raise transient(f"commit lane {self.root}: publish", e) from e

    def pending(self, table: str) -> list[str]:
        return sorted(name[:-5] for name in self._list(f"{self.prefix}/{table}/", "Contents", "Key")
                      if name.endswith(".json"))

    def load(self, table: str, handoff_id: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=self._key(table, handoff_id))["Body"].read()
            return body
        except aws_errors() as e:
            if error_code(e)[0] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise transient(f"commit lane {self.root}: read {handoff_id}", e) from e

    def remove(self, table: str, handoff_id: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(table, handoff_id))
            # The folder marker pyarrow leaves when it writes the blobs.
            self.s3.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{table}/{handoff_id}/")
        except aws_errors() as e:
            raise transient(f"commit lane {self.root}: remove {handoff_id}", e) from e

    def tables(self) -> list[str]:
        return sorted(t for t in self._list(f"{self.prefix}/", "CommonPrefixes", "Prefix") if self.pending(t))

    def signal(self, table: str, handoff_id: str) -> None:
        if self.sqs is None or not self.queue_url:
            return
        try:
            body = json.dumps({"table": table, "handoff": handoff_id})
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, MessageGroupId=table,
                                  MessageDeduplicationId=handoff_id)
        except aws_errors() as e:
            raise transient(f"commit lane queue {self.queue_url}: signal", e) from e

    def _list(self, prefix: str, section: str, field: str) -> list[str]:
        """The last path segment of each listed key (``Contents``) or folder (``CommonPrefixes``)."""
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            return [item[field].rstrip("/").rsplit("/", 1)[-1] for page in pages for item in page.get(section, [])]
        except aws_errors() as e:
            raise transient(f"commit lane {self.root}: list", e) from e
