"""One file that crashes the reader dies alone; JSON nested too deep never reaches DuckDB.

Real crashes, checked first: DuckDB 1.4.4 segfaults on a JSON line nesting 10,000 objects,
and on ``json_structure`` of a 20,000-deep JSON string in a Parquet column (the depth check
reads JSON files, not strings inside Parquet: that one reaches the generic crash guard). The
pipeline runs as ``lakeroute ingest`` in a child process wherever a crash could happen, so a
regression fails the test instead of killing the test run.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.patience import patience
from tests.support.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
DEEP = 10_000
DEEP_LINE = '{"id": 99, "a": ' + '{"b": ' * DEEP + "1" + "}" * DEEP + "}\n"
CRASHER = pa.table({"id": [2], "payload": ['{"b": ' * 20_000 + "1" + "}" * 20_000]})
SHAPE_SQL = "SELECT id, json_structure(payload)::VARCHAR AS shape FROM source"


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    p = ws.paths
    env = {**os.environ, "LAKEROUTE_ROUTES": str(p.routes), "LAKEROUTE_HOME": str(p.home),
           "LAKEROUTE_LANDING": str(p.landing)}
    done = subprocess.run([sys.executable, "-m", "lakeroute.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=patience(240))
    print(f"$ lakeroute {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def crashes(code: str, *args: str) -> int:
    """The exit code of ``code`` run by a fresh Python (negative: the signal that ended it)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, timeout=patience(120)).returncode


def test_these_inputs_really_crash_duckdb_here(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_LINE)
    shapes = tmp_path / "shapes.parquet"
    import pyarrow.parquet as pq

    pq.write_table(CRASHER, shapes)
    read_json = "import duckdb, sys; duckdb.sql('SELECT * FROM read_json(?)', params=[sys.argv[1]]).fetchall()"
    structure = ("import duckdb, sys; duckdb.sql('SELECT json_structure(payload) FROM read_parquet(?)', "
                 "params=[sys.argv[1]]).fetchall()")
    assert crashes(read_json, str(deep)) == -signal.SIGSEGV, "DuckDB's read_json segfaults on it"
    assert crashes(structure, str(shapes)) == -signal.SIGSEGV, "json_structure segfaults on it"


