"""Crash isolation: an object whose reading kills the process (a segfault or an abort inside
DuckDB, a kill for memory) ends up quarantined alone, and the rest of its batch commits.

A native crash cannot be caught: it ends the process and with it every object of the batch,
and a retry of the same batch crashes again. So the evidence is written before the risk is
taken: a small marker file per object read, written before DuckDB opens the object and
removed once its read and staging are over, whatever happened (``CrashGuard.watch``). A
marker left by a process that is gone means that process died reading that object. The next
process that meets the object (the next ``lakeroute ingest``, a restarted ``watch``, the SQS
redelivery):

- after one such death, reads it first in a child process (``python -m
  lakeroute.core.read.isolated``, same route, same engine settings, rows thrown away): a crash
  there takes only the child, and the object is quarantined ("crashed the reader: SIGSEGV");
  a child that finishes proves the read safe, and the object is read again, in process;
- after two deaths (the child's read went through and the process still died: the crash is
  in what follows the read, or comes and goes), it is quarantined without another try.

Markers live in ``<home>/tmp/crash`` locally and ``/tmp/lakeroute-crash`` in Lambda, one per
object version, target and process (``<hash>.<pid>.json``, with the process's start time), so
two processes reading one object at once never take each other for dead. A process killed
from outside (``kill -9``, the OOM killer, a Lambda timeout) leaves its marker too: that
object is read in a child the next time (one extra read); killed twice on it, it is
quarantined, and the message says a kill may be why.

Lambda: a crashed runtime is restarted in the same execution environment, whose /tmp keeps
the marker; but SQS may redeliver the batch to another environment, with no marker. So a
message received ``ISOLATE_RECEIVES`` times or more (it failed twice, wherever) is read in a
child as well (``suspects``, set by the AWS runtime per batch).

Why not a child for every object: starting Python with DuckDB costs ~0.5-1 s per object, and
the rows would have to cross processes; the common path costs two small file operations.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ObjectError, TransientError, shortened
from .scratch import pid_alive

if TYPE_CHECKING:
    from ..objects import SourceObject
    from ..routes import Route

log = logging.getLogger("lakeroute.pipeline")
ISOLATE_RECEIVES = 3  # an SQS message received this often is read in a child, marker or not
CHILD_GRACE_SECONDS = 60.0  # the child's own start-up, beyond the object's time limit
_HOST = socket.gethostname()


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc), None when it is gone;
    "" when this system has no /proc (then only whether the pid is alive is known)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else ""
    except OSError:
        return ""
    return stat.rsplit(b")", 1)[-1].split()[19].decode()  # field 22: starttime


_STARTED: dict[int, str] = {}


def _started() -> str:
    """This process's start time, computed in this process: a forked child (``--workers``,
    a test harness) must not write its parent's, or its live markers would look dead."""
    pid = os.getpid()
    if pid not in _STARTED:
        _STARTED[pid] = _start_time(pid) or f"t{time.time_ns()}"
    return _STARTED[pid]


def _alive(info: dict[str, Any]) -> bool:
    """Whether the process that wrote a marker still runs (then it is reading, not dead)."""
    if info.get("host") != _HOST:
        return True  # another machine's (a shared home): never taken for a crash
    pid = int(info.get("pid", -1))
    if pid == os.getpid():
        return info.get("started") == _started()
    started = _start_time(pid)
    if started is None:
        return False
    if started:
        return started == info.get("started")
    return pid_alive(pid)


