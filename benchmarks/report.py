"""The report: the table printed on stdout, and results.json (machine, versions, options, sizes,
every scenario's results; a run of a subset keeps the other scenarios' previous results)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from harness import NPROC


def machine() -> dict[str, Any]:
    cpu = "unknown"
    ram = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    return {"nproc": NPROC, "ram_gib": round(ram, 1), "cpu_model": cpu,
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("lakeroute", "duckdb", "duckdb-ext", "duckdb-ext-httpfs", "pyarrow", "pyiceberg",
                "pyiceberg-core", "sqlalchemy", "pyinstrument"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    return out


def print_table(results: dict[str, Any]) -> None:
    head = (f"{'scenario':<25}{'contender':<22}{'seconds':>9}{'best':>8}{'RSS MB':>8}{'rows':>12}"
            f"{'bg CPU':>8}  notes")
    lines = [head, "-" * len(head)]
    for name, sc in results.items():
        shown = name
        for cname, c in sc["contenders"].items():
            rows = c.get("table", {}).get("rows", c.get("rows"))
            notes = []
            if "lost_rows" in c:
                notes.append(f"{c['files_per_second']} files/s, lost {c['lost_rows']:,}, "
                             f"duplicated {c['duplicated_rows']:,}")
            if c.get("crashed_processes"):
                notes.append(f"{c['crashed_processes']} processes crashed: {'; '.join(c['crash_errors'])[:150]}")
            if c.get("failed_invocations"):
                notes.append(f"{c['failed_invocations']} failed invocations")
            if c.get("retry_sleeps"):
                notes.append(f"{c['retry_sleeps']} retry sleeps ({c['retry_sleep_seconds']:.0f} s)")
            if c.get("statuses") and set(c["statuses"]) != {"committed"}:
                notes.append(f"outcomes {c['statuses']}")
            seconds = c.get("spawn_to_done_seconds", c.get("seconds"))
            best = c.get("best_seconds")
            lines.append(
                f"{shown:<25}{cname:<22}{seconds:>9.2f}{'' if best is None else f'{best:.2f}':>8}"
                f"{c.get('peak_rss_mb', 0):>8.0f}{'-' if rows is None else f'{rows:,}':>12}"
                f"{c.get('background_cpu_share', 0) * 100:>7.0f}%  {'; '.join(notes)}")
            shown = ""
    lines += ["", f"{'scenario':<25}{'metric':<40}{'value':>10}  target", "-" * len(head)]
    for name, sc in results.items():
        shown = name
        targets = dict(sc.get("targets", {}))
        for metric, value in sc["metrics"].items():
            verdict = ""
            for t in list(targets):
                if t.split()[0] == metric:
                    verdict = f"{t}: {'met' if targets.pop(t) else 'MISSED'}"
            lines.append(f"{shown:<25}{metric:<40}{value!s:>10}  {verdict}")
            shown = ""
        for t, ok in targets.items():
            lines.append(f"{shown:<25}{'':<40}{'':>10}  {t}: {'met' if ok else 'MISSED'}")
    lines.append("")
    lines.append("seconds: median of the runs (reference: one run); best: fastest run; RSS: peak "
                 "of any run; bg CPU: share of the machine other processes used meanwhile")
    print("\n".join(lines))


def write_results(out_path: Path, results: dict[str, Any], *, now: str, started: float, options: dict[str, Any],
                  sizes: dict[str, Any], keep_previous: bool) -> None:
    """Write results.json; with ``keep_previous``, scenarios not run now keep their previous entry."""
    previous: dict[str, Any] = {}
    if out_path.exists() and keep_previous:
        try:
            previous = json.loads(out_path.read_text()).get("scenarios", {})
        except (OSError, ValueError):
            previous = {}
    doc = {
        "date": now, "machine": machine(), "versions": versions(),
        "options": options,
        "sizes": sizes, "total_seconds": round(time.monotonic() - started, 1),
        "scenarios": {**previous, **results},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
