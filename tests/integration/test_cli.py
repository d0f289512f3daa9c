"""The `lakeroute` CLI contract (shared/DESIGN.md §4): commands, exit codes, output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lakeroute.cli import app
from typer.testing import CliRunner

from tests.support.patience import patience
from tests.support.workspace import Workspace, orders

runner = CliRunner()


def run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    p = ws.paths
    result = runner.invoke(app, ["--routes", str(p.routes), "--home", str(p.home),
                                 "--landing", str(p.landing), *args])
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # an uncaught exception is a bug the exit code alone hides: its traceback goes with stderr
        import traceback

        err += "".join(traceback.format_exception(result.exception))
    return result.exit_code, result.stdout, err


COMMANDS = ["validate", "ingest", "watch", "query", "tables", "history", "demo", "sync", "replay", "reset",
            "preview", "backfill", "quarantine", "quarantine ls", "quarantine show", "quarantine dismiss",
            "quarantine purge"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example: lakeroute" in result.stdout, result.stdout


def test_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command.split()[0] in result.stdout


def test_validate_ok_and_errors_exit_2_one_line_each(ws: Workspace) -> None:
    ws.route("good", {"bucket": "bkt", "prefix": "a/", "columns": {"id": "long"}}, {"table": "ns.t"},
             "SELECT id FROM source")
    code, out, _ = run(ws, "validate")
    assert code == 0 and "ok: 1 route(s) valid" in out
    ws.route("bad-sql", {"bucket": "bkt", "prefix": "b/", "columns": {"id": "long"}}, {"table": "ns.u"},
             "SELECT nope FROM source")
    (ws.paths.routes / "typo.yaml").write_text("name: typo\nsource: {bucket: bkt, prefx: c/}\n"
                                               "target: {table: ns.v}\n")
    code, _, err = run(ws, "validate")
    lines = err.strip().splitlines()
    assert code == 2
    assert any(ln.startswith("error: ") and "bad-sql.yaml: sql:" in ln and "nope" in ln for ln in lines), lines
    assert any("typo.yaml: source.prefx: unknown field" in ln for ln in lines), lines
    assert len([ln for ln in lines if ln.startswith("error: ")]) == 2


def test_validate_binds_against_a_sample_file(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o", "columns": {"id": "long"}},
             "SELECT id, amount FROM source")
    code, _, err = run(ws, "validate")
    assert code == 0 and "not bound: no sample" in err
    ws.put("bkt", "in/sample.parquet", orders(2))
    code, _, err = run(ws, "validate")
    assert code == 2 and "result columns amount are not in target.columns" in err
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o", "columns": {"id": "long"}},
             "SELECT id, missing_col FROM source")
    code, _, err = run(ws, "validate")
    assert code == 2 and "missing_col" in err and "bound against sample" in err


def test_bad_config_exit_2(ws: Workspace) -> None:
    code, _, err = run(ws, "ingest", str(ws.root))
    assert code == 2 and "routes directory not found" in err
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    outside = ws.root / "outside.parquet"
    outside.write_bytes(b"x")
    code, _, err = run(ws, "ingest", str(outside))
    assert code == 2 and "not under the landing folder" in err and "--bucket" in err


@pytest.mark.slow
def test_ingest_exit_codes_query_tables_history(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.put("bkt", "d/1.parquet", orders(2))
    ws.put("bkt", "d/2.parquet", orders(3, start=10))
    code, out, _ = run(ws, "ingest", str(ws.paths.landing / "bkt"))
    assert code == 0 and "ingested bkt/d/1.parquet -> ns.o (2 rows, route o)" in out
    code, out, _ = run(ws, "ingest", str(ws.paths.landing / "bkt" / "d" / "1.parquet"))
    assert code == 0 and "skipped bkt/d/1.parquet: already ingested" in out
    ws.put("bkt", "d/broken.parquet", b"garbage")
    code, out, err = run(ws, "ingest", str(ws.paths.landing / "bkt" / "d" / "broken.parquet"))
    assert code == 1 and "quarantined bkt/d/broken.parquet" in err

    code, out, _ = run(ws, "query", "SELECT count(*) AS n, sum(id) AS s FROM ns.o", "--format", "json")
    assert code == 0 and json.loads(out) == [{"n": 5, "s": 1 + 10 + 11 + 12}]
    code, out, _ = run(ws, "query", "SELECT id FROM ns.o ORDER BY id", "--format", "csv")
    assert code == 0 and out.splitlines() == ['"id"', "0", "1", "10", "11", "12"]
    code, out, _ = run(ws, "query", "SELECT * FROM ns.nope")
    assert code == 2
    code, out, _ = run(ws, "tables")
    assert code == 0 and "ns.o" in out and "5" in out
    code, out, _ = run(ws, "history", "ns.o", "--commits", "--format", "json")
    [entry] = json.loads(out)
    assert entry["rows"] == 5 and entry["routes"] == "o" and len(entry["sources"]) == 2
    code, _, err = run(ws, "history", "ns.missing")
    assert code == 2 and "not found" in err


def test_ingest_one_file_with_bucket_and_key(ws: Workspace, tmp_path: Path) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"},
             "SELECT *, getvariable('source_key') AS k FROM source")
    f = tmp_path / "elsewhere.parquet"
    ws.put("tmp", "x", b"")  # make landing exist
    import pyarrow.parquet as pq

    pq.write_table(orders(2), f)
    code, out, err = run(ws, "ingest", str(f), "--bucket", "bkt", "--key", "in/named.parquet")
    assert code == 0, err
    assert {r["k"] for r in ws.rows("ns.o")} == {"in/named.parquet"}


def test_sync_creates_declared_tables(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long"}})
    code, out, _ = run(ws, "sync")
    assert code == 0 and "created table ns.o" in out
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o", "columns": {"id": "long", "note": "string"}})
    code, out, _ = run(ws, "sync")
    assert code == 0 and "evolved table ns.o: added note" in out
    assert [f.name for f in ws.catalog().load_table("ns.o").schema().fields] == ["id", "note"]


@pytest.mark.slow
def test_watch_picks_up_new_files(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.paths.landing.mkdir(parents=True)
    p = ws.paths
    env = {**os.environ, "LAKEROUTE_ROUTES": str(p.routes), "LAKEROUTE_HOME": str(p.home),
           "LAKEROUTE_LANDING": str(p.landing)}
    proc = subprocess.Popen([sys.executable, "-m", "lakeroute.cli", "watch", "--interval", "0.2",
                             "--timeout", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(1.0)
        ws.put("bkt", "new/1.parquet", orders(4))
        deadline = time.monotonic() + patience(45)
        while time.monotonic() < deadline and len(ws.rows("ns.o")) < 4:
            time.sleep(0.3)
        assert len(ws.rows("ns.o")) == 4
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=patience(20))
    assert "ingested bkt/new/1.parquet" in out, (out, err)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEROUTE_")}
    proc = subprocess.run([sys.executable, "-m", "lakeroute.cli", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=patience(300))
    assert proc.returncode == 0, proc.stderr
    assert "ingested 35 files (11950 rows)" in proc.stdout
    assert "sales.orders" in proc.stdout and "EUR" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "lakeroute.cli", "demo"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=patience(300))
    assert again.returncode == 0 and "skipped 35 already ingested" in again.stdout
