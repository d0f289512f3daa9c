"""Local objects: ``landing/<bucket>/<key>`` as files, and the local quarantine.

The version of a local object is the sha256 of exactly the bytes DuckDB reads: the file is
first hard-linked (a copy when the scratch folder is on another file system) into a private
scratch path, the hash is taken from that link, and DuckDB reads the link. A file *replaced*
while it is ingested (written elsewhere and renamed over, as most tools do) leaves the link
on the old bytes; a file *rewritten in place* changes the linked inode too, which ``verify``
detects after the read (size or mtime changed) and fails the object for a retry, so a
version is never recorded under another content's hash.

An *upload* (``SourceObject.upload``, what key-oriented modes record) is the content hash
plus the file's modification time in ns: writing, copying or touching the file again is a
new upload, reading it again is not. A copy that keeps an earlier modification time
(``cp -p``, ``rsync -t``) of identical content is the same upload as the one it copies.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.errors import ObjectError, TransientError
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
from ..core.objects import SourceObject, parquet_metadata
from ..core.read.scratch import ScratchDir
from ..core.routes import format_from_key

HASH_CHUNK = 4 * 1024 * 1024



def safe_relpath(key: str) -> PurePosixPath:
    """A key as a relative path that cannot escape its folder (keys are untrusted)."""
    parts = [p if p not in ("", ".", "..") else f"%{p.encode().hex() or 'empty'}"
             for p in key.split("/")]
    return PurePosixPath(*parts) if parts else PurePosixPath("%empty")


class LocalObjectSource:
    """``landing/<bucket>/<key>``; the version is the content hash of the bytes read."""

    def __init__(self, landing: Path, scratch: Path | None = None) -> None:
        self.landing = landing
        # (bucket, key) -> file outside the landing folder (`ingest FILE --bucket B`)
        self.overrides: dict[tuple[str, str], Path] = {}
        root = scratch if scratch is not None else Path(tempfile.gettempdir()) / "lakeroute-local"
        self._scratch_root = str(root)
        self._scratch: ScratchDir | None = None
        self._signatures: dict[str, tuple[int, int, int]] = {}  # scratch path -> (inode, size, mtime)
        self._landing: tuple[Path | None, Path] = (None, landing)  # (landing, its resolved path)

    @property
    def scratch(self) -> ScratchDir:
        if self._scratch is None or self._scratch.dir != os.path.join(self._scratch_root, str(os.getpid())):
            self._scratch = ScratchDir(self._scratch_root)
        return self._scratch

    def _landing_resolved(self) -> Path:
        """The landing folder's real path, resolved once (a root re-pointed meanwhile makes its
        files look outside it: refused, never read from elsewhere)."""
        if self._landing[0] != self.landing:
            self._landing = (self.landing, self.landing.resolve())
        return self._landing[1]

    def path_of(self, bucket: str, key: str) -> Path:
        override = self.overrides.get((bucket, key))
        return override if override is not None else self.landing / bucket / safe_relpath(key)

    def ref_of(self, path: Path) -> tuple[str, str] | None:
        """(bucket, key) of a file under the landing dir, else None."""
        try:
            rel = path.resolve().relative_to(self.landing.resolve())
        except ValueError:
            return None
        if len(rel.parts) < 2:
            return None
        return rel.parts[0], "/".join(rel.parts[1:])

    def resolve(self, bucket: str, key: str, version: str | None = None) -> SourceObject:
        path = self.path_of(bucket, key)
        if (bucket, key) not in self.overrides:
            try:
                inside = path.resolve().is_relative_to(self._landing_resolved())
            except (OSError, RuntimeError) as e:  # a symlink loop
                raise ObjectError("read", f"cannot read {path}: {e}") from e
            if not inside:
                raise ObjectError("read", f"{path} is a symlink that leaves the landing folder "
                                  f"{self.landing}: not read")
        return self.resolve_path(bucket, key, path)

    def resolve_path(self, bucket: str, key: str, path: Path) -> SourceObject:
        private = self.scratch.new_path(key)
        try:
            try:
                os.link(path, private)
                digest, st = _hash_file(private)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
                digest, st = _copy_and_hash(path, private)
        except OSError as e:
            self.scratch.remove(private)
            raise ObjectError("read", f"cannot read {path}: {e.strerror or e}") from e
        except BaseException:
            self.scratch.remove(private)
            raise
        self._signatures[private] = (st.st_ino, st.st_size, st.st_mtime_ns)
        return SourceObject(bucket=bucket, key=key, path=private, version=digest, size=st.st_size,
                            upload=upload_stamp(st.st_mtime_ns), uploaded_ms=st.st_mtime_ns // 1_000_000)

    def verify(self, obj: SourceObject) -> None:
        """The bytes read are the bytes hashed: the linked file was not rewritten meanwhile."""
        wanted = self._signatures.get(obj.path)
        if wanted is None:
            return
        try:
            st = os.stat(obj.path)
        except OSError as e:
            raise TransientError(f"{obj.bucket}/{obj.key}: vanished while being read ({e.strerror})") from e
        if (st.st_ino, st.st_size, st.st_mtime_ns) != wanted:
            raise TransientError(f"{obj.bucket}/{obj.key}: rewritten while being read; it will "
                                 "be read again once it is complete")

    def metadata(self, obj: SourceObject) -> Mapping[str, str]:
        try:
            is_parquet = format_from_key(obj.key) == "parquet"
        except ObjectError:
            is_parquet = False
        return {**obj.metadata, **(parquet_metadata(obj.path) if is_parquet else {})}

    def release(self, obj: SourceObject) -> None:
        self._signatures.pop(obj.path, None)
        self.scratch.remove(obj.path)


def _hash_file(path: str) -> tuple[str, os.stat_result]:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return "sha256:" + digest, st


def _copy_and_hash(src: Path, dest: str) -> tuple[str, os.stat_result]:
    """One pass: what is hashed is what is written to the private copy. The copy keeps the
    original's modification time: it is the upload's."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        original = os.fstat(fin.fileno())
        while chunk := fin.read(HASH_CHUNK):
            h.update(chunk)
            fout.write(chunk)
    os.utime(dest, ns=(original.st_atime_ns, original.st_mtime_ns))
    return "sha256:" + h.hexdigest(), os.stat(dest)


