"""Local objects: ``landing/<bucket>/<key>`` as files (version = content hash), and the local quarantine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ..core.errors import ObjectError
from ..core.objects import SourceObject, error_record, parquet_metadata
from ..core.routes import format_from_key


def content_hash(path: Path) -> str:
    with path.open("rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def safe_relpath(key: str) -> PurePosixPath:
    """A key as a relative path that cannot escape its folder (keys are untrusted)."""
    parts = [p if p not in ("", ".", "..") else f"%{p.encode().hex() or 'empty'}"
             for p in key.split("/")]
    return PurePosixPath(*parts) if parts else PurePosixPath("%empty")


class LocalObjectSource:
    """``landing/<bucket>/<key>``; the version is a content hash."""

    def __init__(self, landing: Path) -> None:
        self.landing = landing
        # (bucket, key) -> file outside the landing folder (`ingest FILE --bucket B`)
        self.overrides: dict[tuple[str, str], Path] = {}

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
        return self.resolve_path(bucket, key, path)

    def resolve_path(self, bucket: str, key: str, path: Path) -> SourceObject:
        try:
            size = path.stat().st_size
            digest = content_hash(path)
        except OSError as e:
            raise ObjectError("read", f"cannot read {path}: {e.strerror}") from e
        return SourceObject(bucket=bucket, key=key, path=str(path.resolve()), version=digest,
                            size=size)

    def metadata(self, obj: SourceObject) -> Mapping[str, str]:
        try:
            is_parquet = format_from_key(obj.key) == "parquet"
        except ObjectError:
            is_parquet = False
        return {**obj.metadata, **(parquet_metadata(obj.path) if is_parquet else {})}

    def release(self, obj: SourceObject) -> None:
        pass


class LocalQuarantine:
    """Copies the object to ``<root>/<bucket>/<key>`` beside ``<key>.error.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, bucket: str, key: str, obj: SourceObject | None, error: ObjectError) -> str:
        dest = self.root / bucket / safe_relpath(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if obj is not None and os.path.exists(obj.path) and not obj.path.startswith("s3://"):
            tmp = dest.with_name(dest.name + ".partial")
            shutil.copyfile(obj.path, tmp)
            os.replace(tmp, dest)
        record = error_record(bucket, key, obj, error)
        err_path = dest.with_name(dest.name + ".error.json")
        err_path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return str(dest)
