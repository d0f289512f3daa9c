"""The local CLI on another PyIceberg catalog (``--catalog NAME`` / ``LAKEROUTE_CATALOG``).

The catalog is a real Iceberg REST server, SeaweedFS's (``tests/support/rest_catalog.py``),
with its S3 API as the warehouse: PyIceberg's ``RestCatalog`` end to end (OAuth2 token,
namespaces, create/load, commits with requirements, 409 on a stale base). The catalog is
configured the PyIceberg way only: a ``.pyiceberg.yaml`` in ``PYICEBERG_HOME``, or
``PYICEBERG_CATALOG__<NAME>__*`` variables. Each test has its own namespace on the one server.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from lakeroute.cli import app
from lakeroute.core.pipeline import ObjectRef
from lakeroute.core.sql_text import quote_ident
from lakeroute.local import LocalPaths, local_pipeline
from pyiceberg.catalog import Catalog, load_catalog
from typer.testing import CliRunner

from tests.support.patience import patience
from tests.support.rest_catalog import RestCatalogServer, start_rest_catalog
from tests.support.workspace import Workspace

pytestmark = pytest.mark.slow
runner = CliRunner()
NAME = "lakehouse"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestCatalogServer]:
    with start_rest_catalog(tmp_path_factory.mktemp("rest")) as s:
        yield s


@pytest.fixture
def config_home(tmp_path: Path, server: RestCatalogServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``.pyiceberg.yaml`` naming catalog ``lakehouse``, found through ``PYICEBERG_HOME``."""
    folder = tmp_path / "pyiceberg"
    folder.mkdir()
    (folder / ".pyiceberg.yaml").write_text(yaml.safe_dump({"catalog": {NAME: server.properties()}}))
    monkeypatch.setenv("PYICEBERG_HOME", str(folder))
    monkeypatch.delenv("LAKEROUTE_CATALOG", raising=False)
    return folder


@pytest.fixture
def ns() -> str:
    return "t_" + uuid.uuid4().hex[:10]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def rest(server: RestCatalogServer) -> Catalog:
    return load_catalog("check", **server.properties())


def cli(ws: Workspace, *args: str, catalog: str | None = NAME) -> tuple[int, str, str]:
    p = ws.paths
    head = ["--routes", str(p.routes), "--home", str(p.home), "--landing", str(p.landing)]
    result = runner.invoke(app, [*head, *(["--catalog", catalog] if catalog else []), *args])
    return result.exit_code, result.stdout, result.stderr