def upload_stamp(mtime_ns: int) -> str:
    """A modification time as the upload part of a ledger id: UTC, to the nanosecond."""
    seconds, ns = divmod(mtime_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns:09d}Z"


class LocalQuarantine:
    """``<root>/<entry>/object<.ext>`` beside ``<entry>/error.json`` (``core.quarantine`` layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, bucket: str, key: str, version: str | None) -> Path:
        return self.root / entry_dir(bucket, key, version, max_bytes=3800, max_segment=250)

    def put(self, bucket: str, key: str, obj: SourceObject | None, error: ObjectError,
            table: str | None = None) -> str:
        entry = self.location(bucket, key, obj.version if obj else None)
        entry.mkdir(parents=True, exist_ok=True)
        record_path = entry / RECORD_NAME
        previous: dict[str, Any] | None = None
        if record_path.exists():
            try:
                previous = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
        copy = entry / object_name(key)
        copied: bool | None = copy.exists() or None
        if obj is not None and not copy.exists() and os.path.exists(obj.path):
            tmp = entry / (copy.name + ".partial")
            # copy2 keeps the modification time: a replay of the copy is the same upload.
            shutil.copy2(obj.path, tmp)
            os.replace(tmp, copy)
            copied = True
        elif obj is not None and not copy.exists():
            copied = False
        record = error_record(bucket, key, obj, error, previous, table=table, copied=copied)
        record["object_copy"] = str(copy) if copied else None
        tmp = entry / (RECORD_NAME + ".partial")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8",
                       errors="backslashreplace")
        os.replace(tmp, record_path)
        return str(entry)

    def put_rejects(self, bucket: str, key: str, obj: SourceObject, route: str, table: str, data: bytes,
                    count: int) -> str:
        """The rejected rows of one object version for one table (``core.rejects``), replaced
        whole on a retry of the same version; returns the file's path."""
        entry = self.location(bucket, key, obj.version)
        entry.mkdir(parents=True, exist_ok=True)
        path = entry / rejects_name(table)
        tmp = entry / (path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        summary = entry / REJECTS_SUMMARY
        try:
            previous = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else None
        except (OSError, ValueError):
            previous = None
        tmp = entry / (REJECTS_SUMMARY + ".partial")
        tmp.write_text(json.dumps(rejects_record(bucket, key, obj, route, table, count, str(path), previous),
                                  indent=2, ensure_ascii=False) + "\n", encoding="utf-8", errors="backslashreplace")
        os.replace(tmp, summary)
        return str(path)

    # -- working with the quarantine (`lakeroute quarantine`, `lakeroute replay`)

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """(entry folder, record) of every quarantined object version, oldest first."""
        out = []
        for record_path in self.root.rglob(RECORD_NAME) if self.root.is_dir() else ():
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "key" in record:
                out.append((record_path.parent, record))
        return sorted(out, key=lambda e: str(e[1].get("quarantined_at", "")))

    def versions(self, bucket: str, key: str) -> list[tuple[Path, dict[str, Any]]]:
        """(entry folder, record) of every quarantined version of one key."""
        folder = self.location(bucket, key, ANY_VERSION).parent
        out = []
        for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
            record = self._read(entry / RECORD_NAME) if is_entry_name(entry.name) else None
            if record is not None:
                out.append((entry, record))
        return out

    def close(self, entry: Path, state: str, reason: str, **extra: str) -> dict[str, Any]:
        """Close one entry (resolved, superseded, dismissed); it stays as history until purged."""
        record = self._read(entry / RECORD_NAME)
        if record is None:
            raise OSError(f"{entry / RECORD_NAME}: no readable quarantine record")
        new = closed(record, state, reason, **extra)
        self._write(entry, new)
        return new

    def settle(self, landed: list[Landed]) -> list[dict[str, Any]]:
        """Close the entries the landed versions close (``core.ledger.quarantine.closings``);
        returns the closed records."""
        out = []
        for item in landed:
            for entry, record in closings(item, self.versions(item.bucket, item.key)):
                self._write(entry, record)
                out.append(record)
        return out

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "key" in record else None

    @staticmethod
    def _write(entry: Path, record: dict[str, Any]) -> None:
        tmp = entry / (RECORD_NAME + ".partial")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8",
                       errors="backslashreplace")
        os.replace(tmp, entry / RECORD_NAME)
