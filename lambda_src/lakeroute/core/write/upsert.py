"""Mode upsert: merge a batch into the table by key, copy-on-write (or merge-on-read), pruned.

1. The batch's rows (every object's local scratch file, in commit order) are reduced to one
   winner per key: the greatest ``order_by`` (nulls lowest), ties and no ``order_by`` going
   to the later row. A winner may be a delete (the CDC operation column).
2. Only the live data files that can hold a winner's key are read: files are pruned by the
   key columns' bounds in the manifests and, when the partition is a function of the key
   (``bucket(64, id)`` with key ``id``), by partition. Every file an upsert writes is sorted
   by the key and cut by key range (``core.write.cluster``), so the bounds prune: a batch of
   keys in a narrow range reads only the files whose ranges hold them.
3. Those files are read a group at a time (memory: the batch plus a few files), each with
   the delete files of other writers that apply to it (``core.write.deletes``). A table row
   whose key has a winner is dropped when the winner is at least as new; otherwise the table
   row stays and the winner is dropped (a late file never overwrites a newer row). Files
   that lose rows are rewritten without them (and delete files that applied only to them are
   removed); the rest stay untouched.
4. The surviving winners that are not deletes are added. One snapshot holds all of it.

Merge-on-read replaces step 3: only the key columns of those files are read, and the rows
lost are deleted by position (``core.write.merge_on_read``); the winners to add are written as
new files. It is used when ``write.merge.mode``/``write.update.mode`` = ``merge-on-read`` is
declared (the route's ``target.properties`` or the table's own), never when ``copy-on-write``
is, and otherwise chosen per commit (``choose_mode``): when copy-on-write would rewrite many
more rows than the batch holds, on format-version 2 tables. The choice is recorded in the
snapshot summary (``lakeroute.upsert-mode``, ``lakeroute.upsert-mode-reason``).

With CDC deletes and ``order_by``, winners older than their key's tombstone are dropped
before step 2, and the set of tombstones after the commit is named in the same snapshot's
transaction (``core.write.tombstones``).

The key joins run in DuckDB over Arrow (zero copy); only row positions come back, so the
rows themselves keep their exact Arrow types.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..sql_text import quote_ident
from . import tombstones
from .attribution import COUNTS, KEEP, ORDER, props, upsert_counts
from .cluster import Background, by_lower_bound, ensure_key_order, in_range, rewrite_clustered
from .deletes import live_files
from .merge_on_read import MERGE_ON_READ, choose_mode, declared_mode, mark_deleted
from .modes import Changes, bounds_reader, drop_dangling, may_hold
from .staging import DELETE_FLAG, align

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from ..routes import Target
    from .staging import Staged

log = logging.getLogger("lakeroute.commit")

POS = "__lakeroute_pos"
WIN = "__lakeroute_win"


def plan_upsert(txn: Transaction, io: FileIO, todo: list[Staged], target: Target, changes: Changes) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    keys, order_by = list(target.key or []), target.order_by
    metadata = txn.table_metadata
    batch, sizes = load_batch(todo, metadata.schema().as_arrow())
    days = tombstones.kept_for(target)
    con = duckdb.connect()
    try:
        everyone = positions(con, batch.num_rows)
        winners = _winners(con, batch, keys, order_by, everyone)
        is_delete = winners.column(DELETE_FLAG)
        rows = winners.drop_columns([DELETE_FLAG])
        win = positions(con, rows.num_rows)
        w = pa.table({**{k: joinable(rows.column(k)) for k in keys},
                      **({order_by: joinable(rows.column(order_by))} if order_by else {}),
                      WIN: win})
        every_winner = w  # before tombstones filter it: the counts see every winner
        beaten: list[pa.Array] = []  # positions of winners an existing newer row (or tombstone) beats
        tomb, now_ms, tombstoned = None, int(time.time() * 1000), 0
        if days is not None and order_by is not None:
            tomb = tombstones.read(txn, io, keys, order_by, days, now_ms)
            if tomb.rows.num_rows:
                dead = _older_than(con, w, tomb.rows, keys, order_by)
                beaten.append(dead)
                tombstoned = len(dead)
                w = w.filter(pc.invert(pc.is_in(w.column(WIN), value_set=dead)))
        con.register("w", w)
        first_keys = w.column(keys[0]).combine_chunks()
        on = " AND ".join(f"f.{quote_ident(k)} = w.{quote_ident(k)}" for k in keys)
        if order_by:
            o = quote_ident(order_by)
            wins = f"(f.{o} IS NULL OR (w.{o} IS NOT NULL AND w.{o} >= f.{o}))"
        else:
            wins = "TRUE"
        seen: list[pa.Table] = []  # every live row that shares a winner's key (for the counts)

        def drop(tables: list[pa.Table]) -> list[pa.Array]:
            """One join per group of files: the rows each file loses to a winner."""
            cols = [*keys, *([order_by] if order_by else [])]
            parts = [pa.table({c: joinable(t.column(c)) for c in cols}) for t in tables]
            f = pa.concat_tables(parts).combine_chunks()
            f = f.append_column(POS, positions(con, f.num_rows))
            # Only rows whose first key is a winner's can join: a hash lookup narrows the join
            # to them (a full-table join costs ~4x more on a table of millions of rows).
            con.register("f", f.filter(pc.is_in(f.column(keys[0]), value_set=first_keys)))
            # Only quoted column names from the route file (validated identifiers) are in the text.
            theirs = f", f.{quote_ident(order_by)} AS {ORDER}" if order_by else ""
            hits = con.execute(f"SELECT f.{POS}, w.{WIN}, {wins} AS wins{theirs} FROM f JOIN w ON {on}"  # noqa: S608
                               ).fetch_arrow_table()
            con.unregister("f")
            seen.append(hits.drop_columns([POS]))
            won = hits.column("wins")
            beaten.append(hits.column(WIN).filter(pc.invert(won)).combine_chunks())
            mask = pc.is_in(f.column(POS), value_set=hits.column(POS).filter(won).combine_chunks())
            out, offset = [], 0
            for t in tables:
                out.append(mask.slice(offset, t.num_rows))
                offset += t.num_rows
            return out

        ensure_key_order(txn, keys)
        live = live_files(metadata, io, changes.entries)
        files = by_lower_bound(metadata, candidates(metadata, live.data, rows, keys), keys[0])
        not_delete = pc.invert(is_delete)
        taken = pa.chunked_array([pa.nulls(rows.num_rows, pa.bool_()).fill_null(False)])

        def pending() -> pa.ChunkedArray:
            """The winners still to add: not beaten so far, not deletes, not written yet."""
            stale = pa.concat_arrays(beaten) if beaten else pa.array([], pa.int64())
            return pc.and_(pc.and_(not_delete, pc.invert(pc.is_in(win, value_set=stale))), pc.invert(taken))

        def settled(upto: DataFile | None) -> pa.Table:
            """The winners to add whose fate is known: pending, and (with ``upto``) keyed below
            that file's lower bound (no later file can hold them)."""
            nonlocal taken
            keep = pending()
            if upto is not None:
                below = in_range(metadata, upto, rows.column(keys[0]), keys[0], below=True)
                if below is None:
                    return rows.schema.empty_table()
                keep = pc.and_(keep, below)
            taken = pc.or_(taken, keep)
            return rows.filter(keep)

        def lands_in(f: DataFile) -> bool:
            """Whether a new key falls within the file's range (after its group's join)."""
            within = in_range(metadata, f, rows.column(keys[0]), keys[0])
            return within is not None and bool(pc.any(pc.and_(pending(), within)).as_py())

        writer = Background(txn, io, keys, changes)
        mode, why = choose_mode(metadata, declared_mode(txn, target.properties), files, rows.num_rows,
                                target.properties)
        mor = mode == MERGE_ON_READ
        log.info("upsert into %s: %s (%s)", target.table, mode, why)
        delete_files = 0
        try:
            if mor:  # rows lost are deleted by position; the new rows go into new files
                types = {c: joinable(rows.column(c)).type for c in [*keys, *([order_by] if order_by else [])]}
                replaced, delete_files = mark_deleted(txn, io, live, files, changes, drop, types,
                                                      lambda n: positions(con, n))
                writer.submit(settled(None), [])
            else:
                replaced = rewrite_clustered(txn, io, live, files, changes, drop, writer, settled, lands_in)
        finally:
            writer.close()
        stale = pa.concat_arrays(beaten) if beaten else pa.array([], pa.int64())
        won = pc.invert(pc.is_in(win, value_set=stale))
        keep = pc.and_(not_delete, won)
        inserts = rows.filter(keep)
        try:
            each, net = upsert_counts(
                con, pa.table({c: joinable(batch.column(c)) for c in batch.column_names}), sizes, everyone,
                pa.table({**{k: every_winner.column(k) for k in keys}, WIN: win, DELETE_FLAG: is_delete, KEEP: keep}),
                _hits(seen, rows, order_by), keys, order_by, WIN, POS, DELETE_FLAG)
        except Exception as e:  # counting is bookkeeping: it never fails the merge (the counts read 0)
            log.error("upsert into %s: could not count what each object did: %s: %s", target.table,
                      type(e).__name__, e)
            each, net = [dict.fromkeys(COUNTS, 0) for _ in sizes], {}
        for s, counts in zip(sorted(todo, key=lambda s: s.order), each, strict=True):
            s.counts = counts
        changes.stats = {
            "lakeroute.upsert-keys": str(rows.num_rows),
            "lakeroute.upsert-written": str(inserts.num_rows),
            "lakeroute.upsert-replaced-rows": str(replaced),
            "lakeroute.upsert-stale-rows": str(len(pc.unique(stale))),
            "lakeroute.upsert-deletes": str(pc.sum(is_delete).as_py() or 0),
            "lakeroute.upsert-files-read": str(len(files)),
            "lakeroute.upsert-mode": mode,
            "lakeroute.upsert-mode-reason": why,
            **({"lakeroute.upsert-delete-files": str(delete_files)} if mor else {}),
            **(props(net) if net else {}),
        }
        if tomb is not None and order_by is not None:
            deleted = rows.filter(pc.and_(pc.and_(is_delete, won), pc.is_valid(rows.column(order_by))))
            added = deleted.select([*keys, order_by]).append_column(
                tombstones.DELETED_AT, pa.array([now_ms] * deleted.num_rows, pa.int64()))
            changes.stats |= tombstones.replace(con, txn, io, tomb, added, inserts, keys)
            changes.stats["lakeroute.upsert-tombstoned-rows"] = str(tombstoned)
        drop_dangling(live, changes)
    finally:
        con.close()


