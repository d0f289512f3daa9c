"""csv: one CSV file of >= 500 MiB, the large scenario's comparison (lakeroute vs the physical
floor, and the reference). Target: <= 1.2x floor."""

from __future__ import annotations

from typing import Any

import data
from harness import Options

from scenarios.large import floor_comparison


def scenario_csv(opt: Options) -> dict[str, dict[str, Any]]:
    src = data.large_csv(opt.sizes.csv_min_bytes)
    desc = f"one CSV file, {src.stat().st_size / 2**20:.0f} MiB"
    return floor_comparison(opt, "csv", desc, src, "csv", None, None, [("", None)])
