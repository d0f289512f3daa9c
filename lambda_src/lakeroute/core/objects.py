"""An object version, and the ports that bring objects in and put bad ones aside.

Adapters implement the ports: ``lakeroute.local.objects`` (landing folders) and
``lakeroute.aws.s3_source`` / ``s3_quarantine`` (S3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .errors import ObjectError

# Modes in which an object stands for its key's current state: there the latest upload of an
# object key wins, so an upload of content already ingested (a revert) is ingested again.
KEY_MODES = ("replace", "overwrite", "upsert")
UPLOAD_SEP = "#"  # between the version and the upload in a ledger id (never in an ETag, hash or version id)


@dataclass(frozen=True)
class SourceObject:
    """One object version, resolved to something DuckDB can read.

    Two identities (both ``bucket/key@...``, the ledger's source ids):

    - ``source_id``, the content: ``@<version>`` (the ETag, or the version id of a versioned
      bucket; locally the sha256 of the bytes). Mode ``append`` records it: identical content
      uploaded again is a duplicate, skipped.
    - ``upload_id``, the upload: ``@<version>#<upload>``, where ``upload`` tells apart two
      uploads of identical content (S3 without versioning: the LastModified second; locally
      the file's modification time, ns). Modes ``replace``, ``overwrite`` and ``upsert``
      record it (``ledger_id``): a re-upload of earlier content is ingested again, a
      redelivery of the same upload is not. A version id is already one per upload: there
      ``upload`` is empty and both identities are the same string.
    """

    bucket: str
    key: str
    path: str  # local path or s3:// URL that DuckDB reads
    version: str  # ETag / version id in S3, a content hash locally
    size: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    upload: str = ""  # tells uploads of identical content apart (empty: ``version`` does)
    uploaded_ms: int | None = None  # when it was uploaded, at the latest (epoch ms)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def source_id(self) -> str:
        return f"{self.bucket}/{self.key}@{self.version}"

    @property
    def upload_id(self) -> str:
        return f"{self.source_id}{UPLOAD_SEP}{self.upload}" if self.upload else self.source_id

    def ledger_id(self, mode: str) -> str:
        """The id the ledger records for a table written in ``mode``."""
        return self.upload_id if mode in KEY_MODES else self.source_id


def version_of(source_id: str) -> str:
    """The object version a ledger id names (its upload, if any, left out)."""
    return source_id.rsplit("@", 1)[-1].split(UPLOAD_SEP, 1)[0]


class ObjectSource(Protocol):
    """Where objects come from. A source may also define ``fetch(obj) -> SourceObject``,
    called only for objects that will really be read (after routing and the duplicate check),
    to bring the bytes close (S3: a download to /tmp); ``release`` gets the fetched object.
    A source may define ``verify(obj)``, called after the object was read and before its
    rows are committed, to prove the bytes read are the version recorded (raise otherwise)."""

    def resolve(self, bucket: str, key: str, version: str | None = None) -> SourceObject: ...

    def metadata(self, obj: SourceObject) -> Mapping[str, str]: ...

    def release(self, obj: SourceObject) -> None: ...


class Quarantine(Protocol):
    """Where bad objects go: a copy and an error record per object version (``core.quarantine``).

    ``put`` returns where the entry is; it raises when the entry could not be written, and
    the pipeline then fails the object for a retry instead of dropping it. A quarantine may
    define ``settle(landed: list[core.ledger.quarantine.Landed]) -> list[dict]``, called after
    a batch with the versions that landed, to close the entries they close (resolved,
    superseded) and return the closed records (``core.pipeline.closing``).
    """

    def put(self, bucket: str, key: str, obj: SourceObject | None, error: ObjectError,
            table: str | None = None) -> str: ...


def parquet_metadata(path: str) -> dict[str, str]:
    """Parquet key-value metadata (minus Arrow's own schema blob)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError) as e:
        raise ObjectError("read", f"cannot read Parquet footer of {path}: {e}") from e
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
            for k, v in meta.items() if k != b"ARROW:schema"}
