"""The ``--stage NAME`` side of the recovery and warehouse commands: a deployed stage.

The stage's resources come from its stack's outputs (``aws.stage``); without ``--stage``,
the handler's environment variables, when set, name them. ``replay`` and ``backfill`` do not
ingest here: they send S3-notification-shaped messages for the original objects to the
stage's ingest queue, and the handler lands them (exactly once: its ledger skips what the
tables hold).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import typer

from ..core.errors import LakerouteError
from ..core.ledger.quarantine import RECORD_NAME
from .app import fail

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from ..aws.stage import Stage

BATCH = 10  # SendMessageBatch's limit


def selected(stage: str | None) -> Stage | None:
    """The stage named by ``--stage``, else the one the environment names, else None (local).

    A stage needs an AWS region (``aws.clients.region_name``): without one, one ``error:`` line
    saying where to set it, exit 2, before any AWS call."""
    from ..aws.clients import NO_REGION, region_name
    from ..aws.stage import resolve_stage, stage_from_env

    found = stage_from_env() if stage is None else None
    if stage is None and found is None:
        return None
    if region_name() is None:
        raise fail(NO_REGION)
    if stage is None:
        return found
    try:
        return resolve_stage(stage)
    except LakerouteError as e:
        raise fail(str(e)) from None


def _need(stage: Stage, what: str) -> str:
    try:
        return stage.need(what)
    except LakerouteError as e:
        raise fail(str(e)) from None


# ---------------------------------------------------------------- catalog


def stage_catalog(stage: Stage) -> Catalog:
    from ..aws.catalog import catalog_for, glue_catalog

    if stage.catalog == "s3tables":
        try:
            return catalog_for("s3tables", stage.warehouse, _need(stage, "table_bucket"))
        except LakerouteError as e:
            raise fail(str(e)) from None
    return glue_catalog(_need(stage, "warehouse"))


# ---------------------------------------------------------------- quarantine


def quarantine_entries(stage: Stage, s3: Any = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry URI, record) of every entry of the stage's S3 quarantine."""
    from ..aws.clients import aws_client, aws_errors, transient
    from ..aws.config import split_s3_uri

    try:
        bucket, prefix = split_s3_uri(_need(stage, "quarantine"))
    except LakerouteError as e:
        raise fail(str(e)) from None
    s3 = s3 if s3 is not None else aws_client("s3")
    args = {"Bucket": bucket, **({"Prefix": prefix + "/"} if prefix else {})}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**args):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if not key.endswith("/" + RECORD_NAME):
                    continue
                try:
                    record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                except ValueError:
                    typer.echo(f"skipped s3://{bucket}/{key}: not a JSON record", err=True)
                    continue
                if isinstance(record, dict) and "bucket" in record and "key" in record:
                    yield f"s3://{bucket}/{key[: -len(RECORD_NAME) - 1]}", record
    except aws_errors() as e:
        raise fail(str(transient(f"quarantine s3://{bucket}/{prefix}", e))) from None


def _mark_replayed(s3: Any, entry: str, record: dict[str, Any], queue: str, when: str) -> None:
    from ..aws.config import split_s3_uri

    bucket, key = split_s3_uri(entry)
    try:  # re-read: the handler may have rewritten it since the listing (one more attempt)
        current = json.loads(s3.get_object(Bucket=bucket, Key=f"{key}/{RECORD_NAME}")["Body"].read())
        record = current if isinstance(current, dict) else record
    except ValueError:
        pass
    record = {**record, "replayed_at": when, "replayed_to": queue}
    s3.put_object(Bucket=bucket, Key=f"{key}/{RECORD_NAME}", ContentType="application/json",
                  Body=(json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))


def dismiss(stage: Stage, chosen: list[tuple[str, dict[str, Any]]], reason: str, who: str) -> None:
    """Close the chosen entries of the stage's quarantine as dismissed; journal each."""
    from ..aws.config import split_s3_uri
    from ..aws.journal import DynamoJournal
    from ..aws.s3_quarantine import S3Quarantine
    from ..core.ledger.quarantine import DISMISSED
    from .quarantine import dismissals

    journal = DynamoJournal(_need(stage, "ledger_table"))  # before anything changes: the reason is kept
    quarantine = S3Quarantine(_need(stage, "quarantine"))
    closed = []
    try:
        for entry, _ in chosen:
            closed.append(quarantine.close(f"{split_s3_uri(entry)[1]}/{RECORD_NAME}", DISMISSED, reason,
                                           dismissed_by=who))
    finally:  # what was closed is journaled, even when a later entry could not be
        if closed:
            journal.record(dismissals(closed))


def purge(stage: Stage, states: set[str]) -> int:
    """Delete the stage's quarantine entries in these (closed) states; returns how many."""
    from ..aws.clients import aws_client
    from ..aws.config import split_s3_uri
    from ..core.ledger.quarantine import entry_state

    s3 = aws_client("s3")
    gone = 0
    for uri, record in quarantine_entries(stage, s3):
        if entry_state(record) in states:
            bucket, prefix = split_s3_uri(uri)
            for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
            gone += 1
    return gone


