"""The report: the table printed on stdout, results.json (machine, versions, options, sizes,
every scenario's results; a run of a subset keeps the other scenarios' previous results), and
the Markdown table of ``docs/benchmarks.md``, generated from results.json only.

    python benchmarks/report.py            # rewrite the table in docs/benchmarks.md
    python benchmarks/report.py --check    # exit 1 when the committed table is not the generated one

Each scenario row says when it ran, on what machine and under what load (the load average
before and after, and the share of the CPU other processes used during its runs), as far as
its result recorded them: "not recorded" otherwise, never the machine of another run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DOC = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


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
    return {"nproc": len(os.sched_getaffinity(0)), "ram_gib": round(ram, 1), "cpu_model": cpu,
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
    for sc in results.values():  # the machine each scenario ran on stays with it
        sc.setdefault("machine", doc["machine"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- docs/benchmarks.md


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_num(x)}" for k, x in v.items())
    return str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _contender(name: str, c: dict[str, Any]) -> str:
    seconds = c.get("spawn_to_done_seconds", c.get("seconds"))
    text = f"{name} {'?' if seconds is None else _num(round(float(seconds), 2))} s"
    if c.get("stopped"):
        text = f"{name} > {_num(round(float(seconds or 0), 0))} s (stopped)"
    if c.get("peak_rss_mb"):
        text += f", {c['peak_rss_mb']:.0f} MB"
    return text


def _run(sc: dict[str, Any]) -> str:
    parts = [str(sc.get("date", "date not recorded")).replace("+00:00", "Z")]
    m = sc.get("machine")
    parts.append(f"{m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('ram_gib')} GiB" if m
                 else "machine not recorded")
    # run.py records {"load_average": {"before", "after"}} for every scenario; the lane
    # scenario's own keys came first.
    load = sc.get("load_average") if isinstance(sc.get("load_average"), dict) else {}
    before = load.get("before", sc.get("load_average_before"))
    after = load.get("after", sc.get("load_average_after"))
    if before is not None and after is not None:
        parts.append(f"load {'/'.join(_num(x) for x in before)} → {'/'.join(_num(x) for x in after)}")
    else:
        parts.append("load average not recorded")
    shares = [c["background_cpu_share"] for c in sc.get("contenders", {}).values()
              if isinstance(c, dict) and isinstance(c.get("background_cpu_share"), (int, float))]
    if shares:
        parts.append(f"other processes used up to {max(shares) * 100:.0f} % of the CPU")
    return "; ".join(parts)


def _targets(sc: dict[str, Any]) -> str:
    metrics = sc.get("metrics", {})
    out = []
    for t, ok in sc.get("targets", {}).items():
        name = t.split()[0]
        value = f" = {_num(metrics[name])}" if name in metrics else ""
        out.append(f"{name}{value} (target {t[len(name):].strip() or 'true'}): {'met' if ok else '**missed**'}")
    return "; ".join(out) or "-"


def markdown_table(doc: dict[str, Any]) -> str:
    """The benchmark table, one row per scenario of results.json, every figure from the file."""
    lines = ["| scenario | what | contenders (median seconds, peak RSS) | targets | run: date (UTC), machine, load |",
             "|---|---|---|---|---|"]
    for name, sc in doc.get("scenarios", {}).items():
        contenders = "; ".join(_contender(c, v) for c, v in sc.get("contenders", {}).items())
        lines.append("| " + " | ".join(_cell(x) for x in (
            name, str(sc.get("description", "")), contenders, _targets(sc), _run(sc))) + " |")
    v = doc.get("versions", {})
    lines += ["", "Generated by `make bench-report` from `benchmarks/results.json` "
              f"(lakeroute {v.get('lakeroute', '?')}, pyiceberg {v.get('pyiceberg', '?')}, "
              f"duckdb {v.get('duckdb', '?')}, pyarrow {v.get('pyarrow', '?')}); "
              "load: the 1/5/15-minute load averages before → after the scenario."]
    return "\n".join(lines)


def splice(text: str, table: str) -> str:
    """``text`` with what lies between the markers replaced by ``table``."""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{DOC}: the markers {BEGIN} and {END} are missing; add them where the table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="docs/benchmarks.md's table from benchmarks/results.json")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed table differs")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    new = splice(text, markdown_table(json.loads(args.results.read_text())))
    if args.check:
        if new != text:
            print(f"{args.doc}: the benchmark table is not the one {args.results} gives; run make bench-report",
                  file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
