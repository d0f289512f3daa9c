"""Scratch paths (core.read.scratch): flat unless the key's folders carry hive partitions."""

from __future__ import annotations

import os
from pathlib import Path

from lakeroute.core.read.scratch import ScratchDir


def test_a_key_without_partitions_gets_a_flat_path_and_leaves_nothing(tmp_path: Path) -> None:
    scratch = ScratchDir(str(tmp_path))
    path = scratch.new_path("deep/folders/../x y/part-1.CSV.GZ")
    print(path)
    assert os.path.dirname(path) == scratch.dir  # no folder made for it
    assert path.endswith("-part-1.csv.gz")  # DuckDB infers compression from a lower-case suffix
    other = scratch.new_path("deep/folders/../x y/part-1.CSV.GZ")
    assert other != path
    Path(path).write_bytes(b"x")
    scratch.remove(path)
    assert os.listdir(scratch.dir) == []


def test_hive_folders_are_kept_and_removed_with_the_object(tmp_path: Path) -> None:
    scratch = ScratchDir(str(tmp_path))
    path = scratch.new_path("events/dt=2026-01-01/hour=3/x.parquet")
    print(path)
    assert path.endswith("/events/dt=2026-01-01/hour=3/x.parquet") and os.path.isdir(os.path.dirname(path))
    Path(path).write_bytes(b"x")
    scratch.remove(path)
    assert os.listdir(scratch.dir) == []
