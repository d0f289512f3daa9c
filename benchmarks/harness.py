"""What every scenario shares: child processes (timing, peak RSS, background CPU), repeats and
medians, and the work folders under benchmarks/.work/.

Each contender runs as ``python contenders.py KIND SPEC RESULT`` in its own process, so its
peak RSS (the VmHWM it reports) and its CPU time (from ``wait4``) are its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import data

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
CONTENDERS = HERE / "contenders.py"
GIB = 1 << 30
NPROC = len(os.sched_getaffinity(0))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    sizes: data.Sizes
    repeat: int
    profile: bool
    reference_large: bool
    cold_table: bool
    lane_max_seconds: float | None = None  # lane: the commit function's LAKEROUTE_COMMIT_DEFAULTS max_seconds
    lane_batch: int | None = None  # lane: messages per ingest call (default 10)
    modes: tuple[str, ...] = ("replace", "overwrite", "upsert")  # write_modes: which of its parts run


# ---------------------------------------------------------------- child processes


def child_env(bytecode: bool = True) -> dict[str, str]:
    """Children keep bytecode under .work/pycache, as the Lambda image is compileall-ed (this
    environment sets PYTHONDONTWRITEBYTECODE=1: every import would compile from source)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have used since boot (every core), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class Child:
    counter = 0

    def __init__(self, kind: str, spec: dict[str, Any], env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, stderr_to: Path | None = None) -> None:
        Child.counter += 1
        folder = WORK / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.spec_path = folder / f"{Child.counter:03d}-{kind}.spec.json"
        self.result_path = folder / f"{Child.counter:03d}-{kind}.result.json"
        self.result_path.unlink(missing_ok=True)
        self.start_marker = self.result_path.with_suffix(".started")
        self.start_marker.unlink(missing_ok=True)
        spec["start_marker"] = str(self.start_marker)
        spec["spawned_perf"] = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        self.spec_path.write_text(json.dumps(spec, indent=2))
        self.busy = busy_cpu_seconds()
        self.started = time.perf_counter()
        self.stderr_to = stderr_to
        err: Any = subprocess.PIPE if extra_args else None
        if stderr_to is not None:
            err = stderr_to.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *(extra_args or []), str(CONTENDERS), kind, str(self.spec_path),
             str(self.result_path)],
            env=env or child_env(), stderr=err)
        if stderr_to is not None:
            err.close()

    def wait(self, check: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """The child's result. ``timeout``: seconds of timed work after which the child is
        killed; the result is then ``{"stopped": True, "seconds": <time it ran>, ...}`` (a lower
        bound), its peak RSS read from /proc just before."""
        if timeout is not None:
            deadline = self.started + timeout + 60  # until the timed work starts (imports)
            while os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                with contextlib.suppress(OSError, ValueError):
                    deadline = float(self.start_marker.read_text()) + timeout
                if time.perf_counter() > deadline:
                    hwm = _vm_hwm_mb(self.proc.pid)  # its peak so far: it cannot report it itself
                    self.proc.kill()
                    _, _, usage = os.wait4(self.proc.pid, 0)
                    self.proc.returncode = -9
                    now = time.perf_counter()
                    wall = now - self.started
                    try:  # the timed work's start, as the child recorded it (else its spawn)
                        timed = now - float(self.start_marker.read_text())
                    except (OSError, ValueError):
                        timed = wall
                    return {"stopped": True, "seconds": round(timed, 3), "process_wall_seconds": round(wall, 3),
                            "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": hwm,
                            "_busy": (self.busy, busy_cpu_seconds())}
                time.sleep(0.05)
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else b""
        # wait4 for the child's own CPU time (its ru_maxrss is not used: Linux carries the
        # forking parent's high-water mark across exec; the child reports its VmHWM instead)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - self.started
        if self.proc.returncode != 0 or not self.result_path.exists():
            if check:
                raise RuntimeError(f"{self.kind} child failed with exit status {self.proc.returncode} "
                                   f"(spec {self.spec_path})")
            lines = self.stderr_to.read_text(errors="replace").splitlines() if self.stderr_to else []
            errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", ln)]
            return {"crashed": True, "exit_status": self.proc.returncode, "wall_end": time.time(),
                    "error": errors[-1] if errors else "", "stderr_file": str(self.stderr_to),
                    "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": 0.0,
                    "process_wall_seconds": round(wall, 3), "_busy": (self.busy, busy_cpu_seconds())}
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        result["process_wall_seconds"] = round(wall, 3)
        result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
        result["_busy"] = (self.busy, busy_cpu_seconds())
        if stderr:
            result["_stderr"] = stderr.decode("utf-8", "replace")
        return result


def background_share(results: list[dict[str, Any]], wall: float) -> float:
    """Share of the machine's CPU that other processes used while these children ran."""
    start = min(r["_busy"][0] for r in results)
    end = max(r["_busy"][1] for r in results)
    own = sum(r["cpu_seconds"] for r in results)
    return round(max(0.0, end - start - own) / max(wall * NPROC, 1e-9), 3)


def run_child(kind: str, spec: dict[str, Any], timeout: float | None = None, **kw: Any) -> dict[str, Any]:
    result = Child(kind, spec, **kw).wait(timeout=timeout)
    result["background_cpu_share"] = background_share([result], result["process_wall_seconds"])
    del result["_busy"]
    return result


def repeated(kind: str, make_spec: Callable[[int], dict[str, Any]], times: int,
             check: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
             label: str = "") -> dict[str, Any]:
    """Run a contender ``times`` times; the median run's fields plus a summary of all runs."""
    runs = []
    for i in range(times):
        if times > 1:
            log(f"{label} run {i + 1}/{times}")
        r = run_child(kind, make_spec(i))
        if check is not None:
            r["table"] = check(i, r)
        runs.append(r)
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])  # the median run (lower median for even n)
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["runs_seconds"] = [round(r["seconds"], 3) for r in runs]
    out["best_seconds"] = round(ordered[0]["seconds"], 3)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["background_cpu_share"] = max(r["background_cpu_share"] for r in runs)
    if check is not None:
        out["tables_ok"] = [r["table"] for r in runs]
    return out


def paired(a: tuple[str, Callable[[int], dict[str, Any]]], b: tuple[str, Callable[[int], dict[str, Any]]],
           times: int, check: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
           label: str = "") -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """Two contenders in turn, A B A B ...: each summarised as ``repeated`` does, and the ratio
    A/B of each pair (one pair: the same minute of a shared machine), whose median to quote."""
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for i in range(times):
        log(f"{label} pair {i + 1}/{times}")
        for side, (kind, make_spec) in (("a", a), ("b", b)):
            r = run_child(kind, make_spec(i))
            if side == "a" and check is not None:
                r["table"] = check(i, r)
            runs[side].append(r)
    ratios = [round(x["seconds"] / y["seconds"], 3) for x, y in zip(runs["a"], runs["b"], strict=True)]
    return _summary(runs["a"], check is not None), _summary(runs["b"], False), ratios


def _summary(runs: list[dict[str, Any]], checked: bool) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["runs_seconds"] = [round(r["seconds"], 3) for r in runs]
    out["runs_cpu_seconds"] = [r["cpu_seconds"] for r in runs]
    out["best_seconds"] = round(ordered[0]["seconds"], 3)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["background_cpu_share"] = max(r["background_cpu_share"] for r in runs)
    if checked:
        out["tables_ok"] = [r["table"] for r in runs]
    return out


# ---------------------------------------------------------------- work folders


def reset(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def profiles_dir() -> Path:
    folder = WORK / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
