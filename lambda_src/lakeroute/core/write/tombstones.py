"""CDC delete tombstones: a delete is remembered, so a late, older change cannot bring its key back.

Mode upsert with ``operation`` and ``order_by`` (``core.write.upsert``): a delete that wins
(no newer row and no newer tombstone for its key) leaves a tombstone, (key, its ``order_by``
value, when it was committed). A batch row older (by ``order_by``) than its key's tombstone
is stale, dropped like a row a newer table row beats; a row at least as new re-inserts the
key and clears the tombstone (ties go to the later row, as everywhere in upsert); a newer
delete replaces it. Deletes whose ``order_by`` is null leave none (null is the oldest: every
row would beat it). A tombstone is forgotten ``operation.tombstone_days`` after its commit: it
no longer counts when read, and the next upsert commit of the table writes the set without it.

Where they live: one Parquet file in the table's metadata folder, named by the table property
``lakeroute.tombstones``. Readers never see tombstones: they are not data files and no
manifest lists them. The set is read from the metadata the commit attempt loaded, and a new
set's file is named in the same transaction as the snapshot; the catalog accepts the commit
only on the base it was planned on, so a concurrent commit (another delete, a compaction)
makes the attempt plan again on the fresh set: no tombstone is lost. The file a commit
replaces is named in ``lakeroute.tombstones.superseded`` and deleted by the next commit that
replaces the set (a writer still reading it stands on a stale base: it plans again); the
files of rejected attempts are orphans, which ``maintain`` removes after its grace period
(it keeps the file the table names).

Memory: the live set is read whole per upsert commit, ~24 bytes a tombstone with one long key
(a million deletes within the retention: ~24 MB of Arrow).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..errors import ConfigError
from ..sql_text import quote_ident
from .staging import delete_files

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from ..routes import Target

log = logging.getLogger("lakeroute.commit")

TOMBSTONES_PROP = "lakeroute.tombstones"
SUPERSEDED_PROP = "lakeroute.tombstones.superseded"
DELETED_AT = "__lakeroute_deleted_at"  # epoch ms of the commit that wrote the tombstone
_POS = "__lakeroute_tpos"
DAY_MS = 86_400_000


def kept_for(target: Target) -> float | None:
    """Days a delete of this target is remembered; None: no tombstones (no CDC deletes, no
    ``order_by``, or ``tombstone_days: 0``)."""
    op = target.operation
    if op is None or target.order_by is None or op.tombstone_days <= 0:
        return None
    return op.tombstone_days


@dataclass
class Tombstones:
    """The live tombstones of one table as a commit attempt loaded them."""

    rows: pa.Table  # key columns, the order_by column, DELETED_AT; in the table's current types
    path: str | None  # the file the table names
    expired: int = 0  # read but past the retention (dropped by the next write)


def schema_of(metadata: TableMetadata, keys: list[str], order_by: str) -> pa.Schema:
    import pyarrow as pa

    arrow = metadata.schema().as_arrow()
    return pa.schema([*(arrow.field(c) for c in [*keys, order_by]), pa.field(DELETED_AT, pa.int64(), False)])


def read(txn: Transaction, io: FileIO, keys: list[str], order_by: str, days: float, now_ms: int) -> Tombstones:
    """The live tombstones the attempt's table names (none when it names no file)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    metadata = txn.table_metadata
    schema = schema_of(metadata, keys, order_by)
    path = metadata.properties.get(TOMBSTONES_PROP)
    if not path:
        return Tombstones(schema.empty_table(), None)
    try:
        with io.new_input(path).open() as f:
            stored = pq.read_table(f)
    except FileNotFoundError as e:
        _missing(txn, path, e)
    if set(stored.schema.names) != set(schema.names):
        # The table's key or order_by changed: these tombstones name keys that no longer exist.
        log.warning("%s: tombstones in %s are for columns %s, not %s; dropped", _name(txn), path,
                    stored.schema.names, schema.names)
        return Tombstones(schema.empty_table(), path, stored.num_rows)
    stored = stored.select(schema.names).cast(schema)
    live = pc.greater_equal(stored.column(DELETED_AT), now_ms - int(days * DAY_MS))
    kept = stored.filter(live)
    return Tombstones(kept, path, stored.num_rows - kept.num_rows)


