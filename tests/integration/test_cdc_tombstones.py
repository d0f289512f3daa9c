"""CDC converges in any arrival order: deletes leave tombstones (``core.write.tombstones``).

Real files, the SQLite catalog, PyIceberg and DuckDB: a change older than a committed delete
never re-inserts its key, a newer one does (and clears the tombstone), tombstones expire after
``tombstone_days``, live outside the table's rows, survive a concurrent commit and orphan
removal; without ``order_by`` the later commit wins.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakeroute.core.errors import ConfigError
from lakeroute.core.routes import parse_route
from lakeroute.core.write.tombstones import SUPERSEDED_PROP, TOMBSTONES_PROP

from tests.integration.test_write_modes import summary, table_rows
from tests.support.workspace import Workspace

CDC = {"table": "crm.contacts", "mode": "upsert", "key": ["id"], "order_by": "lsn",
       "operation": {"column": "op", "delete": ["D"]}}
SCHEMA = pa.schema([("id", pa.int64()), ("lsn", pa.int64()), ("op", pa.string()), ("v", pa.string())])


def changes(ws: Workspace, key: str, rows: list[tuple[int, int, str, str | None]]) -> tuple[str, str]:
    ws.put("land", key, pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows],
                                             schema=SCHEMA))
    return ("land", key)


def contacts(ws: Workspace) -> dict[int, tuple[int, str | None]]:
    return {r["id"]: (r["lsn"], r["v"]) for r in table_rows(ws, "crm.contacts")}


def properties(ws: Workspace) -> dict[str, str]:
    return dict(ws.catalog().load_table("crm.contacts").properties)


@pytest.mark.slow
def test_a_late_older_change_never_brings_a_deleted_key_back(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 1, "I", "a"), (2, 1, "I", "b")]))
    ws.ingest(changes(ws, "cdc/3.parquet", [(1, 3, "D", None)]))
    assert contacts(ws) == {2: (1, "b")}
    first = properties(ws)[TOMBSTONES_PROP]
    assert Path(first.removeprefix("file://")).is_file()
    # the update of lsn 2 was exported before the delete but arrives after it
    report = ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "late"), (2, 2, "U", "b2")]))
    assert report.count("committed") == 1, report.outcomes
    assert contacts(ws) == {2: (2, "b2")}
    s = summary(ws, "crm.contacts")
    assert s["lakeroute.upsert-tombstoned-rows"] == "1" and s["lakeroute.upsert-stale-rows"] == "1"
    assert s["lakeroute.tombstones"] == "1" and properties(ws)[TOMBSTONES_PROP] == first  # unchanged: not rewritten
    # a newer change re-inserts the key and clears its tombstone
    ws.ingest(changes(ws, "cdc/4.parquet", [(1, 4, "I", "back")]))
    assert contacts(ws) == {1: (4, "back"), 2: (2, "b2")}
    s = summary(ws, "crm.contacts")
    assert (s["lakeroute.tombstones"], s["lakeroute.tombstones-cleared"]) == ("0", "1")
    props = properties(ws)
    assert TOMBSTONES_PROP not in props and props[SUPERSEDED_PROP] == first
    # an older delete after that re-insert is stale too (the row is newer), and leaves no tombstone
    ws.ingest(changes(ws, "cdc/0.parquet", [(1, 0, "D", None)]))
    assert contacts(ws) == {1: (4, "back"), 2: (2, "b2")} and TOMBSTONES_PROP not in properties(ws)


def test_a_newer_delete_replaces_the_tombstone_and_an_older_one_is_stale(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/a.parquet", [(1, 5, "D", None), (2, 5, "D", None)]))  # unknown keys: tombstones
    first = properties(ws)[TOMBSTONES_PROP]
    ws.ingest(changes(ws, "cdc/b.parquet", [(1, 7, "D", None), (2, 3, "D", None)]))
    s = summary(ws, "crm.contacts")
    assert (s["lakeroute.tombstones"], s["lakeroute.tombstones-added"]) == ("2", "1")
    ws.ingest(changes(ws, "cdc/c.parquet", [(1, 6, "I", "x"), (2, 4, "I", "y")]))
    assert contacts(ws) == {}, "both older than their key's delete"
    second = properties(ws)[TOMBSTONES_PROP]
    assert properties(ws)[SUPERSEDED_PROP] == first and second != first
    ws.ingest(changes(ws, "cdc/d.parquet", [(2, 6, "U", "y6")]))
    assert contacts(ws) == {2: (6, "y6")}
    assert not Path(first.removeprefix("file://")).exists(), "the set before the last one is deleted"


def cdc_history(rnd: random.Random, keys: int) -> list[tuple[int, int, str, str | None]]:
    """Per key a run of inserts, updates and deletes (a deleted key may come back), each change
    with a global, increasing log position."""
    out: list[tuple[int, int, str, str | None]] = []
    lsn = 0
    for step in range(4):
        for k in range(keys):
            if rnd.random() < 0.6:
                lsn += 1
                op = "D" if rnd.random() < (0.15 if step < 3 else 0.08) else ("I" if step == 0 else "U")
                out.append((k, lsn, op, None if op == "D" else f"{k}@{lsn}"))
    return out


@pytest.mark.parametrize("seed", [19, 288])
@pytest.mark.slow
def test_cdc_in_random_arrival_order_equals_the_truth(ws: Workspace, seed: int) -> None:
    """A CRM's CDC export (288 customers), cut into files by log position, arriving shuffled in
    batches of 1-4 files: the table is per key the latest change, deleted keys absent, as
    DuckDB computes it over all the changes."""
    rnd = random.Random(seed)
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    history = cdc_history(rnd, 288)
    cuts = sorted(rnd.sample(range(1, len(history)), 15))
    files = [changes(ws, f"cdc/{i:02d}.parquet", history[a:b])
             for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(history)], strict=True))]
    rnd.shuffle(files)
    i = 0
    while i < len(files):
        n = rnd.randint(1, 4)
        report = ws.ingest(*files[i:i + n])
        assert report.count("committed") == len(files[i:i + n]), report.outcomes
        i += n
    con = duckdb.connect()
    con.register("h", pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in history], schema=SCHEMA))
    con.execute("CREATE TABLE last AS SELECT * FROM h "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY lsn DESC) = 1")
    truth = con.execute("SELECT id, lsn, v FROM last WHERE op <> 'D' ORDER BY id").fetchall()
    [(deleted,)] = con.execute("SELECT count(*) FROM last WHERE op = 'D'").fetchall()
    assert deleted > 10, "the history must end with deletes for the test to mean something"
    assert sorted((k, lsn, v) for k, (lsn, v) in contacts(ws).items()) == truth


def test_tombstones_expire_after_tombstone_days(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the merge's own clock (moved forward here), so a busy machine cannot expire it early."""
    from lakeroute.core.write import upsert

    days, now = 1, [time.time()]
    monkeypatch.setattr(upsert.time, "time", lambda: now[0])
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, {**CDC, "operation": {**CDC["operation"],
                                                                                  "tombstone_days": days}})
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 1, "I", "a"), (1, 3, "D", None)]))
    now[0] += days * 86_400 - 60
    ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "within")]))
    assert contacts(ws) == {}
    now[0] += 120
    # past the retention the delete is forgotten: a change older than it re-inserts the key
    ws.ingest(changes(ws, "cdc/2b.parquet", [(1, 2, "U", "after")]))
    assert contacts(ws) == {1: (2, "after")}
    s = summary(ws, "crm.contacts")
    assert (s["lakeroute.tombstones-expired"], s["lakeroute.tombstones"]) == ("1", "0")
    assert TOMBSTONES_PROP not in properties(ws)