def parquet(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def table_rows(server: RestCatalogServer, name: str) -> list[dict[str, Any]]:
    return sorted(rest(server).load_table(name).scan().to_arrow().to_pylist(), key=lambda r: json.dumps(r))


def test_each_write_mode_lands_through_the_rest_catalog(ws: Workspace, server: RestCatalogServer,
                                                        config_home: Path, ns: str) -> None:
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    ws.route("deals", {"bucket": "land", "prefix": "deals/"}, {"table": f"{ns}.deals", "mode": "upsert",
                                                               "key": ["id"], "order_by": "ts"})
    ws.route("exports", {"bucket": "land", "prefix": "exports/"}, {"table": f"{ns}.exports", "mode": "replace"})
    ws.route("daily", {"bucket": "land", "prefix": "daily/"}, {"table": f"{ns}.daily", "mode": "overwrite",
                                                               "overwrite": "table"})
    ws.put("land", "events/a.parquet", parquet([{"id": 1, "v": "a"}, {"id": 2, "v": "a"}]))
    ws.put("land", "deals/1.parquet", parquet([{"id": 1, "ts": 1, "v": "one"}, {"id": 2, "ts": 1, "v": "one"}]))
    ws.put("land", "exports/x.parquet", parquet([{"id": 1, "v": "x1"}, {"id": 2, "v": "x1"}]))
    ws.put("land", "daily/d1.parquet", parquet([{"id": 1, "v": "d1"}]))
    code, out, err = cli(ws, "ingest", str(ws.paths.landing), "--workers", "1")
    assert code == 0, out + err
    ws.put("land", "events/b.parquet", parquet([{"id": 3, "v": "b"}]))
    ws.put("land", "deals/2.parquet", parquet([{"id": 2, "ts": 2, "v": "two"}, {"id": 3, "ts": 2, "v": "two"}]))
    ws.put("land", "exports/x.parquet", parquet([{"id": 9, "v": "x2"}]))  # a corrected re-export, same key
    ws.put("land", "daily/d2.parquet", parquet([{"id": 5, "v": "d2"}, {"id": 6, "v": "d2"}]))
    code, out, err = cli(ws, "ingest", str(ws.paths.landing), "--workers", "1")
    assert code == 0, out + err
    assert "4 ingested" in err + out, out + err

    assert [(r["id"], r["v"]) for r in table_rows(server, f"{ns}.events")] == [(1, "a"), (2, "a"), (3, "b")]
    assert [(r["id"], r["v"]) for r in table_rows(server, f"{ns}.deals")] == [(1, "one"), (2, "two"), (3, "two")]
    assert [(r["id"], r["v"]) for r in table_rows(server, f"{ns}.exports")] == [(9, "x2")]
    assert [(r["id"], r["v"]) for r in table_rows(server, f"{ns}.daily")] == [(5, "d2"), (6, "d2")]
    locations = {rest(server).load_table(f"{ns}.{t}").location() for t in ("events", "deals", "exports", "daily")}
    assert all(loc.startswith("s3://") for loc in locations), locations
    assert not (ws.paths.home / "catalog.db").exists(), "the SQLite catalog is not opened with --catalog"
    assert (ws.paths.home / "ledger.db").is_file(), "the ledger stays in the home folder"


def test_a_redelivered_object_commits_once(ws: Workspace, server: RestCatalogServer, config_home: Path,
                                           ns: str) -> None:
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    path = ws.put("land", "events/a.parquet", parquet([{"id": 1}, {"id": 2}]))
    assert cli(ws, "ingest", str(path))[0] == 0
    code, out, err = cli(ws, "ingest", str(path))
    assert code == 0 and "1 skipped" in out + err, out + err
    table = rest(server).load_table(f"{ns}.events")
    assert len(table.snapshots()) == 1 and table.scan().to_arrow().num_rows == 2


def test_a_second_home_on_the_same_catalog_skips_what_the_first_committed(
        tmp_path: Path, server: RestCatalogServer, config_home: Path, ns: str) -> None:
    """The snapshot summaries are the ledger's truth: a home whose own ledger is empty still
    reads them (reconcile) before it commits, so it does not land the object again."""
    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    for w in (first, second):
        w.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
        w.put("land", "events/a.parquet", parquet([{"id": 1}, {"id": 2}]))
    assert cli(first, "ingest", str(first.paths.landing))[0] == 0
    code, out, err = cli(second, "ingest", str(second.paths.landing))
    assert code == 0 and "1 skipped" in out + err, out + err
    assert rest(server).load_table(f"{ns}.events").scan().to_arrow().num_rows == 2


def test_a_conflicting_commit_is_planned_again_and_retried(ws: Workspace, server: RestCatalogServer,
                                                           config_home: Path, ns: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits between our plan and our commit: the REST server refuses ours
    (its base is stale, HTTP 409), lakeroute plans again on the fresh table and commits."""
    from lakeroute.core.write import commit as commit_mod

    ws.route("deals", {"bucket": "land", "prefix": "deals/"},
             {"table": f"{ns}.deals", "mode": "upsert", "key": ["id"], "order_by": "ts"})
    paths = LocalPaths(ws.paths.routes, ws.paths.home, ws.paths.landing, NAME)
    ws.put("land", "deals/base.parquet", parquet([{"id": i, "ts": 0, "v": "base"} for i in range(4)]))
    assert local_pipeline(paths).ingest([ObjectRef("land", "deals/base.parquet")]).count("committed") == 1
    ws.put("land", "deals/ours.parquet", parquet([{"id": 1, "ts": 5, "v": "ours"}, {"id": 2, "ts": 5, "v": "ours"}]))
    ws.put("land", "deals/theirs.parquet",
           parquet([{"id": 2, "ts": 9, "v": "theirs"}, {"id": 3, "ts": 9, "v": "theirs"}]))
    plan, calls = commit_mod.plan_changes, []

    def plan_then_someone_commits(*args: Any, **kwargs: Any) -> Any:
        result = plan(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(commit_mod, "plan_changes", plan)
            other = local_pipeline(paths).ingest([ObjectRef("land", "deals/theirs.parquet")])
            assert other.count("committed") == 1
            monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)
        return result

    monkeypatch.setattr(commit_mod, "plan_changes", plan_then_someone_commits)
    report = local_pipeline(paths).ingest([ObjectRef("land", "deals/ours.parquet")])
    assert report.count("committed") == 1 and report.commits[0]["attempts"] == 2, report.commits
    got = {r["id"]: r["v"] for r in table_rows(server, f"{ns}.deals")}
    assert got == {0: "base", 1: "ours", 2: "theirs", 3: "theirs"}


def test_two_homes_committing_the_same_object_at_once_land_it_once(
        tmp_path: Path, server: RestCatalogServer, config_home: Path, ns: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Home B commits the object while home A is between plan and commit: A's commit is
    refused (stale base), A's retry reconciles from the fresh table's summaries, finds the
    object there and drops its copy. Exactly once needs no shared ledger, only the catalog."""
    from lakeroute.core.write import commit as commit_mod

    homes = [Workspace(tmp_path / "a"), Workspace(tmp_path / "b")]
    for w in homes:
        w.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
        w.put("land", "events/base.parquet", parquet([{"id": 0}]))
        w.put("land", "events/a.parquet", parquet([{"id": 1}, {"id": 2}]))
    a, b = (LocalPaths(w.paths.routes, w.paths.home, w.paths.landing, NAME) for w in homes)
    assert local_pipeline(a).ingest([ObjectRef("land", "events/base.parquet")]).count("committed") == 1
    plan, calls = commit_mod.plan_changes, []

    def plan_then_home_b_commits(*args: Any, **kwargs: Any) -> Any:
        result = plan(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(commit_mod, "plan_changes", plan)
            assert local_pipeline(b).ingest([ObjectRef("land", "events/a.parquet")]).count("committed") == 1
            monkeypatch.setattr(commit_mod, "plan_changes", plan_then_home_b_commits)
        return result

    monkeypatch.setattr(commit_mod, "plan_changes", plan_then_home_b_commits)
    report = local_pipeline(a).ingest([ObjectRef("land", "events/a.parquet")])
    assert report.count("committed") == 0 and report.count("skipped") == 1, [o.message for o in report.outcomes]
    assert len(calls) >= 1, "home A planned a commit (and was overtaken by home B)"
    assert sorted(r["id"] for r in table_rows(server, f"{ns}.events")) == [0, 1, 2]


def test_tables_history_and_query_read_the_rest_catalog(ws: Workspace, server: RestCatalogServer,
                                                        config_home: Path, ns: str) -> None:
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    ws.put("land", "events/a.parquet", parquet([{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]))
    assert cli(ws, "ingest", str(ws.paths.landing))[0] == 0
    code, out, err = cli(ws, "tables", "--format", "json")
    assert code == 0, err
    [row] = [r for r in json.loads(out) if r["table"] == f"{ns}.events"]
    assert row["rows"] == 2 and row["snapshots"] == 1, row
    code, out, err = cli(ws, "history", f"{ns}.events", "--format", "json")
    assert code == 0, err
    assert "events/a.parquet" in out and "committed" in out, out
    sql = "SELECT sum(id) AS s, count(*) AS n FROM " + quote_ident(ns) + ".events"  # noqa: S608 - quoted name
    code, out, err = cli(ws, "query", sql, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [{"s": 3, "n": 2}]


def test_workers_open_the_same_catalog_from_environment_variables(
        ws: Workspace, server: RestCatalogServer, tmp_path: Path, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The env-var form (no .pyiceberg.yaml, LAKEROUTE_CATALOG instead of --catalog), with
    staging processes: each opens the catalog from the same variables."""
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path / "nothing-here"))
    for key, value in server.properties().items():  # PyIceberg's spelling: s3.access-key-id -> S3__ACCESS_KEY_ID
        monkeypatch.setenv(f"PYICEBERG_CATALOG__ENVCAT__{key.upper().replace('.', '__').replace('-', '_')}", value)
    monkeypatch.setenv("LAKEROUTE_CATALOG", "envcat")
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    for i in range(4):
        ws.put("land", f"events/{i}.parquet", parquet([{"id": i}]))
    code, out, err = cli(ws, "ingest", str(ws.paths.landing), "--workers", "2", catalog=None)
    assert code == 0 and "4 ingested" in out + err, out + err
    table = rest(server).load_table(f"{ns}.events")
    assert sorted(r["id"] for r in table.scan().to_arrow().to_pylist()) == [0, 1, 2, 3]
    assert len(table.snapshots()) == 1, "one committer, one snapshot for the staged objects"
    assert not (ws.paths.home / "catalog.db").exists()


def test_maintain_runs_on_the_catalog_and_lists_its_storage(
        ws: Workspace, server: RestCatalogServer, config_home: Path, ns: str) -> None:
    """Orphan removal lists the table location with the catalog's own FileIO settings (S3 here):
    the listing holds every file the table references plus a stray one, which ``maintain``
    keeps while it is younger than orphan_days (1 day at least, so not removed in a test)."""
    from lakeroute.core.maintain.references import canonical
    from lakeroute.local.catalogs import catalog_lister

    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    for i in range(3):
        ws.put("land", f"events/{i}.parquet", parquet([{"id": i}]))
        code, out, err = cli(ws, "ingest", str(ws.paths.landing / "land" / "events" / f"{i}.parquet"))
        assert code == 0, out + err
    table = rest(server).load_table(f"{ns}.events")
    stray = f"{table.location()}/data/stray-orphan.parquet"
    buf = io.BytesIO()
    pq.write_table(parquet([{"id": 99}]), buf)
    with table.io.new_output(stray).create(overwrite=True) as f:
        f.write(buf.getvalue())
    listed = {canonical(f.path) for f in catalog_lister(rest(server))(table.location())}
    data = {canonical(t.file.file_path) for t in table.scan().plan_files()}
    assert data and data <= listed and stray in listed, (data, listed)
    code, out, err = cli(ws, "maintain", f"{ns}.events", "--apply")
    assert code == 0, out + err
    after = rest(server).load_table(f"{ns}.events")
    assert len(after.scan().plan_files()) == 1, "the three small files were compacted into one"
    assert sorted(r["id"] for r in after.scan().to_arrow().to_pylist()) == [0, 1, 2]
    assert canonical(stray) in {canonical(f.path) for f in catalog_lister(rest(server))(table.location())}


def test_connect_prints_code_that_opens_the_named_catalog(ws: Workspace, server: RestCatalogServer,
                                                          config_home: Path, ns: str) -> None:
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    ws.put("land", "events/a.parquet", parquet([{"id": 1}, {"id": 2}]))
    assert cli(ws, "ingest", str(ws.paths.landing))[0] == 0
    code, out, err = cli(ws, "connect", "--engine", "duckdb")
    assert code == 0, err
    assert "load_catalog('lakehouse')" in out and "lakeroute-secret" not in out
    script = ws.root / "open.py"
    count = "SELECT count(*) FROM " + quote_ident(ns) + ".events"  # noqa: S608 - quoted name
    script.write_text(out + f"print('rows', con.sql({count!r}).fetchone()[0])\n")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.splitlines()[-1] == "rows 2", ran.stdout
    code, out, err = cli(ws, "connect", "--engine", "spark")
    assert code == 0 and "spark.sql.catalog.lakehouse.type=rest" in out and "lakeroute-secret" not in out, out + err


def test_sync_validate_preview_replay_and_reset_use_the_rest_catalog(
        ws: Workspace, server: RestCatalogServer, config_home: Path, ns: str) -> None:
    table = f"{ns}.orders"
    declared = {"table": table, "columns": {"id": "long", "amount": "double"}}
    ws.route("orders", {"bucket": "land", "prefix": "orders/"}, declared, "SELECT id, amount, 1 AS oops FROM source")
    code, out, err = cli(ws, "sync")
    assert code == 0 and rest(server).table_exists(table), out + err
    ws.put("land", "orders/a.parquet", parquet([{"id": 1, "amount": 1.5}, {"id": 2, "amount": 2.5}]))
    code, out, err = cli(ws, "preview", "orders", str(ws.paths.landing / "land" / "orders" / "a.parquet"))
    assert code == 1 and f"table {table}" in out and "refused: not in the table" in out, out + err
    code, _, err = cli(ws, "ingest", str(ws.paths.landing))
    assert code == 1 and "quarantined land/orders/a.parquet" in err, err  # strict: `oops` is refused
    ws.route("orders", {"bucket": "land", "prefix": "orders/"}, declared, "SELECT id, amount FROM source")
    code, out, err = cli(ws, "validate")
    assert code == 0, out + err
    code, out, err = cli(ws, "replay")
    assert code == 0 and "1 resolved" in out, out + err
    assert [r["id"] for r in table_rows(server, table)] == [1, 2]
    code, out, err = cli(ws, "reset", table, "--yes")
    assert code == 0 and "2 rows" in out, out + err
    assert rest(server).table_exists(table) and rest(server).load_table(table).scan().to_arrow().num_rows == 0
    code, out, err = cli(ws, "ingest", str(ws.paths.landing))
    assert code == 0 and "1 ingested" in out + err, out + err


def test_a_catalog_that_cannot_be_opened_is_one_error_line_exit_2(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    monkeypatch.setenv("PYICEBERG_CATALOG__DOWN__URI", f"http://127.0.0.1:{port}")
    code, out, err = cli(ws, "tables", catalog="down")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, out, err)
    assert lines[0].startswith(f"error: catalog down (http://127.0.0.1:{port}) cannot be opened: "), lines[0]
    # validate checks the routes all the same, and says why there is no plan
    ws.route("events", {"bucket": "land", "prefix": "events/", "columns": {"id": "long"}}, {"table": "ns.events"},
             "SELECT id FROM source")
    code, out, err = cli(ws, "validate", catalog="down")
    assert code == 0 and "ok: 1 route(s) valid" in out, out + err
    assert f"note: no plan: catalog down (http://127.0.0.1:{port}) cannot be opened" in err, err


def test_watch_in_its_own_process_commits_to_the_rest_catalog(
        ws: Workspace, server: RestCatalogServer, config_home: Path, ns: str) -> None:
    """The console script (``python -m lakeroute.cli``) with LAKEROUTE_CATALOG in its environment."""
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": f"{ns}.events"})
    ws.paths.landing.mkdir(parents=True)
    p = ws.paths
    env = {**os.environ, "LAKEROUTE_ROUTES": str(p.routes), "LAKEROUTE_HOME": str(p.home),
           "LAKEROUTE_LANDING": str(p.landing), "LAKEROUTE_CATALOG": NAME}
    proc = subprocess.Popen([sys.executable, "-m", "lakeroute.cli", "watch", "--interval", "0.2", "--settle", "0.5",
                             "--timeout", "120"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ws.put("land", "events/1.parquet", parquet([{"id": 1}, {"id": 2}, {"id": 3}]))
        deadline = time.monotonic() + patience(60)
        landed = 0
        while time.monotonic() < deadline and landed < 3 and proc.poll() is None:
            time.sleep(0.3)
            catalog = rest(server)
            if catalog.table_exists(f"{ns}.events"):
                landed = catalog.load_table(f"{ns}.events").scan().to_arrow().num_rows
        assert landed == 3
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=patience(20))
    assert "ingested land/events/1.parquet" in out, (out, err)
    assert not (p.home / "catalog.db").exists()


def test_an_unconfigured_catalog_is_one_error_line_exit_2(ws: Workspace, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": "ns.events"})
    for args in (["tables"], ["ingest", str(ws.put("land", "events/a.parquet", parquet([{"id": 1}])))]):
        code, out, err = cli(ws, *args, catalog="nowhere")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (code, out, err)
        assert lines[0].startswith("error: catalog nowhere is not configured: PyIceberg looked in ")
        assert "PYICEBERG_CATALOG__NOWHERE__URI" in lines[0] and str(tmp_path) in lines[0], lines[0]
    assert not (ws.paths.home / "catalog.db").exists()


def test_no_name_keeps_the_sqlite_catalog_whatever_pyiceberg_is_configured_with(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --catalog and a blank LAKEROUTE_CATALOG: <home>/catalog.db, even when PyIceberg's own
    configuration names a default catalog (here one that cannot be reached)."""
    (tmp_path / ".pyiceberg.yaml").write_text(yaml.safe_dump(
        {"default-catalog": "elsewhere", "catalog": {"elsewhere": {"uri": "http://127.0.0.1:9"}}}))
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEROUTE_CATALOG", "")
    ws.route("events", {"bucket": "land", "prefix": "events/"}, {"table": "ns.events"})
    ws.put("land", "events/a.parquet", parquet([{"id": 1}]))
    code, out, err = cli(ws, "ingest", str(ws.paths.landing), catalog=None)
    assert code == 0 and "1 ingested" in out + err, out + err
    assert (ws.paths.home / "catalog.db").is_file() and ws.rows("ns.events") == [{"id": 1}]