def _older_than(con: duckdb.DuckDBPyConnection, w: pa.Table, dead: pa.Table, keys: list[str],
                order_by: str) -> pa.Array:
    """Positions of winners older (by ``order_by``; null is oldest) than their key's tombstone."""
    import pyarrow as pa

    con.register("wt", w)
    con.register("t", pa.table({c: joinable(dead.column(c)) for c in dead.column_names}))
    on = " AND ".join(f"t.{quote_ident(k)} = wt.{quote_ident(k)}" for k in keys)
    o = quote_ident(order_by)
    try:  # quoted route columns only in the text
        return con.execute(f"SELECT wt.{WIN} FROM wt JOIN t ON {on} WHERE wt.{o} IS NULL OR wt.{o} < t.{o}"  # noqa: S608
                           ).fetch_arrow_table().column(0).combine_chunks()
    finally:
        con.unregister("wt")
        con.unregister("t")


def load_batch(todo: list[Staged], schema: pa.Schema) -> tuple[pa.Table, list[int]]:
    """The batch's staged rows in commit order, aligned to the table's current schema, and
    how many rows each object has in it (in that order)."""
    import pyarrow as pa

    out = pa.schema([*schema, pa.field(DELETE_FLAG, pa.bool_(), nullable=False)])
    parts: list[pa.RecordBatch] = []
    sizes: list[int] = []
    for s in sorted(todo, key=lambda s: s.order):
        before = len(parts)
        for path in s.local_files:
            with pa.OSFile(path, "rb") as src:
                for b in pa.ipc.open_file(src).read_all().to_batches():
                    flag = b.column(DELETE_FLAG)
                    data = align(b.drop_columns([DELETE_FLAG]), schema, s.route)
                    parts.append(pa.RecordBatch.from_arrays([*data.columns, flag], schema=out))
        sizes.append(sum(b.num_rows for b in parts[before:]))
    return pa.Table.from_batches(parts, schema=out), sizes


