"""Lambda events -> the objects they announce (pure functions, no AWS calls).

Accepted shapes, alone or nested:

- an SQS batch (``Records[].eventSource == "aws:sqs"``) whose bodies are any of the below;
  every object is tagged with its message's ``messageId`` so failures map back to messages;
- an S3 event notification (``Records[].eventSource == "aws:s3"``), direct or as a body;
- an EventBridge ``Object Created`` event (``source == "aws.s3"``), direct or as a body;
- an SNS notification wrapping one of the above (``Type == "Notification"`` as an SQS body
  without raw delivery, or ``Records[].EventSource == "aws:sns"`` when invoked by SNS).

Object keys in S3 notifications are URL-encoded in form style (``red flower.jpg`` arrives as
``red+flower.jpg``, ``'`` as ``%27``): they are decoded with ``unquote_plus``. EventBridge
keys are decoded the same way (``EVENTBRIDGE_KEYS_URL_ENCODED``). The version is the
``versionId`` when the bucket is versioned, else the ``eTag``; ``S3ObjectSource`` tells them
apart.

Nothing to do, acknowledged: ``s3:TestEvent`` (sent when a notification is configured),
events other than ObjectCreated, and zero-byte "folder" placeholders (keys ending in ``/``).
Bodies that are not an event at all are *malformed*: the handler reports them as failures so
they end in the dead-letter queue, where someone can look at them, instead of vanishing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote_plus

from ..core.errors import shortened
from ..core.pipeline import ObjectRef

# S3 documents the form-style encoding for notifications; EventBridge events are assumed to
# carry keys the same way. Flip this if a real EventBridge event shows a raw key.
EVENTBRIDGE_KEYS_URL_ENCODED = True
MAX_NESTING = 3  # SQS -> SNS -> S3 is the deepest real wrapping
MAX_BODY_CHARS = 1024 * 1024  # SQS bodies are at most 1 MiB
# `lakeroute replay --stage` marks its notifications: the object's quarantine record is
# resolved once it lands.
REPLAY_CONFIGURATION = "lakeroute-replay"


@dataclass
class ParsedEvent:
    """What a Lambda event asks for."""

    kind: str  # sqs | s3 | eventbridge | sns | unknown: the outer shape (decides the response)
    refs: list[ObjectRef] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (id, why): acknowledged
    malformed: list[tuple[str, str]] = field(default_factory=list)  # (id, why): failures

    @property
    def is_sqs(self) -> bool:
        return self.kind == "sqs"


def parse_event(event: Any) -> ParsedEvent:
    """Every object an invocation event announces, in order, with the items to skip or fail."""
    try:
        return _parse_event(event)
    except (ValueError, RecursionError, TypeError, AttributeError) as e:
        return ParsedEvent("unknown", malformed=[("", f"unreadable event: {type(e).__name__}")])


def _parse_event(event: Any) -> ParsedEvent:
    if not isinstance(event, Mapping):
        return ParsedEvent("unknown", malformed=[("", "event is not a JSON object")])
    records = event.get("Records")
    if isinstance(records, list) and records and all(
            isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records):
        parsed = ParsedEvent("sqs")
        for record in records:
            _parse_sqs_record(record, parsed)
        return parsed
    parsed = ParsedEvent(_kind(event))
    _parse_document(event, str(event.get("id") or ""), parsed, depth=0)
    return parsed


def _kind(event: Mapping[str, Any]) -> str:
    if event.get("source") == "aws.s3":
        return "eventbridge"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        if records[0].get("EventSource") == "aws:sns":
            return "sns"
        if records[0].get("eventSource") == "aws:s3":
            return "s3"
    return "unknown"


def _parse_sqs_record(record: Mapping[str, Any], parsed: ParsedEvent) -> None:
    """One message; whatever its body holds, it ends as refs, ignored or malformed, never raises."""
    msg_id = str(record.get("messageId") or "")
    body = record.get("body")
    if not isinstance(body, str):
        parsed.malformed.append((msg_id, "SQS message has no body"))
        return
    if len(body) > MAX_BODY_CHARS:
        parsed.malformed.append((msg_id, f"SQS body of {len(body)} characters is not an S3 event"))
        return
    before = (len(parsed.refs), len(parsed.ignored), len(parsed.malformed))
    try:
        document = json.loads(body)
        _parse_document(document, msg_id, parsed, depth=0)
        receives = _receives(record)
        if receives > 1:  # a redelivery (core.read.crash reads it in a child past a few)
            parsed.refs[before[0]:] = [replace(r, receives=receives) for r in parsed.refs[before[0]:]]
    except (ValueError, RecursionError, TypeError, AttributeError) as e:
        # Not JSON, or JSON nested beyond what the parser's stack holds: the message is bad.
        del parsed.refs[before[0]:], parsed.ignored[before[1]:], parsed.malformed[before[2]:]
        kind = "nested too deeply" if isinstance(e, RecursionError) else f"not JSON: {shortened(body, 80)!r}"
        parsed.malformed.append((msg_id, f"SQS body is {kind}"))


def _parse_document(doc: Any, item_id: str, parsed: ParsedEvent, depth: int) -> None:
    """One JSON document (an SQS body, an SNS message, or the event itself)."""
    if depth > MAX_NESTING or not isinstance(doc, Mapping):
        parsed.malformed.append((item_id, "not an S3, EventBridge or SNS event"))
        return
    if doc.get("Event") == "s3:TestEvent":
        parsed.ignored.append((item_id, f"s3:TestEvent for bucket {doc.get('Bucket')}"))
        return
    if doc.get("source") == "aws.s3" and "detail" in doc:
        _parse_eventbridge(doc, item_id, parsed)
        return
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        _parse_json_text(doc["Message"], item_id, parsed, depth)
        return
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        parsed.malformed.append((item_id, "not an S3, EventBridge or SNS event"))
        return
    for record in records:
        if not isinstance(record, Mapping):
            parsed.malformed.append((item_id, "event record is not an object"))
        elif record.get("EventSource") == "aws:sns" and isinstance(record.get("Sns"), Mapping):
            sns = record["Sns"]
            _parse_json_text(sns.get("Message", ""), item_id or str(sns.get("MessageId") or ""),
                             parsed, depth)
        elif record.get("eventSource") == "aws:s3" or "s3" in record:
            _parse_s3_record(record, item_id, parsed)
        else:
            parsed.malformed.append((item_id, f"unsupported event source "
                                              f"{record.get('eventSource') or record.get('EventSource')!r}"))


def _parse_json_text(text: Any, item_id: str, parsed: ParsedEvent, depth: int) -> None:
    try:
        inner = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        inner = None
    if inner is None:
        parsed.malformed.append((item_id, "SNS message is not JSON"))
        return
    _parse_document(inner, item_id, parsed, depth + 1)


def _parse_s3_record(record: Mapping[str, Any], item_id: str, parsed: ParsedEvent) -> None:
    name = str(record.get("eventName") or "")
    s3: Mapping[str, Any] = record["s3"] if isinstance(record.get("s3"), Mapping) else {}
    bucket = _get(s3, "bucket", "name")
    obj: Mapping[str, Any] = s3["object"] if isinstance(s3.get("object"), Mapping) else {}
    raw_key = obj.get("key")
    if not name.startswith("ObjectCreated:"):
        parsed.ignored.append((item_id, f"{name or 'unnamed event'} for {bucket}/{raw_key}"))
        return
    if not isinstance(bucket, str) or not bucket or not isinstance(raw_key, str) or not raw_key:
        parsed.malformed.append((item_id, f"{name} without bucket name or object key"))
        return
    _add(parsed, item_id, bucket, unquote_plus(raw_key), obj.get("size"),
         _version(obj.get("versionId"), obj.get("eTag")), replay=s3.get("configurationId") == REPLAY_CONFIGURATION)


def _parse_eventbridge(doc: Mapping[str, Any], item_id: str, parsed: ParsedEvent) -> None:
    detail: Mapping[str, Any] = doc["detail"] if isinstance(doc.get("detail"), Mapping) else {}
    kind = str(doc.get("detail-type") or "")
    bucket = _get(detail, "bucket", "name")
    obj: Mapping[str, Any] = detail["object"] if isinstance(detail.get("object"), Mapping) else {}
    raw_key = obj.get("key")
    item_id = item_id or str(doc.get("id") or "")
    if kind != "Object Created":
        parsed.ignored.append((item_id, f"EventBridge {kind or 'event'} for {bucket}/{raw_key}"))
        return
    if not isinstance(bucket, str) or not bucket or not isinstance(raw_key, str) or not raw_key:
        parsed.malformed.append((item_id, "Object Created without bucket name or object key"))
        return
    key = unquote_plus(raw_key) if EVENTBRIDGE_KEYS_URL_ENCODED else raw_key
    etag = obj.get("etag", obj.get("eTag"))
    _add(parsed, item_id, bucket, key, obj.get("size"), _version(obj.get("version-id"), etag))


def _add(parsed: ParsedEvent, item_id: str, bucket: str, key: str, size: Any,
         version: str | None, replay: bool = False) -> None:
    if key.endswith("/") and size in (0, "0"):
        parsed.ignored.append((item_id, f"folder placeholder {bucket}/{key}"))
        return
    parsed.refs.append(ObjectRef(bucket=bucket, key=key, version=version, id=item_id, size=_size(size),
                                 replay=replay))


def _receives(record: Mapping[str, Any]) -> int:
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return max(1, int(count)) if count is not None else 1
    except (TypeError, ValueError):
        return 1


def _size(size: Any) -> int | None:
    try:
        value = int(size)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _version(version_id: Any, etag: Any) -> str | None:
    """The version id of a versioned bucket ("null" means unversioned), else the ETag."""
    if isinstance(version_id, str) and version_id and version_id != "null":
        return version_id
    if isinstance(etag, str) and etag.strip('"'):
        return etag.strip('"')
    return None


def _get(mapping: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(part)
    return mapping

