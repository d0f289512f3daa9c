"""lakeroute's own SQLite file (``<home>/ledger.db``: ledger and journal) never stops ingest.

A damaged file is set aside and rebuilt from the tables (exactly once still holds); a locked
or unopenable one is one line naming the file and the fix. Real files, real SQLite catalog.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from lakeroute.core.errors import ConfigError, TransientError
from lakeroute.core.ledger import Mark
from lakeroute.local.ledger import SqliteLedger
from lakeroute.local.sqlite_file import STATE_LOGGER, SqliteFile

from tests.integration.test_cli import run
from tests.support.patience import patience
from tests.support.workspace import Workspace, orders

KEYS = [f"in/{i}.parquet" for i in range(4)]


def _setup(ws: Workspace) -> None:
    ws.route("r", {"bucket": "bkt"}, {"table": "ns.t"})
    for i, key in enumerate(KEYS):
        ws.put("bkt", key, orders(3, start=10 * i))


def _damage(path: Path) -> None:
    """Garbage over the whole file, as a bad disk or a stray write would leave it, once the
    earlier ingest's connections are gone (their WAL checkpointed into the file and removed, as
    when a process ends)."""
    gc.collect()
    assert not Path(f"{path}-wal").exists(), "no connection left open"
    path.write_bytes(b"\x00garbage, not SQLite\xff" * 4096)


def _set_aside(home: Path) -> list[Path]:
    return sorted(home.glob("ledger.db.corrupt-*[0-9]Z"))


def test_a_damaged_ledger_is_set_aside_and_rebuilt_nothing_lands_twice(
        ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    _setup(ws)
    first = ws.ingest(*[("bkt", k) for k in KEYS[:3]])
    assert first.count("committed") == 3
    _damage(ws.paths.home / "ledger.db")
    with caplog.at_level(logging.WARNING, logger=STATE_LOGGER):
        again = ws.ingest(*[("bkt", k) for k in KEYS])
    print("\n" + "\n".join(f"{o.status}: {o.message}" for o in again.outcomes))
    assert [o.status for o in again.outcomes].count("skipped") == 3, "rebuilt from the snapshot summaries"
    assert again.count("committed") == 1 and not again.failed
    assert sorted(r["id"] for r in ws.rows("ns.t")) == sorted(10 * i + j for i in range(4) for j in range(3))
    [aside] = _set_aside(ws.paths.home)
    assert aside.read_bytes().startswith(b"\x00garbage"), "the damaged file is kept, not deleted"
    [warning] = [r.getMessage() for r in caplog.records if r.name == STATE_LOGGER]
    print(warning)
    assert str(ws.paths.home / "ledger.db") in warning and aside.name in warning
    assert "rebuilt" in warning and "history" in warning
    assert ws.ingest(*[("bkt", k) for k in KEYS]).count("skipped") == 4, "the new ledger holds"


def test_the_cli_warns_on_stderr_and_history_starts_afresh(ws: Workspace) -> None:
    _setup(ws)
    code, _, _ = run(ws, "ingest", str(ws.paths.landing / "bkt" / "in" / "0.parquet"))
    assert code == 0
    _damage(ws.paths.home / "ledger.db")
    code, out, err = run(ws, "history", "ns.t", "--format", "json", "--status", "committed")  # the journal first
    print(err)
    assert code == 0 and json.loads(out) == [], "the attempts are in the set-aside file"
    assert err.startswith("warning: ") and "is damaged" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(ws, "history", "ns.t", "--format", "json")  # no attempts: the table's own commits
    assert code == 0 and [c["rows"] for c in json.loads(out)] == [3]
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    assert code == 0, err
    assert "3 ingested" in out + err and "1 skipped" in out + err
    code, out, _ = run(ws, "history", "ns.t", "--format", "json")
    assert sorted(a["status"] for a in json.loads(out)) == ["committed"] * 3 + ["skipped"]


def test_damage_found_mid_batch_heals_and_the_operation_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    def setup(con: sqlite3.Connection) -> None:
        con.execute("PRAGMA cache_size = 1")  # so that reads reach the (damaged) file, not a cache
        con.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)")

    def fill(con: sqlite3.Connection) -> None:
        with con:
            con.executemany("INSERT INTO t VALUES (?, ?)", [(f"k{i}", "v" * 100) for i in range(3000)])
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    db = SqliteFile(str(path), "test", setup)
    db.run(fill)
    path.write_bytes(b"\x00garbage, not SQLite\xff" * 4096)  # under the open connection
    assert db.run(lambda con: con.execute("SELECT count(*) FROM t").fetchone()) == (0,)
    assert len(list(tmp_path.glob("state.db.corrupt-*[0-9]Z"))) == 1


def test_a_locked_ledger_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    ledger = SqliteLedger(path, timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TransientError) as got:
            ledger.record("ns.t", "u", [("bkt/a@1", 1, 1, "r")], Mark(1))
    finally:
        other.execute("ROLLBACK")
    message = str(got.value)
    print(message)
    assert message.startswith(f"ledger {path}: database is locked; ") and "stop it" in message
    assert "\n" not in message and not list(tmp_path.glob("*.corrupt-*")), "a locked file is not damaged"
    ledger.record("ns.t", "u", [("bkt/a@1", 1, 1, "r")], Mark(1))  # released: it works again
    assert ledger.committed("ns.t", "u", ["bkt/a@1"]) == {"bkt/a@1": (1, 1)}


def test_a_ledger_that_cannot_be_opened_is_a_config_error_exit_2(ws: Workspace) -> None:
    _setup(ws)
    (ws.paths.home / "ledger.db").mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(ConfigError, match="not a folder"):
        SqliteLedger(str(ws.paths.home / "ledger.db"))
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    print(err)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: ledger {ws.paths.home / 'ledger.db'}: unable to open database file; ")
    assert (ws.paths.home / "ledger.db").is_dir() and not _set_aside(ws.paths.home), "left as it is"


def test_a_damaged_catalog_is_one_line_naming_it_and_the_fix(ws: Workspace) -> None:
    """The catalog is the tables' registry, not an index: it is never set aside, the user is told."""
    _setup(ws)
    assert ws.ingest(("bkt", KEYS[0])).count("committed") == 1
    gc.collect()
    (ws.paths.home / "catalog.db").write_bytes(b"\x00garbage, not SQLite\xff" * 4096)
    p = ws.paths
    env = {**os.environ, "LAKEROUTE_ROUTES": str(p.routes), "LAKEROUTE_HOME": str(p.home),
           "LAKEROUTE_LANDING": str(p.landing)}
    for command in (["tables"], ["ingest", str(p.landing / "bkt")]):
        done = subprocess.run([sys.executable, "-m", "lakeroute.cli", *command], env=env, capture_output=True,
                              text=True, timeout=patience(120))
        print(done.stderr)
        assert done.returncode == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith(f"error: catalog {p.home / 'catalog.db'}: file is not a database; ")
        assert "restore it from a backup" in line


