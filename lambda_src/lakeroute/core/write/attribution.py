"""What a commit did to its table's rows, per commit and per object.

Per commit (snapshot summary ``lakeroute.added-rows``, ``-updated-rows``, ``-deleted-rows``,
``-stale-rows``): the table's net change. Iceberg's own ``added-records``/``deleted-records``
count the rows of the files a copy-on-write rewrite adds and removes, unchanged rows
included, so they cannot say it.

Per object (``Staged.counts``, then the outcome and the journal): what the object did *as if
the batch's objects had committed one by one in arrival order*, which is how modes order
them (upsert: ``order_by`` first). A file that adds a key and a later file of the same batch
that changes it count one added and one updated row, while the commit's net change is one
added row. ``stale`` (upsert) counts the object's rows that arrived older than the key's row
at that point (in the table or earlier in the batch) and were not written; it is the only
count that adds up across objects to the commit's.

- append: every row added;
- upsert: added (new key), updated (the key had a live row), deleted (a delete operation
  that removed a live row), stale;
- replace: added (the object's rows), deleted (the rows of the key's previous version);
- overwrite: added (its rows), deleted (the rows that were live in its partitions, or in the
  table, before it).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..sql_text import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.manifest import DataFile

    from .staging import Staged

COUNTS = ("added", "updated", "deleted", "stale")
PROPS = {c: f"lakeroute.{c}-rows" for c in COUNTS}  # the snapshot summary's names
OWN, DEL, ORDER, KEEP = "__lakeroute_own", "__lakeroute_del", "__lakeroute_o", "__lakeroute_keep"


def props(net: dict[str, int]) -> dict[str, str]:
    return {PROPS[c]: str(net.get(c, 0)) for c in COUNTS}


def upsert_counts(con: duckdb.DuckDBPyConnection, batch: pa.Table, sizes: list[int], positions: pa.Array,
                  winners: pa.Table, hits: pa.Table, keys: list[str], order_by: str | None,
                  win: str, pos: str, delete_flag: str) -> tuple[list[dict[str, int]], dict[str, int]]:
    """(per object in batch order, net) for one upsert merge.

    ``batch``: the staged rows in commit order (``sizes`` rows per object; ``positions`` 0..n-1);
    ``winners``: per key its winner's ``win`` position, ``delete_flag`` and ``KEEP`` (inserted);
    ``hits``: one row per live table row that shares a winner's key: ``win``, ``wins`` (the
    winner beats it) and ``ORDER`` (its ``order_by``, when there is one).
    """
    import pyarrow as pa

    owner = pa.concat_arrays([pa.repeat(pa.scalar(i, pa.int32()), n) for i, n in enumerate(sizes)]
                             or [pa.array([], pa.int32())])
    rows = pa.table({**{k: batch.column(k) for k in keys},
                     **({ORDER: batch.column(order_by)} if order_by else {}),
                     pos: positions, DEL: batch.column(delete_flag), OWN: owner})
    con.register("lr_rows", rows)
    con.register("lr_winners", winners)
    con.register("lr_hits", hits)
    try:
        # Only quoted column names from the route file (validated identifiers) are in the text.
        on = " AND ".join(f"r.{quote_ident(k)} = w.{quote_ident(k)}" for k in keys)
        p, wn = quote_ident(pos), quote_ident(win)
        table_o = f"max(h.{ORDER})" if order_by else "NULL"
        if order_by:  # nulls are the oldest; ties go to the later row (as the merge decides)
            stale = (f"CASE WHEN {ORDER} IS NULL THEN greatest(prev_o, t_o) IS NOT NULL "
                     f"ELSE coalesce(greatest(prev_o, t_o) > {ORDER}, FALSE) END")
        else:
            stale = "FALSE"
        before = f"PARTITION BY {wn} ORDER BY {p} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
        live = "coalesce(NOT prev_del, t_rows > 0)"  # the key had a row when this one arrived
        mine = f"r.{ORDER}," if order_by else ""
        # Per key: the live rows, their newest order_by, how many it beat (once, for both queries).
        # (Arrow, not a temp table: the first temp table of a connection costs more than the query.)
        con.register("lr_keys", con.execute(f"SELECT h.{wn}, count(*) AS t_rows, count_if(h.wins) AS won, "  # noqa: S608
                                            f"{table_o} AS t_o FROM lr_hits h GROUP BY h.{wn}").fetch_arrow_table())
        # Most keys have one row in a batch: only the others need the arrival-order windows.
        per_object = con.execute(f"""
            WITH s AS (SELECT r.{p}, r.{OWN}, r.{DEL}, {mine} w.{wn}, coalesce(t.t_rows, 0) AS t_rows, t.t_o,
                              count(*) OVER (PARTITION BY w.{wn}) AS n
                       FROM lr_rows r JOIN lr_winners w ON {on} LEFT JOIN lr_keys t ON t.{wn} = w.{wn}),
            one AS (SELECT *, NULL AS prev_o, NULL::BOOLEAN AS prev_del FROM s WHERE n = 1),
            x AS (SELECT *, {f"max({ORDER}) OVER before" if order_by else "NULL"} AS prev_o FROM s WHERE n > 1
                  WINDOW before AS ({before})),
            y AS (SELECT *, {stale} AS stale FROM x),
            z AS (SELECT * EXCLUDE (stale),
                         last_value(CASE WHEN NOT stale THEN {DEL} END IGNORE NULLS) OVER before AS prev_del
                  FROM y WINDOW before AS ({before})),
            u AS (SELECT * FROM one UNION ALL BY NAME SELECT * FROM z),
            v AS (SELECT *, {stale} AS stale FROM u)
            SELECT {OWN}, count_if(NOT stale AND NOT {DEL} AND NOT {live}) AS added,
                   count_if(NOT stale AND NOT {DEL} AND {live}) AS updated,
                   count_if(NOT stale AND {DEL} AND {live}) AS deleted, count_if(stale) AS stale
            FROM v GROUP BY {OWN}""").fetchall()  # noqa: S608
        net = con.execute(f"""
            SELECT count_if(w.{KEEP}) - count_if(w.{KEEP} AND coalesce(t.won, 0) > 0) AS added,
                   coalesce(sum(CASE WHEN w.{KEEP} THEN t.won END), 0) AS updated,
                   coalesce(sum(CASE WHEN w.{quote_ident(delete_flag)} THEN t.won END), 0) AS deleted
            FROM lr_winners w LEFT JOIN lr_keys t ON t.{wn} = w.{wn}""").fetchone()  # noqa: S608
    finally:
        for name in ("lr_rows", "lr_winners", "lr_hits", "lr_keys"):
            con.unregister(name)
    objects = [dict.fromkeys(COUNTS, 0) for _ in sizes]
    for own, *values in per_object:
        objects[own] = dict(zip(COUNTS, (int(v) for v in values), strict=True))
    assert net is not None
    totals = {"added": int(net[0]), "updated": int(net[1]), "deleted": int(net[2]),
              "stale": sum(o["stale"] for o in objects)}
    return objects, totals


def replace_counts(ordered: list[Staged], dropped: dict[str, int]) -> dict[str, int]:
    """Per object (``Staged.counts``, set here) and net, for mode replace: the first version of
    a key in the batch deletes the table's rows of it (``dropped``), each later one the
    version before it."""
    previous: dict[str, int] = {}
    for s in ordered:
        deleted = previous.get(s.object_name, dropped.get(s.object_name, 0))
        s.counts = {"added": s.rows, "updated": 0, "deleted": deleted, "stale": 0}
        previous[s.object_name] = s.rows
    return {"added": sum(previous.values()), "updated": 0, "deleted": sum(dropped.values()), "stale": 0}


def overwrite_counts(ordered: list[Staged], added: list[DataFile], deleted: list[DataFile],
                     whole_table: bool) -> dict[str, int]:
    """Per object (set here) and net, for mode overwrite: an object deletes what was live in its
    partitions (or the table) when it arrived: the table's rows (``deleted``: the live files
    the snapshot removes), or the previous object's."""
    def part(f: DataFile) -> Any:
        return None if whole_table else f.partition

    current: dict[Any, int] = defaultdict(int)  # partition -> rows live there, as objects arrive
    for f in deleted:
        current[part(f)] += f.record_count
    for s in ordered:
        mine: dict[Any, int] = defaultdict(int)
        for f in s.data_files:
            mine[part(f)] += f.record_count
        if whole_table:
            mine.setdefault(None, 0)  # an empty file still empties the table
        s.counts = {"added": sum(mine.values()), "updated": 0,
                    "deleted": sum(current.get(p, 0) for p in mine), "stale": 0}
        current.update(mine)
    return {"added": sum(f.record_count for f in added), "updated": 0,
            "deleted": sum(f.record_count for f in deleted), "stale": 0}
