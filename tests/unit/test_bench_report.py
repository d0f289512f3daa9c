"""The benchmark table in docs/benchmarks.md is generated from benchmarks/results.json: the
committed table must be exactly what the committed results give (they cannot drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402


def test_the_committed_table_is_the_one_results_json_gives() -> None:
    assert report.main(["--check"]) == 0, "run `make bench-report` and commit docs/benchmarks.md"


def test_every_scenario_is_a_row_with_its_run_and_its_targets(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    table = report.markdown_table(doc)
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| scenario")]
    assert len(rows) == len(doc["scenarios"])
    for (name, sc), row in zip(doc["scenarios"].items(), rows, strict=True):
        assert row.startswith(f"| {name} |")
        for target, ok in sc.get("targets", {}).items():
            assert ("met" if ok else "**missed**") in row, (name, target)
        assert sc.get("date", "date not recorded").replace("+00:00", "Z") in row


def test_a_changed_result_changes_the_table_and_the_check_fails(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    name = next(iter(doc["scenarios"]))
    sc = doc["scenarios"][name]
    sc["load_average"] = {"before": [1.5, 2.0, 3.0], "after": [4.25, 2.0, 3.0]}  # as run.py records it
    other = doc["scenarios"][list(doc["scenarios"])[1]]
    other.pop("load_average", None)  # as the lane scenario recorded it first
    other["load_average_before"], other["load_average_after"] = [0.5, 1.0, 1.5], [7.0, 6.0, 5.0]
    sc["machine"] = {"nproc": 2, "cpu_model": "Test CPU", "ram_gib": 8.0}
    results = tmp_path / "results.json"
    results.write_text(json.dumps(doc))
    md = tmp_path / "benchmarks.md"
    md.write_text(f"prose\n{report.BEGIN}\nold\n{report.END}\nmore prose\n")
    assert report.main(["--results", str(results), "--doc", str(md), "--check"]) == 1
    assert report.main(["--results", str(results), "--doc", str(md)]) == 0
    text = md.read_text()
    assert text.startswith(f"prose\n{report.BEGIN}\n") and text.endswith(f"{report.END}\nmore prose\n")
    assert "load 1.5/2/3 → 4.25/2/3" in text and "load 0.5/1/1.5 → 7/6/5" in text
    assert "2 cores, Test CPU, 8.0 GiB" in text
    assert report.main(["--results", str(results), "--doc", str(md), "--check"]) == 0


def test_missing_markers_are_an_error_naming_them(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    md.write_text("no markers\n")
    with pytest.raises(SystemExit, match="bench-table:begin"):
        report.main(["--doc", str(md)])