def _hits(seen: list[pa.Table], rows: pa.Table, order_by: str | None) -> pa.Table:
    """The live rows that share a winner's key (win, wins, their order_by), typed when none."""
    import pyarrow as pa

    if seen:
        return pa.concat_tables(seen)
    fields = [pa.field(WIN, pa.int64()), pa.field("wins", pa.bool_())]
    if order_by:
        fields.append(pa.field(ORDER, rows.schema.field(order_by).type))
    return pa.schema(fields).empty_table()


def _winners(con: duckdb.DuckDBPyConnection, batch: pa.Table, keys: list[str],
             order_by: str | None, everyone: pa.Array) -> pa.Table:
    import pyarrow as pa

    b = pa.table({**{k: joinable(batch.column(k)) for k in keys},
                  **({order_by: joinable(batch.column(order_by))} if order_by else {}),
                  POS: everyone})
    con.register("b", b)
    by = ", ".join(quote_ident(k) for k in keys)
    newest = f"{quote_ident(order_by)} DESC NULLS LAST, " if order_by else ""
    window = f"PARTITION BY {by} ORDER BY {newest}{POS} DESC"  # quoted route columns only
    pos = con.execute(f"SELECT {POS} FROM b QUALIFY row_number() OVER ({window}) = 1 ORDER BY {POS}"  # noqa: S608
                      ).fetch_arrow_table().column(POS)
    con.unregister("b")
    return batch.take(pos)