def test_tombstone_days_0_keeps_no_tombstone(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, {**CDC, "operation": {**CDC["operation"],
                                                                                  "tombstone_days": 0}})
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 1, "I", "a"), (1, 3, "D", None)]))
    ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "late")]))
    assert contacts(ws) == {1: (2, "late")} and TOMBSTONES_PROP not in properties(ws)


def test_without_order_by_the_later_commit_wins_and_no_tombstone_is_kept(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, {**CDC, "order_by": None})
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 1, "I", "a")]))
    ws.ingest(changes(ws, "cdc/3.parquet", [(1, 3, "D", None)]))
    ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "late")]))
    assert contacts(ws) == {1: (2, "late")}
    assert TOMBSTONES_PROP not in properties(ws)
    with pytest.raises(ConfigError, match="tombstone_days needs order_by"):
        parse_route({"name": "x", "source": {"bucket": "land"}, "sql": "SELECT * FROM source",
                     "target": {**CDC, "order_by": None, "operation": {"column": "op", "delete": ["D"],
                                                                        "tombstone_days": 3}}}, "x.yaml")


def test_tombstones_are_never_rows_nor_data_files(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/1.parquet",
                      [(i, 1, "I", "a") for i in range(10)] + [(i, 2, "D", None) for i in range(5)]))
    path = properties(ws)[TOMBSTONES_PROP].removeprefix("file://")
    assert pq.read_table(path).num_rows == 5
    rows = table_rows(ws, "crm.contacts")  # PyIceberg and DuckDB's iceberg_scan agree
    assert sorted(r["id"] for r in rows) == [5, 6, 7, 8, 9]
    table = ws.catalog().load_table("crm.contacts")
    data_files = table.inspect.files()["file_path"].to_pylist()
    assert data_files and not any(f.endswith(Path(path).name) for f in data_files)


