"""What each object of an upsert batch did, as if the batch's objects had committed one by one
(``core.write.attribution.upsert_counts``), on a real DuckDB connection with Arrow inputs
shaped as the merge hands them over."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from lakeroute.core.write.attribution import KEEP, ORDER, upsert_counts

WIN, POS, DEL = "__win", "__pos", "__del"


def counts(objects: list[list[tuple[Any, ...]]], table: dict[int, Any], order_by: bool
           ) -> tuple[list[dict[str, int]], dict[str, int]]:
    """objects: per object its rows (id, order, delete?); table: live id -> its order value.
    Winners and hits are computed here the way the merge decides them."""
    rows = [r for obj in objects for r in obj]
    n = len(rows)
    batch = pa.table({"id": pa.array([r[0] for r in rows], pa.int64()),
                      "o": pa.array([r[1] for r in rows], pa.int64()), DEL: pa.array([r[2] for r in rows])})
    winner: dict[int, int] = {}
    for i, (key, o, _) in enumerate(rows):  # the greatest order (nulls lowest), ties to the later row
        j = winner.get(key)
        if j is None or not order_by or (o is not None and (rows[j][1] is None or o >= rows[j][1])) or (
                o is None and rows[j][1] is None):
            winner[key] = i
    keys = sorted(winner, key=lambda k: winner[k])
    hits = []
    beaten = set()
    for w, key in enumerate(keys):
        if key in table:
            mine, theirs = rows[winner[key]][1], table[key]
            wins = not order_by or theirs is None or (mine is not None and mine >= theirs)
            hits.append((w, wins, theirs))
            if not wins:
                beaten.add(w)
    winners = pa.table({"id": pa.array(keys, pa.int64()), WIN: pa.array(range(len(keys)), pa.int64()),
                        DEL: pa.array([rows[winner[k]][2] for k in keys]),
                        KEEP: pa.array([not rows[winner[k]][2] and w not in beaten for w, k in enumerate(keys)])})
    hit_table = pa.table({WIN: pa.array([h[0] for h in hits], pa.int64()),
                          "wins": pa.array([h[1] for h in hits], pa.bool_()),
                          **({ORDER: pa.array([h[2] for h in hits], pa.int64())} if order_by else {})})
    return upsert_counts(duckdb.connect(), batch, [len(o) for o in objects], pa.array(range(n), pa.int64()), winners,
                         hit_table, ["id"], "o" if order_by else None, WIN, POS, DEL)


def test_without_order_by_later_rows_update_earlier_ones_and_nothing_is_stale() -> None:
    each, net = counts([[(1, 0, False), (2, 0, False)], [(1, 0, False), (3, 0, False), (1, 0, False)]],
                       {3: None}, order_by=False)
    print(each, net)
    assert each == [{"added": 2, "updated": 0, "deleted": 0, "stale": 0},
                    {"added": 0, "updated": 3, "deleted": 0, "stale": 0}]
    assert net == {"added": 2, "updated": 1, "deleted": 0, "stale": 0}


def test_null_order_is_the_oldest_and_a_delete_of_a_missing_key_deletes_nothing() -> None:
    # table: 1 has order 5, 2 has a null order
    each, net = counts([[(1, None, False), (2, None, False), (9, 3, True)]], {1: 5, 2: None}, order_by=True)
    print(each, net)
    assert each == [{"added": 0, "updated": 1, "deleted": 0, "stale": 1}]  # null vs 5: stale; null vs null: later wins
    assert net == {"added": 0, "updated": 1, "deleted": 0, "stale": 1}


def test_a_delete_then_an_older_insert_in_one_batch_stays_deleted() -> None:
    each, net = counts([[(1, 7, True)], [(1, 3, False)]], {1: 1}, order_by=True)
    print(each, net)
    assert each == [{"added": 0, "updated": 0, "deleted": 1, "stale": 0},
                    {"added": 0, "updated": 0, "deleted": 0, "stale": 1}]
    assert net == {"added": 0, "updated": 0, "deleted": 1, "stale": 1}
