"""Replace tables: each manifest lakeroute writes says which objects its files can hold, so
replacing one object reads only the manifests that may list it.

Replacing an object removes the live data files whose bounds on the object column
(``_lakeroute_object``, kept with full metrics) may hold its name. Finding them used to read
every manifest of the snapshot: ~3 ms each in PyIceberg's Avro decoder, 16 manifests at 1,000
objects, so the time grew with the table. A manifest lakeroute writes for a table with that
column now carries, in its Avro header's key-value metadata, the union of its files' bounds
on the column (``RANGE_KEY``: ``[lowest, highest]`` as JSON). A manifest whose range holds
none of the names being replaced cannot list a file that does: its header alone is read
(the first bytes of the file), its entries are not decoded, and the snapshot keeps it as it
is. Manifests are immutable, so a header is true for as long as the manifest is listed.

A manifest that lists no live file (only entries a snapshot deleted: its counts in the
manifest list say so) is not read either. Always read in full: a manifest without the key
(written by another engine, or before this), one with a file that has no bounds on the column
(then no key is written), and every manifest of a snapshot that has delete files (their pairing
with data files needs every data file). Manifests merged by a merge-append get their range too
(``merge_labelled``: PyIceberg's merge, the range computed before the merged manifest is written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..routes import OBJECT_COLUMN
from .file_bounds import bounds_reader, may_hold

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile, ManifestFile, ManifestWriter
    from pyiceberg.table.metadata import TableMetadata

RANGE_KEY = "lakeroute.object-range"
HEADER_BYTES = 64 * 1024  # read first; a header past it (a very wide schema) reads the whole file


def range_of(files: Iterable[DataFile], bounds: Callable[[DataFile], tuple[Any, Any] | None]) -> str | None:
    """The JSON ``[lowest, highest]`` of the files' object bounds; None when one has none."""
    lo: str | None = None
    hi: str | None = None
    for f in files:
        rng = bounds(f)
        if rng is None or not isinstance(rng[0], str) or not isinstance(rng[1], str):
            return None
        lo = rng[0] if lo is None or rng[0] < lo else lo
        hi = rng[1] if hi is None or rng[1] > hi else hi
    return None if lo is None or hi is None else json.dumps([lo, hi])


def object_bounds(metadata: TableMetadata) -> Callable[[DataFile], tuple[Any, Any] | None] | None:
    """The object column's bounds reader, when the table has that column."""
    if OBJECT_COLUMN not in {f.name for f in metadata.schema().fields}:
        return None
    return bounds_reader(metadata, OBJECT_COLUMN)


def label(writer: ManifestWriter, files: list[DataFile],
          bounds: Callable[[DataFile], tuple[Any, Any] | None] | None) -> ManifestWriter:
    """``writer`` (not yet entered), its header carrying the range of ``files`` (all it will list)."""
    value = range_of(files, bounds) if bounds is not None and files else None
    if value is None:
        return writer
    from pyiceberg.avro.file import AvroOutputFile
    from pyiceberg.manifest import DEFAULT_READ_VERSION, ManifestEntry

    def new_writer() -> AvroOutputFile[ManifestEntry]:
        return AvroOutputFile[ManifestEntry](
            output_file=writer._output_file, file_schema=writer._with_partition(writer.version),
            record_schema=writer._with_partition(DEFAULT_READ_VERSION), schema_name="manifest_entry",
            metadata={**writer._meta, RANGE_KEY: value})

    writer.new_writer = new_writer  # type: ignore[method-assign]
    return writer


def header_range(io: FileIO, manifest: ManifestFile) -> tuple[str, str] | None:
    """The range a manifest's header gives, None when it gives none (or cannot be read)."""
    try:
        with io.new_input(manifest.manifest_path).open() as stream:
            data = stream.read(HEADER_BYTES)
            meta = _header(data)
            if meta is None:
                data += stream.read()
                meta = _header(data)
    except Exception:  # noqa: BLE001 - unreadable here: read in full, where errors are the commit's
        return None
    raw = (meta or {}).get(RANGE_KEY)
    if raw is None:
        return None
    try:
        lo, hi = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return (lo, hi) if isinstance(lo, str) and isinstance(hi, str) else None