def joinable(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A key column as DuckDB can join it: an extension type (``uuid``) as its storage (16
    bytes, a BLOB to DuckDB, which refuses Arrow's UUID in joins: "Unimplemented type UUID for
    Arrow Filter Pushdown"). Equal UUIDs have equal bytes, so matches are the same."""
    import pyarrow as pa

    if isinstance(col.type, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in col.chunks], type=col.type.storage_type)
    return col


def positions(con: duckdb.DuckDBPyConnection, n: int) -> pa.Array:
    """0..n-1 (DuckDB's range: ~100x faster than pa.array(range(n)); no numpy here), on the
    merge's own connection: a new database per call costs more than the range."""
    return con.execute("SELECT range AS p FROM range(?)", [n]).fetch_arrow_table().column(0).combine_chunks()


def candidates(metadata: TableMetadata, files: list[DataFile], rows: pa.Table,
               keys: list[str]) -> list[DataFile]:
    """The live files that may hold one of the rows' keys: by partition, then by key bounds."""
    schema = metadata.schema()
    spec = metadata.spec()
    in_partitions = None
    names = {pf.source_id: schema.find_column_name(pf.source_id) for pf in spec.fields}
    if not spec.is_unpartitioned() and rows.num_rows and all(n in keys for n in names.values()):
        from pyiceberg.io.pyarrow import _determine_partitions

        in_partitions = {p.partition_key.partition for p in _determine_partitions(spec, schema, rows)}
    values: dict[str, list[Any]] = {}
    for k in keys:
        decoded = bound_values(schema.find_field(k).field_type, rows.column(k))
        if decoded is not None:
            values[k] = decoded
    readers = {k: bounds_reader(metadata, k) for k in values}
    out = []
    for f in files:
        if in_partitions is not None and f.spec_id == spec.spec_id and f.partition not in in_partitions:
            continue
        if all(may_hold(v, readers[k](f)) for k, v in values.items()):
            out.append(f)
    return out


def bound_values(field_type: Any, col: pa.ChunkedArray) -> list[Any] | None:
    """A key column's distinct values as PyIceberg decodes manifest bounds (``from_bytes``:
    days, microseconds, 16 bytes for a uuid), sorted; None for a type that is not compared."""
    import pyarrow as pa
    from pyiceberg.types import DecimalType

    kind = str(field_type)
    if kind in ("int", "long", "string") or isinstance(field_type, DecimalType):
        values = col.to_pylist()
    elif kind == "date":
        values = col.cast(pa.int32()).to_pylist()
    elif kind in ("timestamp", "timestamptz"):
        values = col.cast(pa.int64()).to_pylist()
    elif kind == "uuid":
        values = joinable(col).to_pylist()
    else:
        return None
    return sorted({v for v in values if v is not None})