def test_json_nested_too_deep_is_quarantined_before_duckdb_the_batch_commits(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt"}, {"table": "ns.j"}, "SELECT id FROM source")
    ws.put("bkt", "a.json", b'{"id": 1, "a": {"b": 1}}\n')
    ws.put("bkt", "deep.json", ('{"id": 98, "a": {"b": 2}}\n' + DEEP_LINE).encode())
    ws.put("bkt", "z.json.gz", gzip.compress(b'{"id": 3, "a": {"b": 3}}\n'))
    done = cli(ws, "ingest", str(ws.paths.landing / "bkt"))
    assert done.returncode == 1, "one file not ingested; no crash"
    assert "quarantined bkt/deep.json: route j: line 2 nests at least 10001 levels deep, more than the 1000 " \
           "lakeroute reads" in done.stderr
    assert "2 ingested" in done.stdout + done.stderr
    assert sorted(r["id"] for r in ws.rows("ns.j")) == [1, 3]
    assert ws.record("bkt", "deep.json")["stage"] == "read"


def test_rows_mode_rejects_the_deep_line_with_its_number_the_rest_commits(ws: Workspace) -> None:
    ws.route("j", {"bucket": "bkt", "on_error": "rows"}, {"table": "ns.j"}, "SELECT id FROM source")
    body = '{"id": 1}\n{"id": 2}\n' + DEEP_LINE + '{"id": 4}\nnot json\n{"id": 6}\n'
    ws.put("bkt", "x.jsonl.gz", gzip.compress(body.encode()))
    done = cli(ws, "ingest", str(ws.paths.landing / "bkt" / "x.jsonl.gz"))
    assert done.returncode == 0
    assert sorted(r["id"] for r in ws.rows("ns.j")) == [1, 2, 4, 6]
    [folder] = (ws.paths.quarantine / "bkt" / "x.jsonl.gz").glob("~v=*")
    rejects = [json.loads(line) for line in (folder / "rejects.ns.j.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (3, "nests deeper than the 1000 levels lakeroute reads (DuckDB would crash on it)"),
        (5, "not valid JSON")]
    assert rejects[0]["text"] == DEEP_LINE.rstrip("\n"), "the rejects file keeps the line"


def test_a_file_that_crashes_the_reader_is_quarantined_alone_on_the_next_run(ws: Workspace) -> None:
    ws.route("p", {"bucket": "bkt"}, {"table": "ns.p"}, SHAPE_SQL)
    ws.put("bkt", "a-good.parquet", pa.table({"id": [1], "payload": ['{"a": 1}']}))
    ws.put("bkt", "b-bad.parquet", CRASHER)
    ws.put("bkt", "c-good.parquet", pa.table({"id": [3], "payload": ['{"c": [1]}']}))
    folder = str(ws.paths.landing / "bkt")

    first = cli(ws, "ingest", "--workers", "1", folder)
    assert first.returncode == -signal.SIGSEGV, "the crash takes the whole process (and batch) down"
    assert ws.rows("ns.p") == []
    [marker] = (ws.paths.home / "tmp" / "crash").glob("*.json")
    assert json.loads(marker.read_text())["object"] == "bkt/b-bad.parquet", "the marker names the object"

    second = cli(ws, "ingest", "--workers", "1", folder)
    assert second.returncode == 1, "the retry does not crash"
    assert "quarantined bkt/b-bad.parquet: route p: it crashed the reader (SIGSEGV) when read in a separate " \
           "process" in second.stderr
    assert "2 ingested" in second.stdout + second.stderr
    assert sorted(r["id"] for r in ws.rows("ns.p")) == [1, 3]
    record = ws.record("bkt", "b-bad.parquet")
    assert record["stage"] == "read" and "crashed the reader" in record["message"]

    third = cli(ws, "ingest", "--workers", "1", folder)  # it comes back: read in a child again, never in process
    assert third.returncode == 1 and "crashed the reader (SIGSEGV)" in third.stderr
    assert "2 skipped" in third.stdout + third.stderr and len(ws.rows("ns.p")) == 2


def test_with_parallel_workers_the_parent_survives_a_stager_crash_and_the_next_run_isolates_it(ws: Workspace) -> None:
    """--workers 2: the stager that crashes dies (and the pool with it), the parent survives, and
    the next run quarantines the crasher alone."""
    ws.route("p", {"bucket": "bkt"}, {"table": "ns.p"}, SHAPE_SQL)
    ws.put("bkt", "a-good.parquet", pa.table({"id": [1], "payload": ['{"a": 1}']}))
    ws.put("bkt", "b-bad.parquet", CRASHER)
    ws.put("bkt", "c-good.parquet", pa.table({"id": [3], "payload": ['{"c": [1]}']}))
    ws.put("bkt", "d-good.parquet", pa.table({"id": [4], "payload": ['{"d": 2}']}))
    folder = str(ws.paths.landing / "bkt")
    first = cli(ws, "ingest", "--workers", "2", folder)
    assert first.returncode == 1 and "a staging worker died" in first.stdout + first.stderr
    # What the other worker handed off before the pool was torn down commits now; the rest
    # (timing decides how much) with the next run.
    assert set(r["id"] for r in ws.rows("ns.p")) <= {3, 4}
    second = cli(ws, "ingest", "--workers", "2", folder)
    assert second.returncode == 1 and "crashed the reader (SIGSEGV)" in second.stderr
    assert sorted(r["id"] for r in ws.rows("ns.p")) == [1, 3, 4], "the crasher alone is quarantined"


def test_a_redelivered_object_is_read_in_a_child_with_no_marker(ws: Workspace) -> None:
    """Lambda: a message received ISOLATE_RECEIVES times may have crashed another execution
    environment, whose /tmp held the marker; the runtime names such objects ``suspects``."""
    ws.route("p", {"bucket": "bkt"}, {"table": "ns.p"}, SHAPE_SQL)
    ws.put("bkt", "a-good.parquet", pa.table({"id": [1], "payload": ['{"a": 1}']}))
    ws.put("bkt", "b-bad.parquet", CRASHER)
    pipe = ws.pipeline()
    assert pipe.engine.crash_guard is not None
    pipe.engine.crash_guard.suspects = {("bkt", "b-bad.parquet"), ("bkt", "a-good.parquet")}
    from lakeroute.core.pipeline import ObjectRef

    report = pipe.ingest([ObjectRef("bkt", "a-good.parquet"), ObjectRef("bkt", "b-bad.parquet")])
    by_key = {o.ref.key: o for o in report.outcomes}
    print({k: (o.status, o.message) for k, o in by_key.items()})
    assert by_key["b-bad.parquet"].status == "quarantined"
    assert "crashed the reader (SIGSEGV)" in by_key["b-bad.parquet"].message
    assert by_key["a-good.parquet"].status == "committed", "a suspect that reads fine lands"
    assert [r["id"] for r in ws.rows("ns.p")] == [1]


def _reading(ws: Workspace, key: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_worker", str(ws.root), "bkt", key],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "reading", proc.stderr
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: nothing of the process runs any more, as in a crash
    proc.wait(timeout=patience(30))


def test_markers_count_dead_readers_only_and_two_deaths_quarantine_without_a_read(ws: Workspace) -> None:
    ws.route("c", {"bucket": "bkt"}, {"table": "ns.c"})
    for key, n in (("live.csv", 1), ("dies.csv", 2), ("fine.csv", 3)):
        ws.put("bkt", key, f"id\n{n}\n".encode())

    live = _reading(ws, "live.csv")  # another process reading it right now is not a crash
    try:
        [o] = ws.ingest(("bkt", "live.csv")).outcomes
        assert o.status == "committed", o.message
    finally:
        _kill(live)

    _kill(_reading(ws, "dies.csv"))  # a first death...
    _kill(_reading(ws, "dies.csv"))  # ...and a second, after the first was counted
    report = ws.ingest(("bkt", "dies.csv"), ("bkt", "fine.csv"))
    by_key = {o.ref.key: o for o in report.outcomes}
    print({k: (o.status, o.message) for k, o in by_key.items()})
    assert by_key["dies.csv"].status == "quarantined"
    assert by_key["dies.csv"].message.startswith("route c: the process ended 2 times while this object was "
                                                 "being read")
    assert by_key["fine.csv"].status == "committed"
    assert sorted(r["id"] for r in ws.rows("ns.c")) == [1, 3]
    crash = ws.paths.home / "tmp" / "crash"
    left = [json.loads(p.read_text())["object"] for p in crash.glob("*.json") if ".crashed." not in p.name]
    assert left == ["bkt/live.csv"], "only the killed reader of live.csv left its marker (counted next time)"
    [remembered] = [json.loads(p.read_text())["object"] for p in crash.glob("*.crashed.json")]
    assert remembered == "bkt/dies.csv", "when it comes back, it is read in a child first"


@pytest.mark.parametrize("receives", ["1", "3"])
def test_sqs_receive_count_reaches_the_object_ref(receives: str) -> None:
    from lakeroute.aws.events import parse_event

    body = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": "bkt"}, "object": {"key": "k.json", "size": 3}}}]}
    event = {"Records": [{"messageId": "m", "body": json.dumps(body), "eventSource": "aws:sqs",
                          "attributes": {"ApproximateReceiveCount": receives}}]}
    [ref] = parse_event(event).refs
    assert ref.receives == int(receives)


@pytest.mark.parametrize("rows", [False, True])
def test_a_cut_json_gz_is_still_reported_as_truncated(ws: Workspace, rows: bool) -> None:
    """The nesting scan decompresses first: a stream that breaks is the stream check's to name."""
    source = {"bucket": "bkt", **({"on_error": "rows"} if rows else {})}
    ws.route("j", source, {"table": "ns.j"}, "SELECT id FROM source")
    whole = gzip.compress("".join(f'{{"id": {i}, "a": [[{i}]]}}\n' for i in range(5000)).encode())
    ws.put("bkt", "x.jsonl.gz", whole[: len(whole) // 2])
    [o] = ws.ingest(("bkt", "x.jsonl.gz")).outcomes
    print(o.status, o.stage, o.message)
    assert (o.status, o.stage) == ("quarantined", "read")
    assert o.message == ("route j: truncated gzip stream: it ends before its last member does; nothing of it "
                         "is committed")