def _missing(txn: Transaction, path: str, e: FileNotFoundError) -> NoReturn:
    """The file the attempt's table names is gone: replaced by a newer commit (plan again), or
    lost (nothing to retry: say how to recover)."""
    from pyiceberg.exceptions import CommitFailedException

    table = txn._table
    current = table.catalog.load_table(table.name()).metadata.properties.get(TOMBSTONES_PROP)
    if current != path:
        raise CommitFailedException(f"tombstones {path} replaced by a concurrent commit") from e
    raise ConfigError(f"table {_name(txn)}: its CDC tombstones file {path} (table property "
                      f"{TOMBSTONES_PROP}) is missing: restore it, or remove that property to forget "
                      "the deletes it remembered (late older changes may then re-insert their keys)") from e


def _name(txn: Transaction) -> str:
    return ".".join(txn._table.name())


def index(con: duckdb.DuckDBPyConnection, n: int) -> pa.Array:
    """0..n-1, from DuckDB's range (no numpy here; pa.array(range(n)) is ~100x slower)."""
    return con.execute("SELECT range AS p FROM range(?)", [n]).fetch_arrow_table().column(0).combine_chunks()


def positions(con: duckdb.DuckDBPyConnection, rows: pa.Table, of: pa.Table, keys: list[str]) -> pa.Array:
    """Positions in ``rows`` of the rows whose key is among ``of``'s keys."""
    con.register("tomb_rows", rows.select(keys).append_column(_POS, index(con, rows.num_rows)))
    con.register("tomb_of", of.select(keys))
    cols = ", ".join(quote_ident(k) for k in keys)  # route key columns (validated identifiers)
    try:
        return con.execute(f"SELECT {_POS} FROM tomb_rows SEMI JOIN tomb_of USING ({cols})"  # noqa: S608
                           ).fetch_arrow_table().column(0).combine_chunks()
    finally:
        con.unregister("tomb_rows")
        con.unregister("tomb_of")


def replace(con: duckdb.DuckDBPyConnection, txn: Transaction, io: FileIO, old: Tombstones,
            added: pa.Table, cleared: pa.Table, keys: list[str]) -> dict[str, str]:
    """Name the set after this commit in the transaction: ``old`` without the keys of
    ``cleared`` (rows that re-inserted their key) and of ``added`` (newer deletes), plus
    ``added``. Returns the snapshot summary's counts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kept, cleared_n = old.rows, 0
    if old.rows.num_rows and (added.num_rows or cleared.num_rows):
        by_delete = positions(con, old.rows, added, keys)  # a newer delete of a deleted key: replaced
        by_row = positions(con, old.rows, cleared, keys)
        cleared_n = len(by_row)
        gone = pa.concat_arrays([by_delete, by_row.cast(by_delete.type)])
        kept = old.rows.filter(pc.invert(pc.is_in(index(con, old.rows.num_rows), value_set=gone)))
    after = pa.concat_tables([kept, added.select(kept.schema.names).cast(kept.schema)])
    stats = {"lakeroute.tombstones": str(after.num_rows), "lakeroute.tombstones-added": str(added.num_rows),
             "lakeroute.tombstones-cleared": str(cleared_n), "lakeroute.tombstones-expired": str(old.expired)}
    if not (added.num_rows or cleared_n or old.expired):
        return stats  # unchanged: the file stays
    _collect(txn, io)
    if after.num_rows == 0:
        txn.remove_properties(TOMBSTONES_PROP)
    else:
        txn.set_properties({TOMBSTONES_PROP: _write(txn, io, after)})
    if old.path is not None:
        txn.set_properties({SUPERSEDED_PROP: old.path})
    return stats


def _collect(txn: Transaction, io: FileIO) -> None:
    """Delete the file the table's last set replaced (best effort: an orphan at worst)."""
    superseded = txn.table_metadata.properties.get(SUPERSEDED_PROP)
    if superseded and superseded != txn.table_metadata.properties.get(TOMBSTONES_PROP):
        delete_files(io, [superseded])


def _write(txn: Transaction, io: FileIO, rows: pa.Table) -> str:
    import pyarrow.parquet as pq
    from pyiceberg.table.locations import load_location_provider

    metadata = txn.table_metadata
    provider = load_location_provider(metadata.location, metadata.properties)
    path = provider.new_metadata_location(f"lakeroute-tombstones-{uuid.uuid4()}.parquet")
    with io.new_output(path).create(overwrite=True) as f:
        pq.write_table(rows, f, compression="zstd")
    return path
