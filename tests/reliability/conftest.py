from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.catalogs import catalog_kind  # noqa: F401 - fixture of the moto tests
from tests.support.patience import patience
from tests.support.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def run_workers(ws: Workspace, jobs: list[tuple[str, str, list[str]]], timeout: float = 240) -> list[dict]:
    """Start one process per (mode, bucket, keys), release them together, collect results."""
    go = ws.root / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.worker", str(ws.root), str(go),
                               mode, bucket, *keys], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ})
             for mode, bucket, keys in jobs]
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=patience(timeout))
        line = out.strip().splitlines()[-1] if out.strip() else ""
        results.append({"returncode": p.returncode, "stderr": err[-2000:],
                        **(json.loads(line) if line.startswith("{") else {})})
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