# ---------------------------------------------------------------- messages


def notification(bucket: str, key: str, version: str | None, size: Any = None, *, replay: bool = False) -> str:
    """An S3 ObjectCreated notification body for one object version, as ``aws.events`` reads it.
    ``replay``: the handler resolves the object's quarantine record once it lands."""
    from ..aws.events import REPLAY_CONFIGURATION
    from ..aws.s3_source import is_etag

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if isinstance(size, int) and size >= 0:
        obj["size"] = size
    if version:
        obj["eTag" if is_etag(version) else "versionId"] = version.strip('"') if is_etag(version) else version
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": now,
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "lakeroute-cli"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": REPLAY_CONFIGURATION if replay else "lakeroute-cli",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj}}]})


class Sender:
    """Sends bodies to a queue in SendMessageBatch calls of 10; ``flush`` at the end."""

    def __init__(self, queue_url: str, sqs: Any = None,
                 sent: Callable[[list[Any]], None] | None = None) -> None:
        from ..aws.clients import aws_client

        self.url = queue_url
        self.sqs = sqs if sqs is not None else aws_client("sqs")
        self.pending: list[tuple[str, Any]] = []
        self.sent = 0
        self.failed: list[tuple[Any, str]] = []
        self.on_sent = sent

    def add(self, body: str, item: Any) -> None:
        self.pending.append((body, item))
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        from ..aws.clients import aws_errors, transient

        batch, self.pending = self.pending, []
        if not batch:
            return
        entries = [{"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(batch)]
        try:
            response = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
        except aws_errors() as e:
            raise fail(str(transient(f"SendMessageBatch {self.url}", e))) from None
        failed = {f["Id"]: str(f.get("Message") or f.get("Code")) for f in response.get("Failed", [])}
        done = [item for i, (_, item) in enumerate(batch) if str(i) not in failed]
        self.failed += [(batch[int(i)][1], why) for i, why in failed.items()]
        self.sent += len(done)
        if self.on_sent:
            self.on_sent(done)


@contextmanager
def progress(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; yields advance(n)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


# ---------------------------------------------------------------- replay


def replay(stage: Stage, chosen: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Send each chosen record's original object version to the ingest queue, mark it replayed."""
    from ..aws.clients import aws_client, aws_errors

    queue = _need(stage, "ingest_queue_url")
    items = list(chosen)
    if not items:
        typer.echo("nothing to replay")
        return
    s3 = aws_client("s3")
    when = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    unmarked: list[str] = []

    with progress("replay", len(items)) as advance:
        def sent(done: list[Any]) -> None:
            for entry, record in done:
                try:
                    _mark_replayed(s3, entry, record, queue, when)
                except aws_errors():
                    unmarked.append(entry)
            advance(len(done))

        sender = Sender(queue, sent=sent)
        for entry, record in items:
            sender.add(notification(record["bucket"], record["key"], record.get("version"),
                                    record.get("size"), replay=True), (entry, record))
        sender.flush()
    for (_, record), why in sender.failed:
        typer.echo(f"not sent {record['bucket']}/{record['key']}: {why}", err=True)
    for entry in unmarked:
        typer.echo(f"sent, but could not mark {entry} replayed", err=True)
    typer.echo(f"sent {sender.sent} object(s) to {queue}; the handler ingests them (`lakeroute "
               f"quarantine ls --stage {stage.name}` shows what fails again)")
    if sender.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- backfill


def backfill(stage: Stage, where: str, after: dt.datetime | None, before: dt.datetime | None,
             pattern: str | None) -> None:
    """List BUCKET[/PREFIX] (logical or physical bucket), enqueue the objects that pass the filters."""
    from ..aws.clients import aws_client, aws_errors, transient

    queue = _need(stage, "ingest_queue_url")
    logical, _, prefix = where.partition("/")
    try:
        bucket = stage.bucket(logical)
    except LakerouteError as e:
        raise fail(str(e)) from None
    s3 = aws_client("s3")
    listed = matched = 0
    with progress(f"backfill {where}", None) as advance:
        sender = Sender(queue, sent=lambda done: advance(len(done)))
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    listed += 1
                    key, modified = str(item["Key"]), item["LastModified"]
                    if key.endswith("/") and int(item.get("Size", 0)) == 0:
                        continue  # a folder placeholder
                    if pattern and not fnmatch.fnmatchcase(key[len(prefix):], pattern):
                        continue
                    if (after and modified < after) or (before and modified >= before):
                        continue
                    matched += 1
                    sender.add(notification(bucket, key, str(item.get("ETag") or "") or None,
                                            int(item.get("Size", 0))), key)
        except aws_errors() as e:
            raise fail(str(transient(f"list s3://{bucket}/{prefix}", e))) from None
        sender.flush()
    for key, why in sender.failed:
        typer.echo(f"not sent {bucket}/{key}: {why}", err=True)
    typer.echo(f"backfill {where} (s3://{bucket}/{prefix}): {listed} object(s) listed, {matched} "
               f"matched, sent {sender.sent} object(s) to {queue}; versions the tables hold are skipped")
    if sender.failed:
        raise typer.Exit(1)