@pytest.mark.slow
def test_a_delete_committed_between_plan_and_commit_is_not_lost(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer's delete (with its tombstone) lands after our plan: ours is rejected,
    planned again on the fresh set, and both tombstones hold."""
    from lakeroute.core.write import commit as commit_mod

    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/0.parquet", [(1, 1, "I", "a"), (2, 1, "I", "b"), (3, 1, "I", "c")]))
    theirs = changes(ws, "cdc/theirs.parquet", [(1, 5, "D", None)])
    ours = changes(ws, "cdc/ours.parquet", [(1, 4, "U", "late"), (2, 5, "D", None)])
    plan = commit_mod.plan_changes
    calls: list[int] = []

    def plan_then_someone_commits(*args: Any, **kwargs: Any) -> None:
        plan(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(commit_mod, "plan_changes", plan)
            assert ws.ingest(theirs).count("committed") == 1
            monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)

    monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)
    report = ws.ingest(ours)
    assert report.count("committed") == 1 and report.commits[0]["attempts"] == 2, report.commits
    assert contacts(ws) == {3: (1, "c")}
    assert summary(ws, "crm.contacts")["lakeroute.tombstones"] == "2"
    late = changes(ws, "cdc/later.parquet", [(1, 2, "U", "x"), (2, 2, "U", "y")])
    ws.ingest(late)
    assert contacts(ws) == {3: (1, "c")}, "neither tombstone was lost"


def test_a_lost_tombstones_file_is_named_with_the_fix(ws: Workspace) -> None:
    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 3, "D", None)]))
    Path(properties(ws)[TOMBSTONES_PROP].removeprefix("file://")).unlink()
    report = ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "late")]))
    [o] = report.outcomes
    assert o.status == "failed" and "CDC tombstones file" in o.message and "is missing" in o.message, o
    assert "remove that property" in o.message and contacts(ws) == {}


def test_maintain_keeps_the_tombstones_file_the_table_names(ws: Workspace) -> None:
    from lakeroute.core.maintain.maintenance import maintain_table
    from lakeroute.core.routes import Maintenance
    from lakeroute.local.files import local_lister
    from lakeroute.local.ledger import SqliteLedger

    ws.route("cdc", {"bucket": "land", "prefix": "cdc/"}, CDC)
    ws.ingest(changes(ws, "cdc/1.parquet", [(1, 3, "D", None)]))
    folder = Path(properties(ws)[TOMBSTONES_PROP].removeprefix("file://")).parent
    orphan = folder / "lakeroute-tombstones-rejected-attempt.parquet"
    orphan.write_bytes(b"x")
    live = properties(ws)[TOMBSTONES_PROP].removeprefix("file://")
    report = maintain_table(ws.catalog(), "crm.contacts", Maintenance(), SqliteLedger(str(ws.paths.home / "ledger.db")),
                            local_lister, apply=True, now=time.time() + 10 * 86_400)
    assert report.orphans >= 1 and not orphan.exists() and Path(live).is_file()
    ws.ingest(changes(ws, "cdc/2.parquet", [(1, 2, "U", "late")]))
    assert contacts(ws) == {}