@dataclass
class CrashGuard:
    """Markers in ``folder``; objects to read in a child regardless (``suspects``: (bucket,
    key) pairs, e.g. redelivered messages)."""

    folder: str
    quarantine_after: int = 2
    suspects: set[tuple[str, str]] = field(default_factory=set)

    @contextlib.contextmanager
    def watch(self, route: Route, obj: SourceObject, engine: dict[str, Any], until: float | None,
              rows: bool) -> Iterator[None]:
        """Around one object's read (and what consumes it): its marker, and, when an earlier
        process died on it or a child crashed on it, the read in a child first (see the
        module docstring)."""
        target = route.target_.table if route.target_ is not None else ""
        key = hashlib.sha256(f"{obj.source_id}\0{route.name}\0{target}".encode("utf-8", "surrogatepass"))
        name = key.hexdigest()[:32]
        try:
            deaths, crashed = self._begin(name, obj, route.name, target)
        except OSError as e:  # lakeroute's own scratch, not the object: read it unguarded
            log.warning("crash markers cannot be written in %s (%s): %s/%s is read without one",
                        self.folder, e, obj.bucket, obj.key)
            deaths, crashed = 0, False
        try:
            if deaths >= self.quarantine_after:
                self._remember(name, obj, route.name)
                raise ObjectError("read", f"route {route.name}: the process ended {deaths} times while this "
                                  "object was being read (a crash, or a kill: out of memory, a time limit); "
                                  "it is not read again, nothing of it is committed: check the file and the "
                                  "route, then replay it", route.name)
            if deaths or crashed or (obj.bucket, obj.key) in self.suspects:
                try:
                    probe(route, obj, engine, until, rows, "a process ended while reading it before" if deaths
                          else "it crashed the reader before" if crashed
                          else f"its message was delivered {ISOLATE_RECEIVES} times or more")
                except ReaderCrashed:
                    self._remember(name, obj, route.name)
                    raise
                if crashed:
                    with contextlib.suppress(OSError):
                        os.remove(self._crashed(name))
            yield
        finally:
            with contextlib.suppress(OSError):
                os.remove(self._path(name, os.getpid()))

    def _remember(self, name: str, obj: SourceObject, route: str) -> None:
        """The object is read in a child each time it comes back (a fixed route may read it),
        never in process first."""
        with contextlib.suppress(OSError):
            self._write(self._crashed(name), {"object": f"{obj.bucket}/{obj.key}", "route": route,
                                              "at": time.time()})

    def _path(self, name: str, pid: int) -> str:
        return os.path.join(self.folder, f"{name}.{pid}.json")

    def _crashed(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.crashed.json")

    @staticmethod
    def _write(path: str, record: dict[str, Any]) -> None:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(json.dumps(record))  # one write (json.dump writes piece by piece)
        os.replace(path + ".tmp", path)

    def _begin(self, name: str, obj: SourceObject, route: str, target: str) -> tuple[int, bool]:
        """Count (and clear) the markers of dead processes for this object, and whether a
        child crashed on it; write our marker."""
        deaths, crashed = 0, False
        try:
            entries = os.listdir(self.folder)
        except FileNotFoundError:  # the first object (or the folder was removed meanwhile)
            os.makedirs(self.folder, exist_ok=True)
            entries = []
        for entry in entries:
            if not entry.startswith(name + ".") or not entry.endswith(".json"):
                continue
            path = os.path.join(self.folder, entry)
            if entry.endswith(".crashed.json"):
                crashed = True
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    info = json.load(f)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                info = {"deaths": 0}  # cut short as its writer died: a death all the same
            if not isinstance(info, dict):
                info = {"deaths": 0}
            if "pid" in info and _alive(info):
                continue  # another process reads it right now
            try:  # claimed by removing it: a reader that finished meanwhile removed its own first
                os.remove(path)
            except FileNotFoundError:
                continue
            except OSError:
                pass
            deaths += int(info.get("deaths", 0)) + 1
        self._write(self._path(name, os.getpid()), {
            "object": f"{obj.bucket}/{obj.key}", "version": obj.version, "route": route, "table": target,
            "host": _HOST, "pid": os.getpid(), "started": _started(), "deaths": deaths, "at": time.time()})
        return deaths, crashed


class ReaderCrashed(ObjectError):
    """The child reading the object died of a signal."""


def probe(route: Route, obj: SourceObject, engine: dict[str, Any], until: float | None, rows: bool,
          why: str) -> None:
    """Read ``obj`` in a child process; an ObjectError when the child crashes or the read
    fails, nothing when it went through."""
    limit = route.source.timeout_seconds or float(engine.get("timeout_seconds") or 900.0)
    seconds = None if until is None else max(0.001, until - time.monotonic())
    if seconds is not None:
        limit = min(limit, seconds)
    job = {"route": route.model_dump(mode="json", exclude_none=True, by_alias=True),
           "object": {"bucket": obj.bucket, "key": obj.key, "path": obj.path, "version": obj.version,
                      "size": obj.size, "metadata": obj.metadata},
           "engine": engine, "seconds": seconds, "rows": rows}
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    try:
        done = subprocess.run([sys.executable, "-m", "lakeroute.core.read.isolated"], input=json.dumps(job),
                              capture_output=True, text=True, timeout=limit + CHILD_GRACE_SECONDS, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ObjectError("timeout", f"route {route.name}: read in a separate process (as {why}), it did not "
                          f"end within {limit:g} s (source.timeout_seconds); nothing of it is committed",
                          route.name) from None
    except OSError as e:
        raise TransientError(f"route {route.name}: {obj.bucket}/{obj.key} must be read in a separate process "
                             f"(as {why}), which could not start: {shortened(str(e), 200)}; it is retried") from e
    if done.returncode > 0:  # Python itself failed (it reports its own errors): not the object's doing
        raise TransientError(f"route {route.name}: {obj.bucket}/{obj.key} must be read in a separate process "
                             f"(as {why}), which failed to run: {shortened(done.stderr, 300)}; it is retried")
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        if how == "SIGKILL":
            how += ", killed from outside: out of memory?"
        raise ReaderCrashed("read", f"route {route.name}: it crashed the reader ({how}) when read in a separate "
                            f"process (as {why}); nothing of it is committed, the rest of the batch goes on: "
                            "check the file (and the route's SQL), then replay it", route.name)
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if "transient" in answer:
        raise TransientError(str(answer["transient"]))
    if "message" in answer:
        raise ObjectError(str(answer.get("stage") or "read"), str(answer["message"]), route.name)
    if "rows" not in answer:
        raise ObjectError("read", f"route {route.name}: its separate read (as {why}) said nothing: "
                          f"{shortened(done.stderr or done.stdout, 200)}", route.name)
