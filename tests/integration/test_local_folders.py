"""Local folders at the edges: symlinks out of the landing folder, files still being written,
route files changed while `lakeroute watch` runs. Real files, the real SQLite catalog, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from lakeroute.cli import app
from typer.testing import CliRunner

from tests.support.patience import patience
from tests.support.workspace import Workspace

runner = CliRunner()


def csv_rows(start: int, n: int) -> str:
    return "".join(f"{i},name-{i}\n" for i in range(start, start + n))


def ids(ws: Workspace, table: str) -> list[int]:
    return sorted(r["id"] for r in ws.rows(table))


class Watch:
    """`lakeroute watch` as a subprocess; its stdout and stderr lines collected as they come."""

    def __init__(self, ws: Workspace, *args: str) -> None:
        p = ws.paths
        env = {**os.environ, "LAKEROUTE_ROUTES": str(p.routes), "LAKEROUTE_HOME": str(p.home),
               "LAKEROUTE_LANDING": str(p.landing), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "lakeroute.cli", "watch", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._pump, args=(s, lines), daemon=True)
                        for s, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, ok: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            if ok():
                return
            assert self.proc.poll() is None, f"watch exited early: {self.err}"
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\nstdout: {self.out}\nstderr: {self.err}")

    def err_has(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in ln for ln in self.err)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=patience(20))
        for t in self.threads:
            t.join(timeout=patience(5))


def test_ingest_folder_skips_symlinks_leaving_landing(ws: Workspace, tmp_path: Path) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "in/"}, {"table": "ns.o"})
    ws.put("bkt", "in/a.csv", ("id,name\n" + csv_rows(0, 3)).encode())
    good = ws.put("bkt", "in/b.csv", ("id,name\n" + csv_rows(3, 2)).encode())
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    evil = outside / "evil.csv"  # would add ids 1000.. if it were ever read
    evil.write_text("id,name\n" + csv_rows(1000, 7))
    (outside / "dir" / "more.csv").write_text("id,name\n" + csv_rows(2000, 5))
    land = ws.paths.landing / "bkt" / "in"
    (land / "x.csv").symlink_to(evil)                        # a file link out
    (land / "passwd.csv").symlink_to("/etc/passwd")          # a file link out, absolute
    (land / "ext").symlink_to(outside / "dir", target_is_directory=True)  # a folder link out
    (land / "alias.csv").symlink_to(good)                    # stays inside: one object with b.csv
    (land / "here").symlink_to(land, target_is_directory=True)  # inside, a loop: cut
    p = ws.paths

    result = runner.invoke(app, ["--routes", str(p.routes), "--home", str(p.home),
                                 "--landing", str(p.landing), "ingest", str(p.landing)])
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("skipped ")]
    got = ids(ws, "ns.o")
    print(f"folder: exit {result.exit_code}, {len(warnings)} warning(s), {len(got)} rows "
          f"{got}; quarantine entries: {len(list(p.quarantine.rglob('*')))}")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert sorted(warnings) == sorted(f"skipped {land / n}: symlink leaves the landing folder"
                                      for n in ("x.csv", "passwd.csv", "ext")), result.stderr
    assert got == [0, 1, 2, 3, 4]  # every good row once; nothing from outside, no double alias
    assert "ingested bkt/in/b.csv" in result.stdout and "alias.csv" not in result.stdout
    assert not p.quarantine.exists() or not any(p.quarantine.rglob("*"))  # nothing copied out

    # the link named on the command line: skipped the same way, counted as not ingested
    result = runner.invoke(app, ["--routes", str(p.routes), "--home", str(p.home),
                                 "--landing", str(p.landing), "ingest", str(land / "x.csv")])
    print(f"named link: exit {result.exit_code}, stderr {result.stderr.strip()!r}")
    assert result.exit_code == 1
    assert f"skipped {land / 'x.csv'}: symlink leaves the landing folder" in result.stderr
    assert ids(ws, "ns.o") == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_watch_waits_for_a_paused_writer(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    ws.paths.landing.mkdir(parents=True)
    w = Watch(ws, "--interval", "0.2", "--settle", "4", "--timeout", "60")
    try:
        w.wait_for(w.err_has("watching"), "watch to start")
        path = ws.paths.landing / "bkt" / "slow" / "orders.csv"
        path.parent.mkdir(parents=True)
        body = "id,name\n" + csv_rows(0, 300)
        half = len("id,name\n" + csv_rows(0, 150)) + 5  # mid-line, like a real writer
        with path.open("w") as f:
            f.write(body[:half])
            f.flush()
            time.sleep(2.5)  # paused longer than many scans, shorter than the settle time
            f.write(body[half:])
        written = time.monotonic()
        w.wait_for(lambda: len(ws.rows("ns.o")) >= 300, "the full file's rows")
        waited = time.monotonic() - written
        time.sleep(1.0)  # nothing else may follow
        got = ids(ws, "ns.o")
    finally:
        w.stop()
    ingested = [ln for ln in w.out if ln.startswith("ingested ")]
    print(f"paused writer: {len(got)} rows, {len(set(got))} distinct, {len(ingested)} ingest "
          f"line(s), read {waited:.1f}s after the last write")
    assert len(got) == 300 and got == list(range(300)), len(got)
    assert ingested == ["ingested bkt/slow/orders.csv -> ns.o (300 rows, route o)"], w.out
    assert not any(ln.startswith("quarantined") for ln in w.err), w.err


@pytest.mark.slow
def test_watch_reloads_route_files_and_skips_links_out(ws: Workspace, tmp_path: Path) -> None:
    ws.route("o", {"bucket": "bkt"}, {"table": "ns.o"})
    p = ws.paths
    evil = tmp_path / "evil.csv"
    evil.write_text("id,name\n" + csv_rows(1000, 4))
    link = p.landing / "bkt" / "x.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(evil)
    w = Watch(ws, "--interval", "0.2", "--settle", "1", "--timeout", "60")
    try:
        w.wait_for(w.err_has("watching"), "watch to start")
        # a new route, and right after it a file for it: the route is in use before the file is read
        ws.route("p", {"bucket": "bkt2", "prefix": "new/"}, {"table": "ns.p"})
        ws.put("bkt2", "new/1.csv", ("id,name\n" + csv_rows(0, 6)).encode())
        w.wait_for(lambda: len(ws.rows("ns.p")) >= 6, "rows of the new route")
        w.wait_for(w.err_has("reloaded 2 route(s)"), "the reload line")
        first = ids(ws, "ns.p")

        # an invalid route file: one error line, the previous routes stay in use
        (p.routes / "bad.yaml").write_text(
            yaml.safe_dump({"name": "bad", "source": {"bucket": "bkt3", "prefx": "a/"},
                            "target": {"table": "ns.bad"}}))
        w.wait_for(w.err_has("bad.yaml"), "the error for bad.yaml")
        ws.put("bkt2", "new/2.csv", ("id,name\n" + csv_rows(6, 4)).encode())
        w.wait_for(lambda: len(ws.rows("ns.p")) >= 10, "rows after the invalid route file")
        second = ids(ws, "ns.p")

        (p.routes / "bad.yaml").unlink()  # fixed: reloaded again
        w.wait_for(lambda: sum("reloaded 2 route(s)" in ln for ln in w.err) >= 2, "a second reload")
        orders = ws.rows("ns.o")
    finally:
        w.stop()
    errors = [ln for ln in w.err if ln.startswith("error: ")]
    warnings = [ln for ln in w.err if ln.startswith("skipped ")]
    print(f"route reload: {len(first)} then {len(second)} rows in ns.p, {len(errors)} error line(s), "
          f"{len(warnings)} symlink warning(s), {len(orders)} rows in ns.o")
    assert first == list(range(6)) and second == list(range(10))
    assert len(errors) == 1 and "bad.yaml: source.prefx: unknown field" in errors[0], w.err
    assert warnings == [f"skipped {link}: symlink leaves the landing folder"], w.err  # once
    assert orders == []  # the link out was never read
    assert w.proc.returncode is not None and not any("no route" in ln for ln in w.err), w.err