def test_a_table_another_process_just_created_is_not_an_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes opening a fresh home at once: SQLAlchemy checks, then creates each catalog
    table, so another process can create one in between. Here that other process wins the race
    for both tables, one at a time (real SQLite file, the create done without the check)."""
    from lakeroute.local.runtime import local_catalog
    from pyiceberg.catalog.sql import SqlCatalog, SqlCatalogBaseTable
    from sqlalchemy import create_engine

    raced: list[str] = []
    failed: list[str] = []
    original = SqlCatalog.create_tables

    def create_after_another_process(self: SqlCatalog) -> None:
        missing = [t for t in SqlCatalogBaseTable.metadata.sorted_tables if t.name not in raced]
        if not missing:
            return original(self)
        other = create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
        missing[-1].create(other)  # the other process: a table, between our check and our create
        other.dispose()
        raced.append(missing[-1].name)
        try:
            SqlCatalogBaseTable.metadata.create_all(self.engine, checkfirst=False)  # ours, checked before
        except Exception as e:
            failed.append(str(e).splitlines()[0])
            raise

    monkeypatch.setattr(SqlCatalog, "create_tables", create_after_another_process)
    catalog = local_catalog(tmp_path)
    print(failed)
    assert len(failed) == len(raced) == 2 and all("already exists" in f for f in failed), "raced twice, lost twice"
    catalog.create_namespace("ns")
    assert catalog.list_namespaces() == [("ns",)]


_OPEN_CATALOG = """
import sys, time
from pathlib import Path
from lakeroute.local.runtime import local_catalog
home, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(local_catalog(home).list_namespaces())
"""


@pytest.mark.slow
def test_eight_processes_opening_a_fresh_home_at_once_all_get_its_catalog(tmp_path: Path) -> None:
    home, go = tmp_path / "home", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_CATALOG, str(home), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    go.touch()  # the imports are done by now or soon: they all open the catalog about together
    done = [p.communicate(timeout=patience(120)) for p in procs]
    print("\n" + "\n".join(err[-300:] for _, err in done if err))
    assert [p.returncode for p in procs] == [0] * 8 and [out.strip() for out, _ in done] == ["[]"] * 8