def _header(data: bytes) -> dict[str, str] | None:
    """An Avro object container file's metadata map (None: ``data`` ends before it does)."""
    if data[:4] != b"Obj\x01":
        return {}
    pos = 4
    meta: dict[str, str] = {}

    def long() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(data):
                raise IndexError
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    def blob() -> bytes:
        nonlocal pos
        n = long()
        if n < 0 or pos + n > len(data):
            raise IndexError
        pos += n
        return data[pos - n:pos]

    try:
        while True:
            count = long()
            if count == 0:
                return meta
            if count < 0:
                count = -count
                long()  # the block's size in bytes
            for _ in range(count):
                key = blob().decode("utf-8", "replace")
                meta[key] = blob().decode("utf-8", "replace")
    except IndexError:
        return None


def unlisting(metadata: TableMetadata, io: FileIO, names: list[str]) -> set[str]:
    """The current snapshot's data manifests whose header range holds none of ``names``
    (sorted): they list no file of those objects. Empty when the snapshot has delete files."""
    from pyiceberg.manifest import ManifestContent
    from pyiceberg.utils.concurrent import ExecutorFactory

    snapshot = metadata.current_snapshot()
    if snapshot is None or not names or object_bounds(metadata) is None:
        return set()
    manifests = snapshot.manifests(io)
    if any(m.content != ManifestContent.DATA for m in manifests):
        return set()
    # Lists no live file at all (only the entries a snapshot deleted): nothing to read.
    empty = {m.manifest_path for m in manifests if m.added_files_count == 0 and m.existing_files_count == 0}
    rest = [m for m in manifests if m.manifest_path not in empty]
    ranges = ExecutorFactory.get_or_create().map(lambda m: header_range(io, m), rest)
    return empty | {m.manifest_path for m, rng in zip(rest, ranges, strict=True)
                    if rng is not None and not may_hold(names, rng)}


def merge_labelled(producer: Any, manifests: list[ManifestFile],
                   bounds: Callable[[DataFile], tuple[Any, Any] | None]) -> list[ManifestFile]:
    """A merge-append's ``_process_manifests`` (PyIceberg's merge of small data manifests),
    each merged manifest carrying the range of the files it lists."""
    from pyiceberg.manifest import ManifestContent, ManifestEntryStatus
    from pyiceberg.table.update.snapshot import _ManifestMergeManager

    class Labelled(_ManifestMergeManager[Any]):
        def _create_manifest(self, spec_id: int, manifest_bin: list[ManifestFile]) -> ManifestFile:
            rows = [e for m in manifest_bin for e in producer.fetch_manifest_entry(manifest=m, discard_deleted=False)]
            mine = producer.snapshot_id
            kept = [e for e in rows if e.status != ManifestEntryStatus.DELETED or e.snapshot_id == mine]
            live = [e.data_file for e in kept if e.status != ManifestEntryStatus.DELETED]
            with label(producer.new_manifest_writer(spec=producer.spec(spec_id)), live, bounds) as writer:
                for e in kept:  # as PyIceberg's: this snapshot's deletes and adds as such, the rest existing
                    if e.status == ManifestEntryStatus.DELETED:
                        writer.delete(e)
                    elif e.status == ManifestEntryStatus.ADDED and e.snapshot_id == mine:
                        writer.add(e)
                    else:
                        writer.existing(e)
            return writer.to_manifest_file()

    data = [m for m in manifests if m.content == ManifestContent.DATA]
    deletes = [m for m in manifests if m.content == ManifestContent.DELETES]
    manager = Labelled(target_size_bytes=producer._target_size_bytes, min_count_to_merge=producer._min_count_to_merge,
                       merge_enabled=producer._merge_enabled, snapshot_producer=producer)
    return manager.merge_manifests(data) + deletes
