"""Which files a table's metadata references, and which files exist under its location.

Expiry and orphan removal both come down to one set difference: files that exist (or that
expired snapshots referenced) minus files some retained snapshot or metadata version still
references. Both sides are compared as canonical paths (``canonical``): PyIceberg writes
local paths as ``file:///...`` URIs and S3 paths as ``s3://``, ``s3a://`` or ``s3n://``;
listings give plain paths and ``s3://`` URIs.

References are counted conservatively: every entry of every manifest of a retained snapshot,
also the ``DELETED`` ones (a file a retained snapshot deleted was live in its parent), every
manifest list, every metadata.json in the metadata log, statistics files, and the CDC
tombstones file the table names (``core.write.tombstones``). Never deleting
a referenced file is the one rule that matters; an unreferenced file kept a while is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from ..write.tombstones import TOMBSTONES_PROP

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import ManifestFile
    from pyiceberg.table.metadata import TableMetadata


@dataclass(frozen=True)
class FileInfo:
    """One listed file: ``path`` as the table's FileIO deletes it, size, modification time (epoch s)."""

    path: str
    size: int
    modified: float


# Lists every file under a location (recursively); the adapters provide it (local FS, S3).
Lister = Callable[[str], Iterable[FileInfo]]


def canonical(path: str) -> str:
    """One spelling per file: ``file:`` URIs become plain paths, ``s3a``/``s3n`` become ``s3``."""
    if path.startswith("file:"):
        return unquote(urlparse(path).path)
    for scheme in ("s3a://", "s3n://"):
        if path.startswith(scheme):
            return "s3://" + path[len(scheme):]
    return path


@dataclass
class Reach:
    """The files a set of snapshots reaches, by kind (canonical path -> size when known)."""

    manifest_lists: dict[str, int] = field(default_factory=dict)
    manifests: dict[str, int] = field(default_factory=dict)
    data: dict[str, int] = field(default_factory=dict)  # data and delete files

    def all(self) -> dict[str, int]:
        return {**self.manifest_lists, **self.manifests, **self.data}


class ManifestReader:
    """Reads manifest lists and manifests once per path (snapshots share most manifests)."""

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self._entries: dict[str, list[tuple[str, int]]] = {}

    def files(self, manifest: ManifestFile) -> list[tuple[str, int]]:
        path = manifest.manifest_path
        if path not in self._entries:
            self._entries[path] = [(e.data_file.file_path, int(e.data_file.file_size_in_bytes))
                                   for e in manifest.fetch_manifest_entry(self.io, discard_deleted=False)]
        return self._entries[path]


def reach(metadata: TableMetadata, snapshot_ids: Iterable[int], reader: ManifestReader) -> Reach:
    """Every manifest list, manifest and data/delete file the given snapshots reference."""
    out = Reach()
    for sid in snapshot_ids:
        snap = metadata.snapshot_by_id(sid)
        if snap is None:
            continue
        out.manifest_lists[canonical(snap.manifest_list)] = 0
        for m in snap.manifests(reader.io):
            key = canonical(m.manifest_path)
            if key in out.manifests:
                continue
            out.manifests[key] = int(m.manifest_length)
            for path, size in reader.files(m):
                out.data[canonical(path)] = size
    return out


def metadata_files(metadata: TableMetadata, metadata_location: str | None) -> set[str]:
    """The current metadata.json, those in the metadata log, statistics files and tombstones."""
    paths = {canonical(e.metadata_file) for e in metadata.metadata_log}
    if metadata_location:
        paths.add(canonical(metadata_location))
    paths |= {canonical(s.statistics_path) for s in metadata.statistics}
    paths |= {canonical(s.statistics_path) for s in metadata.partition_statistics}
    tombstones = metadata.properties.get(TOMBSTONES_PROP)
    if tombstones:
        paths.add(canonical(tombstones))
    return paths


def referenced(metadata: TableMetadata, metadata_location: str | None, reader: ManifestReader) -> set[str]:
    """Every file the table's metadata references: retained snapshots plus metadata files."""
    return set(reach(metadata, [s.snapshot_id for s in metadata.snapshots], reader).all()) | \
        metadata_files(metadata, metadata_location)
